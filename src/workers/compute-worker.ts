/**
 * A compute worker: activity-only, with a virt driver per host (./compute-driver.ts: the fleet file's
 * `driver`, else COMPUTE_DRIVER, default the fake hypervisor). It serves one host (COMPUTE_HOST,
 * polling `compute-<host>`), or many in one process (COMPUTE_HOSTS: a list, ranges, or `all` hosts of
 * the fleet file): one Worker per host queue, sharing a NativeConnection per COMPUTE_HOSTS_PER_CONNECTION
 * hosts (one for up to 100 hosts by default), each host with its own driver (a fake one with its own
 * state folder, `$DATA_DIR/compute/<host>/`: guests/, faults.json, so a fault injected on one host
 * touches only that host). The driver's initHost runs before the host's Worker takes work. Freezing or killing the process takes down every host it
 * serves at once: the failure domain of a process is all of its hosts.
 *
 * It holds no database credentials: it registers each host's inventory with placement by starting the
 * registerHost workflow, whose activity runs on the scheduler worker, then reconciles the host
 * (reconcileHost). A multi-host process runs at most COMPUTE_REGISTER_CONCURRENCY of these at once over
 * one client connection, and logs one `registered all hosts` line with the count and the time taken.
 */
import { readFileSync } from 'node:fs';

import { backOff } from 'exponential-backoff';
import { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { Runtime, Worker, type WorkerOptions } from '@temporalio/worker';

import { createComputeActivities, createHostSlots, type HostLimits } from '../activities/compute';
import { type Fleet, FleetSchema, type HostSpec, parseHostList } from '../domain/fleet';
import { forEachBounded } from '../shared/bounded';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, workflowIds } from '../shared/task-queues';
import type { reconcileHost } from '../workflows/reconcile-host';
import type { registerHost } from '../workflows/register-host';
import { dataConverterFor } from './codec';
import { createDriver } from './compute-driver';
import { type Env, loadEnv } from './config';
import { connectClient, connectWorker, installRuntime } from './connection';
import { computeWorkerOptions } from './interceptors';

/**
 * Per-host poller options when one process serves many hosts. One activity long poll per host queue,
 * no autoscaling: 1,000 hosts hold 1,000 long polls on the server (the SDK's default would hold up to
 * 10 per queue, 10,000, and autoscaling grows them under load). One poll is enough for a host: a poll
 * that brings a task is renewed at once, and a host runs at most COMPUTE_MAX_CONCURRENT_TASKS steps.
 */
export const MULTI_HOST_WORKER_OPTIONS: Pick<WorkerOptions, 'activityTaskPollerBehavior'> = {
  activityTaskPollerBehavior: { type: 'simple-maximum', maximum: 1 },
};

/** Tries of a host's registerHost (1 s, 2 s, 4 s, 8 s apart) before the process gives up. */
const REGISTER_ATTEMPTS = 5;

/** Worker.create calls under way at once while a multi-host process starts. */
const CREATE_CONCURRENCY = 16;

/** The hosts this process serves, with their specs from the fleet file. */
export function hostsToServe(
  env: Pick<Env, 'COMPUTE_HOST' | 'COMPUTE_HOSTS' | 'FLEET_FILE'>,
  fleet: Fleet
): HostSpec[] {
  const names =
    env.COMPUTE_HOSTS === undefined
      ? env.COMPUTE_HOST
        ? [env.COMPUTE_HOST]
        : undefined
      : env.COMPUTE_HOSTS.trim() === 'all'
        ? fleet.hosts.map((h) => h.name)
        : parseHostList(env.COMPUTE_HOSTS);
  if (!names) throw new Error('neither COMPUTE_HOST nor COMPUTE_HOSTS is set');
  const specs = new Map(fleet.hosts.map((h) => [h.name, h]));
  const missing = names.filter((n) => !specs.has(n));
  if (missing.length > 0)
    throw new Error(
      `host${missing.length > 1 ? 's' : ''} ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ''} not in the fleet file ${env.FLEET_FILE}`
    );
  return names.map((n) => specs.get(n)!);
}

/** A host's build and live-migration limits: its fleet entry's, else the worker's environment. */
export function hostLimits(
  env: Pick<Env, 'COMPUTE_MAX_CONCURRENT_BUILDS' | 'COMPUTE_MAX_CONCURRENT_LIVE_MIGRATIONS'>,
  spec: Pick<HostSpec, 'maxConcurrentBuilds' | 'maxConcurrentLiveMigrations'>
): HostLimits {
  return {
    maxConcurrentBuilds: spec.maxConcurrentBuilds ?? env.COMPUTE_MAX_CONCURRENT_BUILDS,
    maxConcurrentLiveMigrations: spec.maxConcurrentLiveMigrations ?? env.COMPUTE_MAX_CONCURRENT_LIVE_MIGRATIONS,
  };
}

