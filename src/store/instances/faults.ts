/** Instance faults (Nova's instance_faults): what went wrong, oldest first. */
import type { Selectable } from 'kysely';

import type { Store } from '../db';
import type { Database } from '../schema';
import { newId, nowIso } from '../util';
import type { InstanceRepository } from './index';

export interface FaultInput {
  code: number;
  message: string;
  details?: string | null;
  host?: string | null;
  /** An idempotency key: recording the same id again is a no-op (activity retries). */
  faultId?: string;
}

export interface InstanceFault {
  faultId: string;
  instanceId: string;
  code: number;
  message: string;
  details: string | null;
  host: string | null;
  createdAt: string;
}

export type InstanceFaults = Pick<InstanceRepository, 'recordFault' | 'listFaults'>;

export function createInstanceFaults(store: Store): InstanceFaults {
  const db = store.db;

  async function recordFault(instanceId: string, fault: FaultInput): Promise<InstanceFault> {
    const id = fault.faultId ?? newId();
    await db
      .insertInto('instance_faults')
      .values({
        id,
        instance_id: instanceId,
        code: fault.code,
        message: fault.message,
        details: fault.details ?? null,
        host: fault.host ?? null,
        created_at: nowIso(),
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    const row = await db.selectFrom('instance_faults').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    return toFault(row);
  }

  function toFault(row: Selectable<Database['instance_faults']>): InstanceFault {
    return {
      faultId: row.id,
      instanceId: row.instance_id,
      code: row.code,
      message: row.message,
      details: row.details,
      host: row.host,
      createdAt: row.created_at,
    };
  }

  async function listFaults(instanceId: string): Promise<InstanceFault[]> {
    const rows = await db
      .selectFrom('instance_faults')
      .selectAll()
      .where('instance_id', '=', instanceId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toFault);
  }

  return { recordFault, listFaults };
}
