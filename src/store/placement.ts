/**
 * Placement: resource providers (one per compute host), inventories, traits and allocations, with
 * claims as compare-and-swap on the provider generation (nova/scheduler/client/report.py and the
 * placement service it talks to, in one small repository).
 *
 * Consistency rules (every write follows them, in this order, inside one transaction):
 * 1. lock the provider rows it touches by updating them, in host-name order: allocation, inventory and
 *    trait writes bump `generation` (a claim as `... WHERE generation = <read value>`: 0 rows means a
 *    concurrent write, retry), host flags and failed_builds only touch their columns;
 * 2. write inventories / traits / allocations;
 * 3. bump the single `placement_state.version` row and stamp it on the touched providers
 *    (`changed_version`). That row is always locked last, so versions are handed out in commit order.
 *
 * listHostStates cache: each repository keeps the host states it last loaded with the version it read
 * BEFORE loading. A call first reads the version (one indexed row); unchanged → no other query;
 * changed → reloads only the providers whose `changed_version` is newer (plus their inventories,
 * traits and allocations), or everything when more than INCREMENTAL_REFRESH_LIMIT changed. Anything
 * committed after the version read has a larger version, so it is picked up next time: never stale
 * beyond the call's start. This relies on every placement write going through this repository (or
 * bumping `placement_state.version` and `changed_version` itself). The array is new per call, its
 * HostStates are FROZEN objects reused across calls while their host is unchanged (one per value of
 * `up`, which is evaluated per call): callers copy before changing one (consumeFromRequest does).
 *
 * Claims under contention: SQLite serializes writers (BEGIN IMMEDIATE), so the compare-and-swap never
 * loses there. On PostgreSQL concurrent claims on one host race optimistically; after
 * OPTIMISTIC_CLAIM_ATTEMPTS lost races a claim reads the provider row FOR UPDATE (queues on its lock)
 * so a hot host cannot starve it; the compare-and-swap stays the correctness check either way.
 */
import type { Transaction } from 'kysely';

import { ClaimFailed, ConcurrentUpdate, InvalidRequest } from '../domain/errors';
import { MIGRATION_FINISHED_STATUSES } from '../domain/migration';
import type { HostSpec } from '../domain/fleet';
import { capacity, type Inventory, RESOURCE_CLASSES, type ResourceClass, type Resources } from '../domain/resources';
import type { HostState } from '../domain/host';
import { backoffMs, sleep, type Store, transaction } from './db';
import type { Database } from './schema';
import { affected, nowIso } from './util';

/** Migration statuses after which a migration no longer holds allocations (anything else is in progress). */
export { MIGRATION_FINISHED_STATUSES };
/**
 * A live instance may hold allocations: any instance not deleted, except an `error` instance with no host
 * (a build that failed must hold nothing). An `error` instance still on its host (a failed rebuild or
 * resize) keeps its allocation, as in Nova, whose audit flags only consumers that do not exist.
 */

/** Compare-and-swap attempts of one claim before it gives up with ConcurrentUpdate. */
export const CLAIM_ATTEMPTS = 10;
/** Lost compare-and-swaps after which a claim locks the provider row before reading it (PostgreSQL). */
export const OPTIMISTIC_CLAIM_ATTEMPTS = 3;
/** More changed providers than this since the cached version: reload everything instead. */
export const INCREMENTAL_REFRESH_LIMIT = 500;

export interface ConsumerAllocation {
  host: string;
  resources: Resources;
}

export interface HostAllocation {
  consumerId: string;
  resources: Resources;
}

export interface PlacementAudit {
  /** Allocations whose consumer is neither a live instance nor an in-progress migration. */
  orphans: Array<{ consumerId: string; host: string }>;
  /** Resource classes whose allocations exceed floor((total - reserved) * ratio). */
  overCapacity: Array<{ host: string; resourceClass: ResourceClass; used: number; capacity: number }>;
}

