/**
 * What every conductor CLI command shares: the environment, the output mode, a lazily opened Temporal
 * connection and store, the typed errors that become exit statuses, and how an instance is printed.
 */
import { Client, Connection } from '@temporalio/client';
import { z } from 'zod';

import type { InstanceRecord } from '../domain/instance';
import { InvalidRequest } from '../domain/errors';
import { HostNameSchema } from '../domain/schemas';
import { parseOrInvalid } from '../domain/validation';
import { openMigratedStore } from '../store/db';
import type { Store } from '../store/db';
import { createInstanceRepository } from '../store/instances';
import { createPlacementRepository } from '../store/placement';
import { readStackIdentity } from '../store/stack';
import { dataConverterFor } from '../workers/codec';
import { loadEnv, sqlitePath, temporalConnectionOptions } from '../workers/config';
import type { Env } from '../workers/config';
import { namespaceStackId, wrongStack } from '../workers/stack-identity';
import { fields } from './table';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** Ctrl-C while following an operation: the operation goes on (128 + SIGINT, the shell's convention). */
export const EXIT_INTERRUPTED = 130;

/** Bad usage found after parsing (e.g. an ambiguous name): exit 2 with the message. */
export class UsageError extends Error {}

/** The operation failed with a typed failure: `Type: message` (or a JSON error), exit 1 (2 for InvalidRequest). */
export class OperationFailed extends Error {
  constructor(
    readonly type: string,
    message: string
  ) {
    super(message);
  }
}

/** Ctrl-C while a command followed an operation: the workflow goes on; the message says how to watch it. */
export class Interrupted extends Error {
  constructor(readonly workflowId: string) {
    super(
      [
        `Interrupted: the operation goes on (workflow ${workflowId}). Watch it with`,
        `  npm run temporal -- workflow query --workflow-id ${workflowId} --name getProgress`,
        `  npm run temporal -- workflow describe --workflow-id ${workflowId}`,
        `or cancel it with: npm run temporal -- workflow cancel --workflow-id ${workflowId}`,
      ].join('\n')
    );
  }
}

export interface Context {
  env: Env;
  json: boolean;
  connection?: Connection;
  store?: Store;
}

/** A command's body: what it does with the context, and the exit status it ends with. */
export type Action = (ctx: Context) => Promise<number>;

/** Runs a command's body with a fresh context and records its exit status (see conductor.ts). */
export type Run = (action: Action) => Promise<void>;

export function createContext(json: boolean): Context {
  return { env: loadEnv(), json }; // loadEnv exits 2 on a bad variable, naming it
}

export async function closeContext(ctx: Context): Promise<void> {
  await ctx.connection?.close().catch(() => undefined);
  await ctx.store?.close().catch(() => undefined);
}

export async function connection(ctx: Context): Promise<Connection> {
  ctx.connection ??= await Connection.connect({ ...temporalConnectionOptions(ctx.env), connectTimeout: 5_000 }).catch(
    (err: unknown) => {
      throw new OperationFailed(
        'TemporalUnreachable',
        `cannot reach Temporal at ${ctx.env.TEMPORAL_ADDRESS} (namespace ${ctx.env.TEMPORAL_NAMESPACE}): ` +
          `${(err as Error).message}. Is the stack running? make start serves 127.0.0.1:7233 (the default); ` +
          `for make cluster use its profile and data/cluster/cli.env (docs/cluster.md).`
      );
    }
  );
  return ctx.connection;
}

export async function client(ctx: Context): Promise<Client> {
  await store(ctx); // nothing is started on a Temporal whose stack does not own this store (checkSameStack)
  return new Client({
    connection: await connection(ctx),
    namespace: ctx.env.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFor(ctx.env),
  });
}

/** The store, opened as a client: never migrated here (the workers own the schema). */
export async function store(ctx: Context): Promise<Store> {
  if (ctx.store) return ctx.store;
  const opened = await openMigratedStore({
    databaseUrl: ctx.env.DATABASE_URL,
    sqlitePath: sqlitePath(ctx.env),
    poolSize: 2,
  });
  try {
    await checkSameStack(ctx, opened);
  } catch (err) {
    await opened.close().catch(() => undefined);
    throw err;
  }
  ctx.store = opened;
  return opened;
}

/** The store as a message names it: the SQLite file, or the PostgreSQL server and database (no password). */
export function storeDescription(env: Context['env']): string {
  if (!env.DATABASE_URL) return sqlitePath(env);
  const url = new URL(env.DATABASE_URL);
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * Refuses a store that belongs to another stack than the Temporal this CLI is connected to (the store's
 * stack id against the one its namespace names): the instances of `make start` are never shown as the
 * cluster's. A store no conductor worker started on (a test's) records no stack and is read as it is.
 */
async function checkSameStack(ctx: Context, opened: Store): Promise<void> {
  const identity = await readStackIdentity(opened);
  if (!identity) return;
  const conn = await connection(ctx).catch((err: unknown) => {
    if (!(err instanceof OperationFailed)) throw err;
    throw new OperationFailed(
      err.type,
      `${err.message} The store ${storeDescription(ctx.env)} belongs to the stack at ${identity.temporalAddress} ` +
        `(namespace ${identity.temporalNamespace}).`
    );
  });
  const why = wrongStack(
    { description: storeDescription(ctx.env), identity },
    {
      address: ctx.env.TEMPORAL_ADDRESS,
      namespace: ctx.env.TEMPORAL_NAMESPACE,
      stackId: await namespaceStackId(conn, ctx.env.TEMPORAL_NAMESPACE).catch((err: unknown) => {
        throw new OperationFailed(
          'WrongStack',
          `cannot check that the store ${storeDescription(ctx.env)} belongs to namespace ${ctx.env.TEMPORAL_NAMESPACE} ` +
            `at ${ctx.env.TEMPORAL_ADDRESS}: ${(err as Error).message}`
        );
      }),
    }
  );
  if (why) throw new OperationFailed('WrongStack', why);
}

export async function instances(ctx: Context) {
  return createInstanceRepository(await store(ctx));
}

/**
 * An instance by id, or by name when the name is unique: among the live instances first, then among the
 * deleted ones (so `show` finds a deleted instance by the name it had).
 */
export async function resolveInstance(ctx: Context, ref: string): Promise<InstanceRecord> {
  const repo = await instances(ctx);
  const byId = await repo.find(ref);
  if (byId) return byId;
  const named = (await repo.list()).filter((i) => i.name === ref);
  const live = named.filter((i) => i.vmState !== 'deleted');
  const candidates = live.length > 0 ? live : named;
  if (candidates.length === 1 && candidates[0]) return candidates[0];
  if (candidates.length > 1) {
    const which = live.length > 0 ? '' : ' deleted';
    throw new UsageError(
      `${candidates.length}${which} instances are named '${ref}': use the id (${candidates.map((i) => i.instanceId).join(', ')})`
    );
  }
  throw new OperationFailed('InstanceNotFound', `Instance ${ref} could not be found.`);
}

/** Runs a check; an InvalidRequest it throws becomes the CLI's refusal (exit 2, nothing started). */
export function refuseInvalid(check: () => void): void {
  try {
    check();
  } catch (err) {
    if (err instanceof InvalidRequest) throw new OperationFailed(err.name, err.message);
    throw err;
  }
}

/** Checks a workflow input with its own schema before the workflow is started: InvalidRequest (exit 2). */
export function checkInput<S extends z.ZodType>(schema: S, input: unknown): void {
  refuseInvalid(() => parseOrInvalid(schema, input));
}

/**
 * Refuses a host that cannot be one (a bad name, or one placement has never registered) before anything
 * is started or written: the request could only fail. InvalidRequest (exit 2) naming the option.
 */
export async function requireHost(ctx: Context, host: string, option = 'host'): Promise<void> {
  checkInput(z.object({ [option]: HostNameSchema }), { [option]: host });
  const known = (await createPlacementRepository(await store(ctx)).listHostStates(() => true)).some(
    (h) => h.host === host
  );
  if (!known) {
    const unknown = new InvalidRequest(option, `no compute host named '${host}' is registered`);
    throw new OperationFailed(unknown.name, unknown.message);
  }
}

/**
 * A reader that closed the pipe (`npm run conductor -- list | head -1`) ends the command quietly: no EPIPE
 * stack trace, exit 0 (an operation being followed goes on, as after Ctrl-C).
 */
export function exitQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(EXIT_OK);
    });
}

export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

export function printInstance(ctx: Context, record: InstanceRecord): void {
  if (ctx.json) {
    printJson(record);
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
      ['created', record.createdAt],
      ['updated', record.updatedAt],
    ])
  );
}

/** Prints the instance as the store has it now; the usual end of an operation. */
export async function printCurrent(ctx: Context, instanceId: string): Promise<number> {
  printInstance(ctx, await (await instances(ctx)).get(instanceId));
  return EXIT_OK;
}
