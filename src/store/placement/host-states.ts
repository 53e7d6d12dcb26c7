/**
 * listHostStates and its cache: each repository keeps the host states it last loaded with the version it
 * read BEFORE loading. A call first reads the version (one indexed row); unchanged → no other query;
 * changed → reloads only the providers whose `changed_version` is newer (plus their inventories,
 * traits and allocations), or everything when more than INCREMENTAL_REFRESH_LIMIT changed. Anything
 * committed after the version read has a larger version, so it is picked up next time: never stale
 * beyond the call's start. This relies on every placement write going through this repository (or
 * bumping `placement_state.version` and `changed_version` itself). The array is new per call, its
 * HostStates are FROZEN objects reused across calls while their host is unchanged (one per value of
 * `up`, which is evaluated per call): callers copy before changing one (consumeFromRequest does).
 */
import type { Inventory, ResourceClass, Resources } from '../../domain/resources';
import type { HostState } from '../../domain/host';
import type { Store } from '../db';
import { compareText } from '../util';
import { isResourceClass, zeroResources } from './common';
import type { PlacementRepository } from './index';

/** More changed providers than this since the cached version: reload everything instead. */
export const INCREMENTAL_REFRESH_LIMIT = 500;

interface CachedHost {
  state: Omit<HostState, 'up'>;
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
    forcedDown: s.forcedDown,
    up,
    inventories: s.inventories,
    used: s.used,
    generation: s.generation,
    failedBuilds: s.failedBuilds,
    instances: s.instances,
  });
}

function buildCache(version: number, hosts: Iterable<CachedHost>): HostCache {
  const list = [...hosts].sort((a, b) => compareText(a.state.host, b.state.host));
  return { version, list, index: new Map(list.map((h, i) => [h.state.host, i])) };
}

export function createHostStates(store: Store, useCache: boolean): PlacementRepository['listHostStates'] {
  const db = store.db;
  let cache: HostCache | undefined;
  let refreshing: Promise<HostCache> | undefined;

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
        state: {
          host: p.name,
          availabilityZone: p.availability_zone,
          architecture: p.architecture,
          traits: traits.get(p.name) ?? noTraits,
          enabled: p.disabled === 0,
          disabledReason: p.disabled_reason,
          forcedDown: p.forced_down !== 0,
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

  return async function listHostStates(isUp: (host: string) => boolean): Promise<HostState[]> {
    const { list } = await currentHosts();
    const out = new Array<HostState>(list.length);
    for (let i = 0; i < list.length; i++) {
      const cached = list[i]!;
      if (!cached.state.forcedDown && isUp(cached.state.host))
        out[i] = cached.whenUp ??= toHostState(cached.state, true);
      else out[i] = cached.whenDown ??= toHostState(cached.state, false);
    }
    return out;
  };
}