export interface PlacementRepository {
  /**
   * Registers or updates a host's provider: VCPU/MEMORY_MB/DISK_GB inventories (total, reserved,
   * ratio), traits (replaced), availability zone and architecture. Bumps the generation only when
   * something changed (a new provider starts at generation 1). Idempotent.
   */
  upsertProvider(spec: HostSpec): Promise<void>;
  /** upsertProvider for many hosts; new providers are inserted in batches (fleet registration, benchmarks). */
  upsertProviders(specs: readonly HostSpec[]): Promise<void>;
  /** Disables (with a reason) or enables a host; enabling clears the reason. InvalidRequest for an unknown host. */
  setDisabled(host: string, disabled: boolean, reason?: string | null): Promise<void>;
  /** Nova's forced_down: the host is reported down whatever its liveness. InvalidRequest for an unknown host. */
  setForcedDown(host: string, forcedDown: boolean): Promise<void>;
  /** Every provider as the scheduler sees it; `up = !forcedDown && isUp(host)`. Sorted by host name. */
  listHostStates(isUp: (host: string) => boolean): Promise<HostState[]>;
  /**
   * Claims `resources` on `host` for the consumer: capacity check and allocation write under a
   * compare-and-swap of the provider generation, retried on conflict (CLAIM_ATTEMPTS, jittered), then
   * ConcurrentUpdate. ClaimFailed (naming the resource class) when the host lacks room, ClaimFailed for
   * an unknown host. Idempotent: holding exactly these resources there already is a no-op. Holding
   * different amounts there replaces them (placement's PUT semantics, checked as a delta). A consumer may
   * hold allocations on several hosts (an evacuation holds source and destination).
   */
  claim(consumerId: string, host: string, resources: Resources): Promise<void>;
  /** Deletes the consumer's allocations (on `host` only, when given). Returns how many hosts it released. Idempotent. */
  releaseConsumer(consumerId: string, host?: string): Promise<number>;
  /**
   * Atomically gives `toConsumer` everything `fromConsumer` holds (replacing what `toConsumer` held)
   * and leaves `fromConsumer` with nothing. A no-op when `fromConsumer` holds nothing (already moved).
   */
  moveAllocations(fromConsumer: string, toConsumer: string): Promise<void>;
  getAllocations(consumerId: string): Promise<ConsumerAllocation[]>;
  allocationsByHost(host: string): Promise<HostAllocation[]>;
  /** Nova's failed_builds counter: +1 on a failure, reset to 0 on a success. InvalidRequest for an unknown host. */
  recordBuildResult(host: string, success: boolean): Promise<void>;
  /** Nova's `nova-manage placement audit`: orphaned allocations and over-committed hosts. Read-only. */
  audit(): Promise<PlacementAudit>;
}

export interface PlacementRepositoryOptions {
  /** Cache host states between listHostStates calls, validated by the placement version (default true). */
  cacheHostStates?: boolean;
}

type Trx = Transaction<Database>;

/** The provider generation moved between our read and our compare-and-swap. */
class GenerationConflict extends Error {
  constructor(readonly host: string) {
    super(`generation conflict on ${host}`);
  }
}

interface CachedHost {
  state: Omit<HostState, 'up'>;
  forcedDown: boolean;
  /** The frozen HostState last handed out with up = true / false (reused while the host is unchanged). */
  whenUp?: HostState;
  whenDown?: HostState;
}

interface HostCache {
  version: number;
  /** Sorted by host name. */
  list: CachedHost[];
  /** Host name -> position in `list`. */
  index: Map<string, number>;
}

const ZERO_INVENTORY: Inventory = Object.freeze({ total: 0, reserved: 0, allocationRatio: 1 });

/** One literal shape for every HostState handed out (keeps the scheduler's hot loop monomorphic). */
function toHostState(s: Omit<HostState, 'up'>, up: boolean): HostState {
  return Object.freeze({
    host: s.host,
    availabilityZone: s.availabilityZone,
    architecture: s.architecture,
    traits: s.traits,
    enabled: s.enabled,
    disabledReason: s.disabledReason,
    up,
    inventories: s.inventories,
    used: s.used,
    generation: s.generation,
    failedBuilds: s.failedBuilds,
    instances: s.instances,
  });
}

function zeroResources(): Resources {
  return { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 };
}

