/**
 * `npm run conductor -- <command>`: the conductor for people who think in Nova terms. Operations start
 * the conductor's Temporal workflows (the same ones the `temporal` CLI starts) and follow them live
 * (step, host, attempt) until they settle; `list`, `show`, `hosts` read the store, as nova-manage does.
 *
 * Exit status: 0 the operation succeeded, 1 it failed (its typed message is printed, never a stack
 * trace), 2 bad usage or a request refused as invalid, 3 the audit found something.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';

import { TaskQueuePollerLiveness } from '../activities/scheduler/liveness';
import type { InstanceRecord } from '../domain/instance';
import type { OperationProgress } from '../shared/messages';
import { getProgressQuery } from '../shared/messages';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../shared/task-queues';
import { migrateToLatest, openStore } from '../store/db';
import type { Store } from '../store/db';
import { createInstanceRepository } from '../store/instances';
import { createPlacementRepository } from '../store/placement';
import { loadEnv, sqlitePath } from '../workers/config';
import type { Env } from '../workers/config';
import { main as audit } from './audit';
import { fields, table } from './table';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const USAGE = `usage: npm run conductor -- <command> [options] [--json]

  boot NAME --flavor F --image I [--az Z] [--host H | --force-host H] [--group G] [--max-attempts N] [--no-wait]
  list [--host H] [--state S]          instances
  show ID|NAME                         an instance with its actions, events, faults and migrations
  stop ID|NAME                         graceful shutdown, forced after the timeout
  start ID|NAME
  rebuild ID|NAME [--image I]
  evacuate ID|NAME [--host H]          only while the instance's host is down
  resize ID|NAME --flavor F [--host H] waits until the instance is resized (VERIFY_RESIZE)
  migrate ID|NAME [--host H]           cold migration: same flavor, another host
  confirm ID|NAME | revert ID|NAME     settle a resize or migration
  hosts                                compute hosts: zone, usage, liveness, build failures
  audit                                the consistency audit: placement, workflows, guests (exit 3 on findings)`;

class UsageError extends Error {}

interface Context {
  env: Env;
  json: boolean;
  connection?: Connection;
  store?: Store;
}

async function client(ctx: Context): Promise<Client> {
  ctx.connection ??= await Connection.connect({ address: ctx.env.TEMPORAL_ADDRESS, connectTimeout: 5_000 });
  return new Client({ connection: ctx.connection, namespace: ctx.env.TEMPORAL_NAMESPACE });
}

async function store(ctx: Context): Promise<Store> {
  if (!ctx.store) {
    ctx.store = await openStore({ databaseUrl: ctx.env.DATABASE_URL, sqlitePath: sqlitePath(ctx.env), poolSize: 2 });
    await migrateToLatest(ctx.store);
  }
  return ctx.store;
}

/** An instance by id, or by name when the name is unique. */
async function resolveInstance(ctx: Context, ref: string | undefined): Promise<InstanceRecord> {
  if (!ref) throw new UsageError('name the instance (its id or its name)');
  const instances = createInstanceRepository(await store(ctx));
  const byId = await instances.find(ref);
  if (byId) return byId;
  const named = (await instances.list()).filter((i) => i.name === ref && i.vmState !== 'deleted');
  if (named.length === 1 && named[0]) return named[0];
  if (named.length > 1) throw new UsageError(`${named.length} instances are named '${ref}': use the id`);
  throw new OperationFailed('InstanceNotFound', `Instance ${ref} could not be found.`);
}

class OperationFailed extends Error {
  constructor(
    readonly type: string,
    message: string
  ) {
    super(message);
  }
}

function describeProgress(p: OperationProgress): string {
  const where = p.host ? ` on ${p.host}` : '';
  const attempt = p.attempt > 0 ? ` (attempt ${p.attempt})` : '';
  return `${p.vmState}/${p.taskState ?? '-'}${where}${attempt}: ${p.step}`;
}

/**
 * Follows a workflow until it ends (or `until` holds), printing each change of its progress. Returns
 * the result, or throws OperationFailed with the typed failure.
 */
