/**
 * Writes applied once per call. Temporal delivers an activity at least once: a write that committed and
 * then lost its answer (the worker died, the connection dropped) runs again on the retry, where its own
 * compare-and-swap would now fail. Each conductor write therefore runs in one transaction with a row
 * keyed by the identity of the call (its workflow run and activity id, the same on every retry): the
 * retry finds the row and returns the answer the first run gave. A write that failed left no row, so
 * its retry decides afresh (a real rival still loses at once).
 */
import type { Transaction } from 'kysely';

import type { Store } from './db';
import { transaction } from './db';
import { prepared } from './prepared';
import type { InstanceRepository } from './instances';
import { createInstanceRepository } from './instances';
import type { Database } from './schema';
import { nowIso } from './util';

const selectApplied = prepared((db, p: { key: string }) =>
  db.selectFrom('applied_writes').select('result').where('write_key', '=', p.key)
);
const insertApplied = prepared((db, p: { key: string; result: string; at: string }) =>
  db.insertInto('applied_writes').values({ write_key: p.key, result: p.result, applied_at: p.at })
);

/** How long applied writes are kept: far longer than any activity's retries. */
export const APPLIED_WRITE_RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * Runs `write` once for `key`: in a transaction that records its answer, or, when the key was applied
 * before, returns that answer without running it. With no key it simply runs on the store.
 */
export async function writeOnce<T>(
  store: Store,
  key: string | undefined,
  write: (scoped: Store) => Promise<T>
): Promise<T> {
  if (key === undefined) return write(store);
  return transaction(store, async (trx) => {
    const [applied] = (await selectApplied(trx, { key })).rows;
    if (applied) return JSON.parse(applied.result) as T;
    const result = await write(scopedStore(store, trx));
    await insertApplied(trx, { key, result: JSON.stringify(result ?? null), at: nowIso() });
    return result;
  });
}

/** Forgets applied writes older than the retention; returns how many. */
export async function pruneAppliedWrites(store: Store, now = Date.now()): Promise<number> {
  const cutoff = new Date(now - APPLIED_WRITE_RETENTION_MS).toISOString();
  const result = await store.db.deleteFrom('applied_writes').where('applied_at', '<', cutoff).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The store as seen from inside one transaction: every query of a repository built on it joins it. */
function scopedStore(store: Store, trx: Transaction<Database>): Store {
  return {
    db: trx,
    dialect: store.dialect,
    close: () => Promise.resolve(),
    ...(store.notifications ? { notifications: store.notifications } : {}),
  };
}

/** A write scope over instance records: `write` runs once for `key`, on a repository inside its transaction. */
export type InstanceWrites = <T>(
  key: string | undefined,
  write: (instances: InstanceRepository) => Promise<T>
) => Promise<T>;

export function instanceWrites(store: Store): InstanceWrites {
  return (key, write) => writeOnce(store, key, (scoped) => write(createInstanceRepository(scoped)));
}