function isResourceClass(rc: string): rc is ResourceClass {
  return (RESOURCE_CLASSES as readonly string[]).includes(rc);
}

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

/** Whether the stored inventories and traits of a provider already match its spec. */
function compareProvider(
  spec: HostSpec,
  invRows: readonly { resource_class: string; total: number; reserved: number; allocation_ratio: number }[],
  traitRows: readonly { trait: string }[]
): { invSame: boolean; traitsSame: boolean } {
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
  return { invSame, traitsSame };
}

function unknownHost(host: string): InvalidRequest {
  return new InvalidRequest('host', `no compute host named '${host}' is registered`);
}

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list === undefined) out.set(k, [item]);
    else list.push(item);
  }
  return out;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Step 3 of every write: bump the global version and stamp it on the (already locked) providers. */
async function bumpVersion(trx: Trx, hosts: readonly string[]): Promise<void> {
  const { version } = await trx
    .updateTable('placement_state')
    .set((eb) => ({ version: eb('version', '+', 1) }))
    .where('id', '=', 1)
    .returning('version')
    .executeTakeFirstOrThrow();
  for (const part of chunks(hosts, 500)) {
    await trx
      .updateTable('resource_providers')
      .set({ changed_version: Number(version) })
      .where('name', 'in', part)
      .execute();
  }
}

/** Step 1 for writes that need no compare-and-swap (releases, moves): lock and bump, in name order. */
async function bumpGenerations(trx: Trx, hosts: readonly string[], now: string): Promise<void> {
  for (const host of [...hosts].sort()) {
    await trx
      .updateTable('resource_providers')
      .set((eb) => ({ generation: eb('generation', '+', 1), updated_at: now }))
      .where('name', '=', host)
      .execute();
  }
}