async function follow<T>(handle: WorkflowHandle, until?: (p: OperationProgress) => boolean): Promise<T | undefined> {
  let last = '';
  let settled = false;
  const result = handle.result().finally(() => (settled = true)) as Promise<T>;
  result.catch(() => undefined);
  while (!settled) {
    try {
      const progress = await handle.query(getProgressQuery);
      const line = describeProgress(progress);
      // Progress goes to stderr in both modes: stdout stays the table or the JSON document.
      if (line !== last) console.error(`  ${line}`);
      last = line;
      if (until?.(progress)) return undefined;
    } catch {
      // Not queryable yet (no worker picked it up) or already closed: keep waiting for the result.
    }
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, 500))]);
  }
  try {
    return await result;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const cause = err.cause as { type?: string; message?: string; name?: string } | undefined;
      throw new OperationFailed(cause?.type ?? cause?.name ?? 'Failed', cause?.message ?? err.message);
    }
    throw err;
  }
}

function printInstance(ctx: Context, record: InstanceRecord): void {
  if (ctx.json) {
    console.log(JSON.stringify(record, null, 2));
    return;
  }
  console.log(
    fields([
      ['id', record.instanceId],
      ['name', record.name],
      ['status', record.vmState],
      ['task', record.taskState],
      ['power', record.powerState],
      ['host', record.host],
      ['zone', record.availabilityZone],
      ['flavor', `${record.flavor} (${record.vcpus} vCPU, ${record.memoryMb} MB, ${record.diskGb} GB)`],
      ['image', record.image],
    ])
  );
}

async function startAndFollow(
  ctx: Context,
  type: string,
  workflowId: string,
  input: Record<string, unknown>,
  until?: (p: OperationProgress) => boolean
): Promise<number> {
  const c = await client(ctx);
  const handle = await c.workflow.start(type, { taskQueue: CONDUCTOR_TASK_QUEUE, workflowId, args: [input] });
  console.error(`${type} ${workflowId}`);
  await follow<InstanceRecord>(handle, until);
  const instanceId = String(input.instanceId);
  printInstance(ctx, await createInstanceRepository(await store(ctx)).get(instanceId));
  return EXIT_OK;
}

const requestId = () => randomUUID().slice(0, 8);

