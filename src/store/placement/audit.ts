/** Nova's `nova-manage placement audit`: orphaned allocations and over-committed hosts. Read-only. */
import { MIGRATION_FINISHED_STATUSES } from '../../domain/migration';
import { capacity, type ResourceClass } from '../../domain/resources';
import type { Store } from '../db';

export { MIGRATION_FINISHED_STATUSES };

export interface PlacementAudit {
  /** Allocations whose consumer is neither a live instance nor an in-progress migration. */
  orphans: Array<{ consumerId: string; host: string }>;
  /** Resource classes whose allocations exceed floor((total - reserved) * ratio). */
  overCapacity: Array<{ host: string; resourceClass: ResourceClass; used: number; capacity: number }>;
}

export function createAudit(store: Store): () => Promise<PlacementAudit> {
  const db = store.db;

  return async function audit(): Promise<PlacementAudit> {
    // A live instance may hold allocations: any instance not deleted, except an `error` instance with no
    // host (a build that failed must hold nothing). An `error` instance still on its host (a failed
    // rebuild or resize) keeps its allocation, as in Nova, whose audit flags only consumers that do not
    // exist.
    const orphans = await db
      .selectFrom('allocations as a')
      .select(['a.consumer_id', 'a.provider'])
      .distinct()
      .where((eb) =>
        eb.and([
          eb.not(
            eb.exists(
              eb
                .selectFrom('instances as i')
                .select('i.instance_id')
                .whereRef('i.instance_id', '=', 'a.consumer_id')
                .where('i.vm_state', '!=', 'deleted')
                .where((ie) => ie.not(ie.and([ie('i.vm_state', '=', 'error'), ie('i.host', 'is', null)])))
            )
          ),
          eb.not(
            eb.exists(
              eb
                .selectFrom('migrations as m')
                .select('m.id')
                .whereRef('m.id', '=', 'a.consumer_id')
                .where('m.status', 'not in', MIGRATION_FINISHED_STATUSES)
            )
          ),
        ])
      )
      .orderBy('a.provider')
      .orderBy('a.consumer_id')
      .execute();
    const usage = await db
      .selectFrom('allocations as a')
      .leftJoin('inventories as i', (join) =>
        join.onRef('i.provider', '=', 'a.provider').onRef('i.resource_class', '=', 'a.resource_class')
      )
      .select((eb) => [
        'a.provider',
        'a.resource_class',
        eb.fn.sum<number>('a.used').as('used'),
        'i.total',
        'i.reserved',
        'i.allocation_ratio',
      ])
      .groupBy(['a.provider', 'a.resource_class', 'i.total', 'i.reserved', 'i.allocation_ratio'])
      .orderBy('a.provider')
      .orderBy('a.resource_class')
      .execute();
    const overCapacity: PlacementAudit['overCapacity'] = [];
    for (const row of usage) {
      const cap =
        row.total === null
          ? 0
          : capacity({
              total: row.total,
              reserved: row.reserved ?? 0,
              allocationRatio: Number(row.allocation_ratio ?? 1),
            });
      const used = Number(row.used);
      if (used > cap)
        overCapacity.push({
          host: row.provider,
          resourceClass: row.resource_class as ResourceClass,
          used,
          capacity: cap,
        });
    }
    return {
      orphans: orphans.map((o) => ({ consumerId: o.consumer_id, host: o.provider })),
      overCapacity,
    };
  };
}
