/**
 * What the placement modules share: the write protocol's steps 1 and 3 (see ./index.ts), the retry of
 * lost compare-and-swaps, and small resource helpers.
 */
import type { Transaction } from 'kysely';

import { ConcurrentUpdate, InvalidRequest } from '../../domain/errors';
import { RESOURCE_CLASSES, type ResourceClass, type Resources } from '../../domain/resources';
import { retryTransient } from '../db';
import { prepared } from '../prepared';
import type { Database } from '../schema';
import { chunks } from '../util';

/** Compare-and-swap attempts of one claim before it gives up with ConcurrentUpdate. */
export const CLAIM_ATTEMPTS = 10;

export type Trx = Transaction<Database>;

/** The provider generation moved between our read and our compare-and-swap. */
export class GenerationConflict extends Error {
  constructor(readonly host: string) {
    super(`generation conflict on ${host}`);
  }
}

export function zeroResources(): Resources {
  return { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 };
}

export function isResourceClass(rc: string): rc is ResourceClass {
  return (RESOURCE_CLASSES as readonly string[]).includes(rc);
}

export function unknownHost(host: string): InvalidRequest {
  return new InvalidRequest('host', `no compute host named '${host}' is registered`);
}

export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

const nextVersion = prepared((db) =>
  db
    .updateTable('placement_state')
    .set((eb) => ({ version: eb('version', '+', 1) }))
    .where('id', '=', 1)
    .returning('version')
);
const stampOne = prepared((db, p: { host: string; version: number }) =>
  db.updateTable('resource_providers').set({ changed_version: p.version }).where('name', '=', p.host)
);

/** Step 3 of every write: bump the global version and stamp it on the (already locked) providers. */
export async function bumpVersion(trx: Trx, hosts: readonly string[]): Promise<void> {
  const [row] = (await nextVersion(trx, {})).rows;
  if (row === undefined) throw new Error('placement_state has no version row (the store is not migrated)');
  const version = Number(row.version);
  // One host (a claim's, a release's): a statement of one shape; more, by name lists.
  if (hosts.length === 1) {
    await stampOne(trx, { host: hosts[0]!, version });
    return;
  }
  for (const part of chunks(hosts, 500)) {
    await trx.updateTable('resource_providers').set({ changed_version: version }).where('name', 'in', part).execute();
  }
}

/** Step 1 for writes that need no compare-and-swap (releases, moves): lock and bump, in name order. */
export async function bumpGenerations(trx: Trx, hosts: readonly string[], now: string): Promise<void> {
  for (const host of [...hosts].sort()) {
    await trx
      .updateTable('resource_providers')
      .set((eb) => ({ generation: eb('generation', '+', 1), updated_at: now }))
      .where('name', '=', host)
      .execute();
  }
}

/** Runs a write, retrying generation conflicts and a lost insert race (both: someone else wrote first). */
export async function withConflictRetry<T>(what: string, fn: (attempt: number) => Promise<T>): Promise<T> {
  const retryable = (err: unknown) => err instanceof GenerationConflict || isUniqueViolation(err);
  try {
    return await retryTransient(CLAIM_ATTEMPTS, fn, retryable);
  } catch (err) {
    throw retryable(err) ? new ConcurrentUpdate(what) : err;
  }
}
