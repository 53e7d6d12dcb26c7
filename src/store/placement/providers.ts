/**
 * Resource providers: registering and updating hosts (inventories, traits, zone, architecture), the
 * host flags (disabled, forced_down) and Nova's failed_builds counter.
 */
import { InvalidRequest } from '../../domain/errors';
import type { HostSpec } from '../../domain/fleet';
import { type Inventory, RESOURCE_CLASSES, type ResourceClass } from '../../domain/resources';
import { type Store, transaction } from '../db';
import { notifyServiceUpdate } from '../notifications';
import { affected, chunks, groupBy, nowIso } from '../util';
import {
  bumpVersion,
  GenerationConflict,
  isResourceClass,
  isUniqueViolation,
  type Trx,
  unknownHost,
  withConflictRetry,
} from './common';
import type { PlacementRepository } from './index';

export type ProviderWrites = Pick<
  PlacementRepository,
  'upsertProvider' | 'upsertProviders' | 'setDisabled' | 'setForcedDown' | 'recordBuildResult'
>;

function specInventories(spec: HostSpec): Record<ResourceClass, Inventory> {
  return {
    VCPU: { total: spec.vcpus, reserved: spec.reserved.vcpus, allocationRatio: spec.allocationRatio.vcpus },
    MEMORY_MB: {
      total: spec.memoryMb,
      reserved: spec.reserved.memoryMb,
      allocationRatio: spec.allocationRatio.memoryMb,
    },
    DISK_GB: { total: spec.diskGb, reserved: spec.reserved.diskGb, allocationRatio: spec.allocationRatio.diskGb },
  };
}

/** The inventories table rows of a spec, one per resource class. */
function inventoryRows(spec: HostSpec) {
  const inv = specInventories(spec);
  return RESOURCE_CLASSES.map((rc) => ({
    provider: spec.name,
    resource_class: rc,
    total: inv[rc].total,
    reserved: inv[rc].reserved,
    allocation_ratio: inv[rc].allocationRatio,
  }));
}

/**
 * Whether the stored provider already matches its spec: its inventories, its traits, and all of it
 * (inventories, traits, availability zone and architecture).
 */
function compareProvider(
  spec: HostSpec,
  row: { availability_zone: string; architecture: string },
  invRows: readonly { resource_class: string; total: number; reserved: number; allocation_ratio: number }[],
  traitRows: readonly { trait: string }[]
): { invSame: boolean; traitsSame: boolean; same: boolean } {
  const want = specInventories(spec);
  const wantTraits = [...new Set(spec.traits)].sort();
  const haveTraits = traitRows.map((t) => t.trait).sort();
  const invSame =
    invRows.length === RESOURCE_CLASSES.length &&
    invRows.every((r) => {
      if (!isResourceClass(r.resource_class)) return false;
      const w = want[r.resource_class];
      return w.total === r.total && w.reserved === r.reserved && w.allocationRatio === Number(r.allocation_ratio);
    });
  const traitsSame = wantTraits.length === haveTraits.length && wantTraits.every((t, i) => t === haveTraits[i]);
  const same =
    invSame && traitsSame && row.availability_zone === spec.availabilityZone && row.architecture === spec.architecture;
  return { invSame, traitsSame, same };
}

/** Inserts new providers with their inventories and traits (one host, or a batch at registration). */
async function insertNewProviders(trx: Trx, specs: readonly HostSpec[], now: string): Promise<void> {
  await trx
    .insertInto('resource_providers')
    .values(
      specs.map((spec) => ({
        name: spec.name,
        availability_zone: spec.availabilityZone,
        architecture: spec.architecture,
        disabled: 0,
        disabled_reason: null,
        forced_down: 0,
        generation: 1,
        failed_builds: 0,
        changed_version: 0,
        updated_at: now,
      }))
    )
    .execute();
  await trx.insertInto('inventories').values(specs.flatMap(inventoryRows)).execute();
  const traits = specs.flatMap((spec) => [...new Set(spec.traits)].map((trait) => ({ provider: spec.name, trait })));
  for (const part of chunks(traits, 500)) await trx.insertInto('traits').values(part).execute();
}

