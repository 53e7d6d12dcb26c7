/**
 * Claims: a capacity check and an allocation write under a compare-and-swap of the provider generation.
 *
 * Under contention: SQLite serializes writers (BEGIN IMMEDIATE), so the compare-and-swap never loses
 * there. On PostgreSQL concurrent claims on one host race optimistically; after
 * OPTIMISTIC_CLAIM_ATTEMPTS lost races a claim reads the provider row FOR UPDATE (queues on its lock)
 * so a hot host cannot starve it; the compare-and-swap stays the correctness check either way.
 */
import { ClaimFailed, InvalidRequest } from '../../domain/errors';
import { capacity, RESOURCE_CLASSES, type Resources } from '../../domain/resources';
import { type Store, transaction } from '../db';
import { prepared } from '../prepared';
import { affected, nowIso } from '../util';
import { bumpVersion, GenerationConflict, isResourceClass, withConflictRetry, zeroResources } from './common';
import type { PlacementRepository } from './index';

/**
 * The provider's generation, inventories, usage and this consumer's share in ONE statement (one snapshot,
 * one round trip): a row per inventory.
 */
const selectClaimState = prepared((db, p: { consumerId: string; host: string }) =>
  db
    .selectFrom('resource_providers as rp')
    .leftJoin('inventories as i', 'i.provider', 'rp.name')
    .select((eb) => [
      'rp.generation',
      'i.resource_class',
      'i.total',
      'i.reserved',
      'i.allocation_ratio',
      eb
        .selectFrom('allocations as a')
        .select((sub) => sub.fn.sum<number>('a.used').as('sum'))
        .whereRef('a.provider', '=', 'rp.name')
        .whereRef('a.resource_class', '=', 'i.resource_class')
        .as('used'),
      eb
        .selectFrom('allocations as m')
        .select('m.used')
        .where('m.consumer_id', '=', p.consumerId)
        .whereRef('m.provider', '=', 'rp.name')
        .whereRef('m.resource_class', '=', 'i.resource_class')
        .as('mine'),
    ])
    .where('rp.name', '=', p.host)
);

/** The compare-and-swap of the provider's generation. */
const casGeneration = prepared((db, p: { host: string; generation: number; next: number; now: string }) =>
  db
    .updateTable('resource_providers')
    .set({ generation: p.next, updated_at: p.now })
    .where('name', '=', p.host)
    .where('generation', '=', p.generation)
);

/** Lost compare-and-swaps after which a claim locks the provider row before reading it (PostgreSQL). */
export const OPTIMISTIC_CLAIM_ATTEMPTS = 3;

function validateResources(resources: Resources): void {
  for (const rc of RESOURCE_CLASSES) {
    const amount = resources[rc];
    if (!Number.isSafeInteger(amount) || amount < 0)
      throw new InvalidRequest(`resources.${rc}`, `must be a non-negative integer, got ${String(amount)}`);
  }
}

export function createClaim(store: Store): PlacementRepository['claim'] {
  return async function claim(consumerId: string, host: string, resources: Resources): Promise<void> {
    validateResources(resources);
    await withConflictRetry(`resource provider ${host} (claim for ${consumerId})`, (attempt) =>
      transaction(store, async (trx) => {
        // Liveness on a hot host: after a few lost races, queue on the provider's row lock (PostgreSQL;
        // SQLite's BEGIN IMMEDIATE already serializes writers), so the compare-and-swap then holds.
        if (attempt > OPTIMISTIC_CLAIM_ATTEMPTS && store.dialect === 'postgres')
          await trx.selectFrom('resource_providers').select('name').where('name', '=', host).forUpdate().execute();
        // Any write committed after this read moves the generation, so the compare-and-swap below fails
        // rather than trusting a stale usage.
        const invRows = (await selectClaimState(trx, { consumerId, host })).rows;
        const provider = invRows[0];
        if (provider === undefined) throw new ClaimFailed(host, 'no such compute host is registered');
        const used = zeroResources();
        const mine = zeroResources();
        for (const row of invRows) {
          if (row.resource_class === null || !isResourceClass(row.resource_class)) continue;
          used[row.resource_class] = Number(row.used ?? 0);
          mine[row.resource_class] = Number(row.mine ?? 0);
        }
        if (RESOURCE_CLASSES.every((rc) => mine[rc] === resources[rc])) return; // already held: idempotent

        const inventories = new Map(invRows.map((r) => [r.resource_class, r]));
        for (const rc of RESOURCE_CLASSES) {
          const amount = resources[rc];
          if (amount === 0) continue;
          const inv = inventories.get(rc);
          if (inv === undefined || inv.total === null || inv.reserved === null || inv.allocation_ratio === null)
            throw new ClaimFailed(host, `no ${rc} inventory`);
          const cap = capacity({
            total: inv.total,
            reserved: inv.reserved,
            allocationRatio: Number(inv.allocation_ratio),
          });
          const others = used[rc] - mine[rc];
          if (others + amount > cap)
            throw new ClaimFailed(host, `insufficient ${rc}: requested ${amount}, used ${others}, capacity ${cap}`);
        }

        const now = nowIso();
        const cas = await casGeneration(trx, {
          host,
          generation: provider.generation,
          next: provider.generation + 1,
          now,
        });
        if (affected(cas) === 0) throw new GenerationConflict(host);

        if (RESOURCE_CLASSES.some((rc) => mine[rc] > 0))
          await trx
            .deleteFrom('allocations')
            .where('consumer_id', '=', consumerId)
            .where('provider', '=', host)
            .execute();
        const rows = RESOURCE_CLASSES.filter((rc) => resources[rc] > 0).map((rc) => ({
          consumer_id: consumerId,
          provider: host,
          resource_class: rc,
          used: resources[rc],
          created_at: now,
        }));
        if (rows.length > 0) await trx.insertInto('allocations').values(rows).execute();
        await bumpVersion(trx, [host]);
      })
    );
  };
}
