/**
 * What every conductor CLI command shares: the environment, the output mode, a lazily opened Temporal
 * connection and store, the typed errors that become exit statuses, and how an instance is printed.
 */
import { Client, Connection } from '@temporalio/client';

import type { InstanceRecord } from '../domain/instance';
import { openMigratedStore } from '../store/db';
import type { Store } from '../store/db';
import { createInstanceRepository } from '../store/instances';
import { loadEnv, sqlitePath } from '../workers/config';
import type { Env } from '../workers/config';
import { fields } from './table';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

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
  ctx.connection ??= await Connection.connect({ address: ctx.env.TEMPORAL_ADDRESS, connectTimeout: 5_000 });
  return ctx.connection;
}

export async function client(ctx: Context): Promise<Client> {
  return new Client({ connection: await connection(ctx), namespace: ctx.env.TEMPORAL_NAMESPACE });
}

/** The store, opened as a client: never migrated here (the workers own the schema). */
export async function store(ctx: Context): Promise<Store> {
  ctx.store ??= await openMigratedStore({
    databaseUrl: ctx.env.DATABASE_URL,
    sqlitePath: sqlitePath(ctx.env),
    poolSize: 2,
  });
  return ctx.store;
}

export async function instances(ctx: Context) {
  return createInstanceRepository(await store(ctx));
}

/** An instance by id, or by name when the name is unique. */
export async function resolveInstance(ctx: Context, ref: string): Promise<InstanceRecord> {
  const repo = await instances(ctx);
  const byId = await repo.find(ref);
  if (byId) return byId;
  const named = (await repo.list()).filter((i) => i.name === ref && i.vmState !== 'deleted');
  if (named.length === 1 && named[0]) return named[0];
  if (named.length > 1) throw new UsageError(`${named.length} instances are named '${ref}': use the id`);
  throw new OperationFailed('InstanceNotFound', `Instance ${ref} could not be found.`);
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
    ])
  );
}

/** Prints the instance as the store has it now; the usual end of an operation. */
export async function printCurrent(ctx: Context, instanceId: string): Promise<number> {
  printInstance(ctx, await (await instances(ctx)).get(instanceId));
  return EXIT_OK;
}