/** The upsert of one provider inside a transaction; returns whether anything changed. */
async function upsertIn(trx: Trx, spec: HostSpec, now: string): Promise<boolean> {
  const row = await trx
    .selectFrom('resource_providers')
    .select(['generation', 'availability_zone', 'architecture'])
    .where('name', '=', spec.name)
    .executeTakeFirst();
  if (row === undefined) {
    await insertNewProviders(trx, [spec], now);
    return true;
  }
  const [invRows, traitRows] = await Promise.all([
    trx.selectFrom('inventories').selectAll().where('provider', '=', spec.name).execute(),
    trx.selectFrom('traits').select('trait').where('provider', '=', spec.name).execute(),
  ]);
  const { invSame, traitsSame, same } = compareProvider(spec, row, invRows, traitRows);
  if (same) return false;
  const wantTraits = [...new Set(spec.traits)].sort();

  const cas = await trx
    .updateTable('resource_providers')
    .set({
      generation: row.generation + 1,
      availability_zone: spec.availabilityZone,
      architecture: spec.architecture,
      updated_at: now,
    })
    .where('name', '=', spec.name)
    .where('generation', '=', row.generation)
    .executeTakeFirst();
  if (affected(cas) === 0) throw new GenerationConflict(spec.name);
  if (!invSame) {
    // NOTE(nova): placement refuses to shrink an inventory below its allocations (InventoryInUse);
    // a fake fleet file may, and the audit then reports the host as over capacity.
    await trx.deleteFrom('inventories').where('provider', '=', spec.name).execute();
    await trx.insertInto('inventories').values(inventoryRows(spec)).execute();
  }
  if (!traitsSame) {
    await trx.deleteFrom('traits').where('provider', '=', spec.name).execute();
    if (wantTraits.length > 0)
      await trx
        .insertInto('traits')
        .values(wantTraits.map((trait) => ({ provider: spec.name, trait })))
        .execute();
  }
  return true;
}

export function createProviderWrites(store: Store): ProviderWrites {
  const db = store.db;

  async function upsertProvider(spec: HostSpec): Promise<void> {
    await withConflictRetry(`resource provider ${spec.name}`, () =>
      transaction(store, async (trx) => {
        if (await upsertIn(trx, spec, nowIso())) await bumpVersion(trx, [spec.name]);
      })
    );
  }

  async function upsertProviders(specs: readonly HostSpec[]): Promise<void> {
    const names = new Set<string>();
    for (const spec of specs) {
      if (names.has(spec.name)) throw new InvalidRequest('hosts', `host '${spec.name}' is listed twice`);
      names.add(spec.name);
    }
    const existing = new Set<string>();
    const unchanged = new Set<string>();
    const byName = new Map(specs.map((s) => [s.name, s]));
    for (const part of chunks([...names], 500)) {
      const [rows, invRows, traitRows] = await Promise.all([
        db
          .selectFrom('resource_providers')
          .select(['name', 'availability_zone', 'architecture'])
          .where('name', 'in', part)
          .execute(),
        db.selectFrom('inventories').selectAll().where('provider', 'in', part).execute(),
        db.selectFrom('traits').selectAll().where('provider', 'in', part).execute(),
      ]);
      const invOf = groupBy(invRows, (i) => i.provider);
      const traitsOf = groupBy(traitRows, (t) => t.provider);
      for (const r of rows) {
        existing.add(r.name);
        const spec = byName.get(r.name)!;
        if (compareProvider(spec, r, invOf.get(r.name) ?? [], traitsOf.get(r.name) ?? []).same) unchanged.add(r.name);
      }
    }
    // Changed hosts (rare): one at a time, with the generation compare-and-swap.
    for (const spec of specs) if (existing.has(spec.name) && !unchanged.has(spec.name)) await upsertProvider(spec);
    // New providers (fleet registration): batched multi-row inserts, 100 providers per transaction.
    const fresh = specs.filter((s) => !existing.has(s.name));
    for (const batch of chunks(fresh, 100)) {
      try {
        await transaction(store, async (trx) => {
          await insertNewProviders(trx, batch, nowIso());
          await bumpVersion(
            trx,
            batch.map((s) => s.name)
          );
        });
      } catch (err) {
        // Someone registered one of these meanwhile: fall back to the one-by-one upsert.
        if (!isUniqueViolation(err)) throw err;
        for (const spec of batch) await upsertProvider(spec);
      }
    }
  }

  async function setFlag(
    host: string,
    set: { disabled?: number; disabled_reason?: string | null; forced_down?: number }
  ) {
    await transaction(store, async (trx) => {
      const result = await trx
        .updateTable('resource_providers')
        .set({ ...set, updated_at: nowIso() })
        .where('name', '=', host)
        .executeTakeFirst();
      if (affected(result) === 0) throw unknownHost(host);
      await bumpVersion(trx, [host]);
      await notifyServiceUpdate(trx, host);
    });
  }

  async function recordBuildResult(host: string, success: boolean): Promise<void> {
    await transaction(store, async (trx) => {
      const row = await trx
        .selectFrom('resource_providers')
        .select('failed_builds')
        .where('name', '=', host)
        .executeTakeFirst();
      if (row === undefined) throw unknownHost(host);
      if (success && row.failed_builds === 0) return;
      await trx
        .updateTable('resource_providers')
        .set((eb) => ({ failed_builds: success ? 0 : eb('failed_builds', '+', 1), updated_at: nowIso() }))
        .where('name', '=', host)
        .execute();
      await bumpVersion(trx, [host]);
    });
  }

  return {
    upsertProvider,
    upsertProviders,
    setDisabled: (host, disabled, reason) =>
      setFlag(host, { disabled: disabled ? 1 : 0, disabled_reason: disabled ? (reason ?? null) : null }),
    setForcedDown: (host, forcedDown) => setFlag(host, { forced_down: forcedDown ? 1 : 0 }),
    recordBuildResult,
  };
}