async function createHostWorker(
  env: Env,
  connection: NativeConnection,
  spec: HostSpec,
  multi: boolean
): Promise<Worker> {
  const host = spec.name;
  const driver = await createDriver(spec.driver ?? env.COMPUTE_DRIVER, {
    host,
    dataDir: env.DATA_DIR,
    spawnSeconds: env.COMPUTE_SPAWN_SECONDS,
  });
  // Nova's init_host: a driver whose guests outlive the worker re-adopts them before any work comes.
  await driver.initHost();
  return Worker.create({
    connection,
    dataConverter: dataConverterFor(env),
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: computeTaskQueue(host),
    activities: createComputeActivities({ host, driver, slots: createHostSlots(hostLimits(env, spec)) }),
    // Every kind of step; spawns and live-migration copies wait for their own, smaller limits inside.
    maxConcurrentActivityTaskExecutions: env.COMPUTE_MAX_CONCURRENT_TASKS,
    // Typed domain errors, and every step heartbeated while it runs (a frozen worker is known in seconds).
    ...computeWorkerOptions(),
    ...(multi ? MULTI_HOST_WORKER_OPTIONS : {}),
  });
}

/** registerHost, then reconcileHost (a failure of the latter is logged, not fatal: the next start reconciles again). */
async function registerAndReconcile(client: Client, spec: HostSpec): Promise<void> {
  const host = spec.name;
  // Idempotent, so retried: a loaded server can answer a start with a passing error (seen at 1,000
  // hosts on 2 cores: NamespaceNotFound for the default namespace); the last failure is fatal.
  await backOff(
    () =>
      client.workflow.execute<typeof registerHost>('registerHost', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.registerHost(host),
        args: [spec],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    {
      numOfAttempts: REGISTER_ATTEMPTS,
      startingDelay: 1000,
      retry: (err: unknown, failures: number) => {
        if (failures < REGISTER_ATTEMPTS) {
          Runtime.instance().logger.warn('registration failed; trying again', {
            host,
            attempt: failures,
            error: String(err),
          });
        }
        return true;
      },
    }
  );
  Runtime.instance().logger.info('registered with placement', { host, taskQueue: computeTaskQueue(host) });
  // Back from the dead: destroy the guests evacuated away meanwhile and release their allocations here
  // (the conductor and the scheduler do the bookkeeping).
  try {
    const reconciled = await client.workflow.execute<typeof reconcileHost>('reconcileHost', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: workflowIds.reconcileHost(host),
      args: [{ host }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
    Runtime.instance().logger.info('reconciled evacuated instances', {
      host,
      evacuated: reconciled.cleaned.map((c) => c.instanceId),
    });
  } catch (err) {
    Runtime.instance().logger.error('start-up reconciliation failed', { host, error: String(err) });
  }
}

async function run(): Promise<void> {
  const env = loadEnv();
  const fleet = FleetSchema.parse(JSON.parse(readFileSync(env.FLEET_FILE, 'utf8')));
  const specs = hostsToServe(env, fleet);
  const multi = env.COMPUTE_HOSTS !== undefined;
  installRuntime(env, multi ? `compute-${specs.length}-hosts` : `compute-${specs[0]!.name}`);

  // One connection per COMPUTE_HOSTS_PER_CONNECTION hosts: every long poll, heartbeat and completion of
  // a connection's workers shares its one HTTP/2 connection.
  const connections: NativeConnection[] = [];
  for (let i = 0; i < specs.length; i += env.COMPUTE_HOSTS_PER_CONNECTION) connections.push(await connectWorker(env));
  const workers: { host: string; worker: Worker }[] = [];
  await forEachBounded(
    specs.map((spec, i) => ({ spec, connection: connections[Math.floor(i / env.COMPUTE_HOSTS_PER_CONNECTION)]! })),
    CREATE_CONCURRENCY,
    async ({ spec, connection }) => {
      workers.push({ host: spec.name, worker: await createHostWorker(env, connection, spec, multi) });
    }
  );
  const registered = (async () => {
    const started = Date.now();
    const clientConnection = await connectClient(env);
    try {
      const client = new Client({
        connection: clientConnection,
        namespace: env.TEMPORAL_NAMESPACE,
        dataConverter: dataConverterFor(env),
      });
      await forEachBounded(specs, env.COMPUTE_REGISTER_CONCURRENCY, (spec) => registerAndReconcile(client, spec));
      if (multi)
        Runtime.instance().logger.info('registered all hosts', { hosts: specs.length, ms: Date.now() - started });
    } finally {
      await clientConnection.close();
    }
  })();
  // A host whose Worker fails stops alone (it reads down, its builds go elsewhere); the process serves the
  // others, and exits once every Worker has stopped. One host alone fails as before (exit 1).
  const runs = workers.map(({ host, worker }) =>
    worker.run().catch((err: unknown) => {
      if (!multi) throw err;
      Runtime.instance().logger.error('host worker failed; the other hosts go on', { host, error: String(err) });
    })
  );
  await Promise.all([...runs, registered]);
  for (const connection of connections) await connection.close();
}

if (require.main === module) {
  run().catch((err: unknown) => {
    console.error(`compute worker: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}
