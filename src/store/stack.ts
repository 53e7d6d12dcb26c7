/**
 * The stack a store belongs to: a random id the conductor worker records at its first start (kept on
 * every later start), with the Temporal address and namespace it serves. The conductor worker also sets
 * the id on its namespace's data (src/workers/stack-identity.ts), so the CLIs can tell a store of another
 * stack (`make start`'s ./data while connected to the cluster, or the reverse) and refuse to read it.
 */
import { randomUUID } from 'node:crypto';

import type { Store } from './db';
import { nowIso } from './util';

export interface StackIdentity {
  stackId: string;
  temporalAddress: string;
  temporalNamespace: string;
  recordedAt: string;
}

/** The stack recorded in the store; undefined for a store no conductor worker started on (a test's). */
export async function readStackIdentity(store: Store): Promise<StackIdentity | undefined> {
  const row = await store.db.selectFrom('stack_identity').selectAll().where('singleton', '=', 1).executeTakeFirst();
  return row
    ? {
        stackId: row.stack_id,
        temporalAddress: row.temporal_address,
        temporalNamespace: row.temporal_namespace,
        recordedAt: row.recorded_at,
      }
    : undefined;
}

/**
 * Records the stack on the store: its id is made once and kept; the address and namespace are the ones
 * the worker serves now. Idempotent, safe for replicas starting together (the first insert wins the id).
 */
export async function recordStackIdentity(
  store: Store,
  temporal: { address: string; namespace: string }
): Promise<StackIdentity> {
  const recordedAt = nowIso();
  await store.db
    .insertInto('stack_identity')
    .values({
      singleton: 1,
      stack_id: randomUUID(),
      temporal_address: temporal.address,
      temporal_namespace: temporal.namespace,
      recorded_at: recordedAt,
    })
    .onConflict((oc) =>
      oc.column('singleton').doUpdateSet({
        temporal_address: temporal.address,
        temporal_namespace: temporal.namespace,
        recorded_at: recordedAt,
      })
    )
    .execute();
  const identity = await readStackIdentity(store);
  if (!identity) throw new Error('the stack identity was not recorded');
  return identity;
}