async function run(
  ctx: Context,
  command: string,
  args: string[],
  values: Record<string, string | boolean | undefined>
): Promise<number> {
  const str = (k: string) => (typeof values[k] === 'string' ? values[k] : undefined);
  switch (command) {
    case 'boot': {
      const name = args[0];
      if (!name || !str('flavor') || !str('image')) throw new UsageError('boot needs NAME, --flavor and --image');
      const instanceId = randomUUID();
      const input = {
        name,
        flavor: str('flavor'),
        image: str('image'),
        instanceId,
        ...(str('az') ? { availabilityZone: str('az') } : {}),
        ...(str('host') ? { host: str('host') } : {}),
        ...(str('force-host') ? { forceHost: str('force-host') } : {}),
        ...(str('group') ? { schedulerHints: { group: str('group') } } : {}),
        ...(str('max-attempts') ? { maxAttempts: Number(str('max-attempts')) } : {}),
      };
      if (values['no-wait']) {
        await (
          await client(ctx)
        ).workflow.start('buildInstance', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds.buildInstance(instanceId),
          args: [input],
        });
        console.log(
          ctx.json ? JSON.stringify({ instanceId, workflowId: workflowIds.buildInstance(instanceId) }) : instanceId
        );
        return EXIT_OK;
      }
      return startAndFollow(ctx, 'buildInstance', workflowIds.buildInstance(instanceId), input);
    }
    case 'list': {
      const rows = await createInstanceRepository(await store(ctx)).list({
        ...(str('host') ? { host: str('host') } : {}),
        ...(str('state') ? { vmState: str('state') as InstanceRecord['vmState'] } : {}),
      });
      if (ctx.json) console.log(JSON.stringify(rows, null, 2));
      else
        console.log(
          table(
            ['ID', 'NAME', 'STATUS', 'TASK', 'POWER', 'HOST', 'FLAVOR', 'IMAGE'],
            rows.map((r) => [r.instanceId, r.name, r.vmState, r.taskState, r.powerState, r.host, r.flavor, r.image])
          )
        );
      return EXIT_OK;
    }
    case 'show': {
      const record = await resolveInstance(ctx, args[0]);
      const instances = createInstanceRepository(await store(ctx));
      const [actions, faults, migrations] = await Promise.all([
        instances.listActions(record.instanceId),
        instances.listFaults(record.instanceId),
        instances.listMigrations(record.instanceId),
      ]);
      if (ctx.json) {
        console.log(JSON.stringify({ ...record, actions, faults, migrations }, null, 2));
        return EXIT_OK;
      }
      printInstance(ctx, record);
      console.log('\nactions');
      console.log(
        table(
          ['ACTION', 'RESULT', 'EVENT', 'ATTEMPT', 'HOST', 'EVENT RESULT', 'DETAILS'],
          actions.flatMap((a) =>
            a.events.length
              ? a.events.map((e) => [a.action, a.result, e.event, e.attempt, e.host, e.result, e.details])
              : [[a.action, a.result]]
          )
        )
      );
      if (faults.length)
        console.log(
          `\nfaults\n${table(
            ['CODE', 'MESSAGE', 'AT'],
            faults.map((f) => [f.code, f.message, f.createdAt])
          )}`
        );
      if (migrations.length)
        console.log(
          `\nmigrations\n${table(
            ['ID', 'TYPE', 'STATUS', 'SOURCE', 'DEST', 'OLD FLAVOR', 'NEW FLAVOR'],
            migrations.map((m) => [m.id, m.migrationType, m.status, m.sourceHost, m.destHost, m.oldFlavor, m.newFlavor])
          )}`
        );
      return EXIT_OK;
    }
    case 'stop':
    case 'start': {
      const { instanceId } = await resolveInstance(ctx, args[0]);
      return startAndFollow(ctx, command, workflowIds[command](instanceId, requestId()), { instanceId });
    }
    case 'rebuild':
    case 'evacuate': {
      const { instanceId } = await resolveInstance(ctx, args[0]);
      const input = {
        instanceId,
        ...(str('image') ? { image: str('image') } : {}),
        ...(command === 'evacuate' ? { evacuate: true, ...(str('host') ? { host: str('host') } : {}) } : {}),
      };
      return startAndFollow(ctx, 'rebuild', workflowIds.rebuild(instanceId, requestId()), input);
    }
    case 'resize':
    case 'migrate': {
      const { instanceId } = await resolveInstance(ctx, args[0]);
      if (command === 'resize' && !str('flavor')) throw new UsageError('resize needs --flavor');
      const input = {
        instanceId,
        ...(command === 'resize' ? { flavor: str('flavor') } : {}),
        ...(str('host') ? { host: str('host') } : {}),
      };
      const code = await startAndFollow(
        ctx,
        'resizeMigrate',
        workflowIds.resizeMigrate(instanceId, requestId()),
        input,
        (p) => p.vmState === 'resized'
      );
      if (!ctx.json)
        console.error(
          `confirm: npm run conductor -- confirm ${instanceId}   revert: npm run conductor -- revert ${instanceId}`
        );
      return code;
    }
    case 'confirm':
    case 'revert': {
      const { instanceId } = await resolveInstance(ctx, args[0]);
      const c = await client(ctx);
      let handle: WorkflowHandle | undefined;
      for await (const wf of c.workflow.list({
        query: `WorkflowType = 'resizeMigrate' AND InstanceId = '${instanceId}' AND ExecutionStatus = 'Running'`,
      })) {
        handle = c.workflow.getHandle(wf.workflowId, wf.runId);
      }
      if (!handle)
        throw new OperationFailed(
          'InstanceInvalidState',
          `Instance ${instanceId} has no resize or migration waiting for a decision.`
        );
      try {
        await handle.executeUpdate(command === 'confirm' ? 'confirmResize' : 'revertResize', { args: [{}] });
      } catch (err) {
        const cause = (err as { cause?: { type?: string; message?: string } }).cause;
        throw new OperationFailed(cause?.type ?? 'UpdateRejected', cause?.message ?? (err as Error).message);
      }
      await follow(handle);
      printInstance(ctx, await createInstanceRepository(await store(ctx)).get(instanceId));
      return EXIT_OK;
    }
    case 'hosts': {
      const placement = createPlacementRepository(await store(ctx));
      const connection = (ctx.connection ??= await Connection.connect({
        address: ctx.env.TEMPORAL_ADDRESS,
        connectTimeout: 5_000,
      }));
      const states = await placement.listHostStates(() => true);
      const liveness = new TaskQueuePollerLiveness(connection, ctx.env.TEMPORAL_NAMESPACE, () =>
        Promise.resolve(states.map((h) => h.host))
      );
      await liveness.refresh();
      const rows = states.map((h) => {
        const cap = (rc: 'VCPU' | 'MEMORY_MB' | 'DISK_GB') => {
          const inv = h.inventories[rc];
          return Math.floor((inv.total - inv.reserved) * inv.allocationRatio);
        };
        return {
          host: h.host,
          zone: h.availabilityZone,
          up: liveness.isUp(h.host) && h.up,
          enabled: h.enabled,
          disabledReason: h.disabledReason,
          vcpus: `${h.used.VCPU}/${cap('VCPU')}`,
          memoryMb: `${h.used.MEMORY_MB}/${cap('MEMORY_MB')}`,
          diskGb: `${h.used.DISK_GB}/${cap('DISK_GB')}`,
          instances: h.instances.size,
          failedBuilds: h.failedBuilds,
          traits: [...h.traits].join(','),
        };
      });
      if (ctx.json) console.log(JSON.stringify(rows, null, 2));
      else
        console.log(
          table(
            ['HOST', 'ZONE', 'STATE', 'STATUS', 'VCPU', 'MEMORY MB', 'DISK GB', 'INSTANCES', 'FAILED BUILDS', 'TRAITS'],
            rows.map((r) => [
              r.host,
              r.zone,
              r.up ? 'up' : 'down',
              r.enabled ? 'enabled' : `disabled: ${r.disabledReason ?? ''}`,
              r.vcpus,
              r.memoryMb,
              r.diskGb,
              r.instances,
              r.failedBuilds,
              r.traits,
            ])
          )
        );
      return EXIT_OK;
    }
    case 'audit':
      // The conductor CLI talks to Temporal anyway: the audit also checks workflows and the hosts' guests.
      return audit(ctx.json ? ['--live', '--json'] : ['--live']);
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        'no-wait': { type: 'boolean', default: false },
        flavor: { type: 'string' },
        image: { type: 'string' },
        az: { type: 'string' },
        host: { type: 'string' },
        'force-host': { type: 'string' },
        group: { type: 'string' },
        'max-attempts': { type: 'string' },
        state: { type: 'string' },
      },
    });
  } catch (err) {
    console.error(`conductor: ${(err as Error).message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const [command, ...args] = parsed.positionals;
  if (parsed.values.help || !command) {
    console.log(USAGE);
    return parsed.values.help ? EXIT_OK : EXIT_USAGE;
  }
  const ctx: Context = { env: loadEnv(), json: parsed.values.json };
  try {
    return await run(ctx, command, args, parsed.values);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`conductor ${command}: ${err.message}\n${USAGE}`);
      return EXIT_USAGE;
    }
    if (err instanceof OperationFailed) {
      if (ctx.json) console.log(JSON.stringify({ error: { type: err.type, message: err.message } }));
      else console.error(`${err.type}: ${err.message}`);
      return err.type === 'InvalidRequest' ? EXIT_USAGE : EXIT_FAILED;
    }
    console.error(`conductor ${command}: ${(err as Error).message}`);
    return EXIT_FAILED;
  } finally {
    await ctx.connection?.close().catch(() => undefined);
    await ctx.store?.close().catch(() => undefined);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`conductor: ${(err as Error).message}`);
      process.exitCode = EXIT_FAILED;
    }
  );
}
