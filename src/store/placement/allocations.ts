/** Allocations: reading them per consumer or per host, releasing them and moving them between consumers. */
import type { Resources } from '../../domain/resources';
import { type Store, transaction } from '../db';
import { compareText, nowIso } from '../util';
import { bumpGenerations, bumpVersion, isResourceClass, zeroResources } from './common';
import type { PlacementRepository } from './index';

export interface ConsumerAllocation {
  host: string;
  resources: Resources;
}

export interface HostAllocation {
  consumerId: string;
  resources: Resources;
}

export type AllocationAccess = Pick<
  PlacementRepository,
  'releaseConsumer' | 'moveAllocations' | 'getAllocations' | 'allocationsByHost'
>;

/** Allocation rows (one per resource class) summed into Resources per key, sorted by key. */
function resourcesByKey(
  rows: ReadonlyArray<{ key: string; resource_class: string; used: number | string | bigint }>
): Array<[string, Resources]> {
  const byKey = new Map<string, Resources>();
  for (const row of rows) {
    if (!isResourceClass(row.resource_class)) continue;
    let res = byKey.get(row.key);
    if (res === undefined) byKey.set(row.key, (res = zeroResources()));
    res[row.resource_class] = Number(row.used);
  }
  return [...byKey.entries()].sort(([a], [b]) => compareText(a, b));
}

export function createAllocationAccess(store: Store): AllocationAccess {
  const db = store.db;

  async function releaseConsumer(consumerId: string, host?: string): Promise<number> {
    return transaction(store, async (trx) => {
      let query = trx.selectFrom('allocations').select('provider').distinct().where('consumer_id', '=', consumerId);
      if (host !== undefined) query = query.where('provider', '=', host);
      const hosts = (await query.execute()).map((r) => r.provider).sort();
      if (hosts.length === 0) return 0;
      await bumpGenerations(trx, hosts, nowIso());
      await trx
        .deleteFrom('allocations')
        .where('consumer_id', '=', consumerId)
        .where('provider', 'in', hosts)
        .execute();
      await bumpVersion(trx, hosts);
      return hosts.length;
    });
  }

  async function moveAllocations(fromConsumer: string, toConsumer: string): Promise<void> {
    if (fromConsumer === toConsumer) return;
    await transaction(store, async (trx) => {
      const source = await trx
        .selectFrom('allocations')
        .select('provider')
        .distinct()
        .where('consumer_id', '=', fromConsumer)
        .execute();
      if (source.length === 0) return; // nothing to move: already moved, or never held
      const target = await trx
        .selectFrom('allocations')
        .select('provider')
        .distinct()
        .where('consumer_id', '=', toConsumer)
        .execute();
      const sourceHosts = source.map((r) => r.provider);
      const targetHosts = target.map((r) => r.provider);
      const hosts = [...new Set([...sourceHosts, ...targetHosts])].sort();
      await bumpGenerations(trx, hosts, nowIso());
      if (targetHosts.length > 0)
        await trx
          .deleteFrom('allocations')
          .where('consumer_id', '=', toConsumer)
          .where('provider', 'in', targetHosts)
          .execute();
      await trx
        .updateTable('allocations')
        .set({ consumer_id: toConsumer })
        .where('consumer_id', '=', fromConsumer)
        .where('provider', 'in', sourceHosts)
        .execute();
      await bumpVersion(trx, hosts);
    });
  }

  async function getAllocations(consumerId: string): Promise<ConsumerAllocation[]> {
    const rows = await db
      .selectFrom('allocations')
      .select(['provider as key', 'resource_class', 'used'])
      .where('consumer_id', '=', consumerId)
      .execute();
    return resourcesByKey(rows).map(([host, resources]) => ({ host, resources }));
  }

  async function allocationsByHost(host: string): Promise<HostAllocation[]> {
    const rows = await db
      .selectFrom('allocations')
      .select(['consumer_id as key', 'resource_class', 'used'])
      .where('provider', '=', host)
      .execute();
    return resourcesByKey(rows).map(([consumerId, resources]) => ({ consumerId, resources }));
  }

  return { releaseConsumer, moveAllocations, getAllocations, allocationsByHost };
}