function validateResources(resources: Resources): void {
  for (const rc of RESOURCE_CLASSES) {
    const amount = resources[rc];
    if (!Number.isSafeInteger(amount) || amount < 0)
      throw new InvalidRequest(`resources.${rc}`, `must be a non-negative integer, got ${String(amount)}`);
  }
}

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
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export function createPlacementRepository(store: Store, options: PlacementRepositoryOptions = {}): PlacementRepository {
  const db = store.db;
  const useCache = options.cacheHostStates ?? true;
  let cache: HostCache | undefined;
  let refreshing: Promise<HostCache> | undefined;

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
    await trx
      .insertInto('inventories')
      .values(
        specs.flatMap((spec) => {
          const inv = specInventories(spec);
          return RESOURCE_CLASSES.map((rc) => ({
            provider: spec.name,
            resource_class: rc,
            total: inv[rc].total,
            reserved: inv[rc].reserved,
            allocation_ratio: inv[rc].allocationRatio,
          }));
        })
      )
      .execute();
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
    const { invSame, traitsSame } = compareProvider(spec, invRows, traitRows);
    if (
      invSame &&
      traitsSame &&
      row.availability_zone === spec.availabilityZone &&
      row.architecture === spec.architecture
    )
      return false;
    const want = specInventories(spec);
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
      await trx
        .insertInto('inventories')
        .values(
          RESOURCE_CLASSES.map((rc) => ({
            provider: spec.name,
            resource_class: rc,
            total: want[rc].total,
            reserved: want[rc].reserved,
            allocation_ratio: want[rc].allocationRatio,
          }))
        )
        .execute();
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

  /** Runs a write, retrying generation conflicts and a lost insert race (both: someone else wrote first). */
  async function withConflictRetry<T>(what: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (err) {
        const retryable = err instanceof GenerationConflict || isUniqueViolation(err);
        if (!retryable) throw err;
        if (attempt >= CLAIM_ATTEMPTS) throw new ConcurrentUpdate(what);
        await sleep(backoffMs(attempt));
      }
    }
  }

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
        const { invSame, traitsSame } = compareProvider(spec, invOf.get(r.name) ?? [], traitsOf.get(r.name) ?? []);
        if (
          invSame &&
          traitsSame &&
          r.availability_zone === spec.availabilityZone &&
          r.architecture === spec.architecture
        )
          unchanged.add(r.name);
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
    });
  }

  async function claim(consumerId: string, host: string, resources: Resources): Promise<void> {
    validateResources(resources);
    await withConflictRetry(`resource provider ${host} (claim for ${consumerId})`, (attempt) =>
      transaction(store, async (trx) => {
        // Liveness on a hot host: after a few lost races, queue on the provider's row lock (PostgreSQL;
        // SQLite's BEGIN IMMEDIATE already serializes writers), so the compare-and-swap then holds.
        if (attempt > OPTIMISTIC_CLAIM_ATTEMPTS && store.dialect === 'postgres')
          await trx.selectFrom('resource_providers').select('name').where('name', '=', host).forUpdate().execute();
        // Generation, inventories, usage and this consumer's share in ONE statement (one snapshot, one
        // round trip). Any write committed after it moves the generation, so the compare-and-swap below
        // fails rather than trusting a stale usage.
        const invRows = await trx
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
              .where('m.consumer_id', '=', consumerId)
              .whereRef('m.provider', '=', 'rp.name')
              .whereRef('m.resource_class', '=', 'i.resource_class')
              .as('mine'),
          ])
          .where('rp.name', '=', host)
          .execute();
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
        const cas = await trx
          .updateTable('resource_providers')
          .set({ generation: provider.generation + 1, updated_at: now })
          .where('name', '=', host)
          .where('generation', '=', provider.generation)
          .executeTakeFirst();
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
  }

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

  async function audit(): Promise<PlacementAudit> {
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
  }

  // --- listHostStates and its cache ---

  async function readVersion(): Promise<number> {
    const row = await db.selectFrom('placement_state').select('version').where('id', '=', 1).executeTakeFirstOrThrow();
    return Number(row.version);
  }

  /** Loads providers changed after `sinceVersion` (all when undefined); undefined when too many changed. */
  async function loadHosts(sinceVersion: number | undefined): Promise<Map<string, CachedHost> | undefined> {
    let providerQuery = db
      .selectFrom('resource_providers')
      .select([
        'name',
        'availability_zone',
        'architecture',
        'disabled',
        'disabled_reason',
        'forced_down',
        'generation',
        'failed_builds',
      ]);
    if (sinceVersion !== undefined) providerQuery = providerQuery.where('changed_version', '>', sinceVersion);
    const providers = await providerQuery.execute();
    const out = new Map<string, CachedHost>();
    if (providers.length === 0) return out;
    if (sinceVersion !== undefined && providers.length > INCREMENTAL_REFRESH_LIMIT) return undefined;
    const names = providers.map((p) => p.name);
    const only = sinceVersion === undefined ? undefined : names;

    const invQuery = db
      .selectFrom('inventories')
      .select(['provider', 'resource_class', 'total', 'reserved', 'allocation_ratio']);
    const traitQuery = db.selectFrom('traits').select(['provider', 'trait']);
    const allocQuery = db.selectFrom('allocations').select(['provider', 'consumer_id', 'resource_class', 'used']);
    const [invRows, traitRows, allocRows] = await Promise.all([
      (only ? invQuery.where('provider', 'in', only) : invQuery).execute(),
      (only ? traitQuery.where('provider', 'in', only) : traitQuery).execute(),
      (only ? allocQuery.where('provider', 'in', only) : allocQuery).execute(),
    ]);

    const inventories = new Map<string, Partial<Record<ResourceClass, Inventory>>>();
    for (const r of invRows) {
      if (!isResourceClass(r.resource_class)) continue;
      let m = inventories.get(r.provider);
      if (m === undefined) inventories.set(r.provider, (m = {}));
      m[r.resource_class] = Object.freeze({
        total: r.total,
        reserved: r.reserved,
        allocationRatio: Number(r.allocation_ratio),
      });
    }
    const traits = new Map<string, Set<string>>();
    for (const r of traitRows) {
      let s = traits.get(r.provider);
      if (s === undefined) traits.set(r.provider, (s = new Set()));
      s.add(r.trait);
    }
    const used = new Map<string, Resources>();
    const consumers = new Map<string, Set<string>>();
    for (const r of allocRows) {
      let u = used.get(r.provider);
      if (u === undefined) used.set(r.provider, (u = zeroResources()));
      if (isResourceClass(r.resource_class)) u[r.resource_class] += Number(r.used);
      let c = consumers.get(r.provider);
      if (c === undefined) consumers.set(r.provider, (c = new Set()));
      c.add(r.consumer_id);
    }
    const noTraits: ReadonlySet<string> = new Set();
    const noInstances: ReadonlySet<string> = new Set();
    for (const p of providers) {
      const inv = inventories.get(p.name) ?? {};
      out.set(p.name, {
        forcedDown: p.forced_down !== 0,
        state: {
          host: p.name,
          availabilityZone: p.availability_zone,
          architecture: p.architecture,
          traits: traits.get(p.name) ?? noTraits,
          enabled: p.disabled === 0,
          disabledReason: p.disabled_reason,
          inventories: Object.freeze({
            VCPU: inv.VCPU ?? ZERO_INVENTORY,
            MEMORY_MB: inv.MEMORY_MB ?? ZERO_INVENTORY,
            DISK_GB: inv.DISK_GB ?? ZERO_INVENTORY,
          }),
          used: Object.freeze(used.get(p.name) ?? zeroResources()),
          generation: p.generation,
          failedBuilds: p.failed_builds,
          instances: consumers.get(p.name) ?? noInstances,
        },
      });
    }
    return out;
  }

  function buildCache(version: number, hosts: Iterable<CachedHost>): HostCache {
    const list = [...hosts].sort((a, b) => (a.state.host < b.state.host ? -1 : a.state.host > b.state.host ? 1 : 0));
    return { version, list, index: new Map(list.map((h, i) => [h.state.host, i])) };
  }

  async function refresh(previous: HostCache | undefined): Promise<HostCache> {
    // The version is read BEFORE the rows: whatever commits later carries a larger version.
    const version = await readVersion();
    if (previous !== undefined && previous.version === version) return previous;
    if (previous !== undefined) {
      const changed = await loadHosts(previous.version);
      if (changed !== undefined) {
        if ([...changed.keys()].some((name) => !previous.index.has(name))) {
          const merged = new Map(previous.list.map((h) => [h.state.host, h]));
          for (const [name, host] of changed) merged.set(name, host);
          return buildCache(version, merged.values());
        }
        // Only known hosts changed: swap their entries in place. Safe: readers copy out of `list`
        // synchronously right after their refresh resolves, before any later refresh's I/O completes.
        for (const [name, host] of changed) previous.list[previous.index.get(name)!] = host;
        previous.version = version;
        return previous;
      }
    }
    return buildCache(version, (await loadHosts(undefined))!.values());
  }

  async function currentHosts(): Promise<HostCache> {
    if (!useCache) return refresh(undefined);
    // Wait out a refresh started before this call, then refresh again: its version read may predate
    // a write this caller already saw committed (read-your-writes for claim-then-list).
    while (refreshing !== undefined) await refreshing.catch(() => undefined);
    const run = refresh(cache).then((fresh) => (cache = fresh));
    refreshing = run;
    try {
      return await run;
    } finally {
      if (refreshing === run) refreshing = undefined;
    }
  }

  async function listHostStates(isUp: (host: string) => boolean): Promise<HostState[]> {
    const { list } = await currentHosts();
    const out = new Array<HostState>(list.length);
    for (let i = 0; i < list.length; i++) {
      const cached = list[i]!;
      if (!cached.forcedDown && isUp(cached.state.host)) out[i] = cached.whenUp ??= toHostState(cached.state, true);
      else out[i] = cached.whenDown ??= toHostState(cached.state, false);
    }
    return out;
  }

  return {
    upsertProvider,
    upsertProviders,
    setDisabled: (host, disabled, reason) =>
      setFlag(host, { disabled: disabled ? 1 : 0, disabled_reason: disabled ? (reason ?? null) : null }),
    setForcedDown: (host, forcedDown) => setFlag(host, { forced_down: forcedDown ? 1 : 0 }),
    listHostStates,
    claim,
    releaseConsumer,
    moveAllocations,
    getAllocations,
    allocationsByHost,
    recordBuildResult,
    audit,
  };
}
