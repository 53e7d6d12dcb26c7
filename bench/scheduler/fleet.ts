/** The benchmarked fleets and request: deterministic, laid out in memory the way the store loads them. */
import type { HostSpec } from '../../src/domain/fleet';
import type { Inventory, ResourceClass, Resources } from '../../src/domain/resources';
import {
  DEFAULT_SCHEDULER_CONFIG,
  type HostState,
  type SchedulerConfig,
  type SchedulingRequest,
} from '../../src/scheduler';

/** A deterministic PRNG (mulberry32), so every run benchmarks the same fleet. */
export function seededRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRAITS = ['HW_CPU_X86_AVX2', 'HW_CPU_X86_SSE42', 'COMPUTE_IMAGE_TYPE_QCOW2', 'CUSTOM_GPU', 'CUSTOM_NVME'];

/** One row of each placement table, as the store reads them. */
interface ProviderRow {
  name: string;
  availabilityZone: string;
  architecture: string;
  disabled: boolean;
  forcedDown: boolean;
  generation: number;
  failedBuilds: number;
}

/**
 * A fleet as placement describes it: mixed host sizes and usage, two AZs, ~10% aarch64 hosts, ~3%
 * down or disabled, ~5% with recent build failures, a few instances per host.
 *
 * The HostStates are put together the way PlacementRepository.listHostStates does (src/store/
 * placement.ts): per-table passes build frozen Inventory records, trait and consumer sets and frozen
 * `used` records, keyed by provider; then one plain HostState object per host, every one of the same
 * shape. The layout in memory matters at 10,000 hosts (the pass is bound by memory there), so the
 * fixture follows the real loader rather than building each host in one go.
 */
export function makeFleet(size: number, seed = 42): HostState[] {
  const rng = seededRng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
  const providers: ProviderRow[] = [];
  const inventoryRows: { provider: string; rc: ResourceClass; total: number; reserved: number; ratio: number }[] = [];
  const traitRows: { provider: string; trait: string }[] = [];
  const allocationRows: { provider: string; consumer: string; rc: ResourceClass; used: number }[] = [];
  for (let i = 0; i < size; i++) {
    const name = `compute-${String(i).padStart(5, '0')}`;
    const vcpus = pick([16, 32, 64, 96]);
    const memoryMb = vcpus * pick([2048, 4096, 8192]);
    const diskGb = pick([500, 1000, 2000, 4000]);
    providers.push({
      name,
      availabilityZone: rng() < 0.5 ? 'az1' : 'az2',
      architecture: rng() < 0.9 ? 'x86_64' : 'aarch64',
      disabled: rng() < 0.01,
      forcedDown: rng() < 0.02,
      generation: 1 + Math.floor(rng() * 1000),
      failedBuilds: rng() < 0.05 ? 1 + Math.floor(rng() * 3) : 0,
    });
    inventoryRows.push(
      { provider: name, rc: 'VCPU', total: vcpus, reserved: 0, ratio: 4.0 },
      { provider: name, rc: 'MEMORY_MB', total: memoryMb, reserved: 512, ratio: 1.0 },
      { provider: name, rc: 'DISK_GB', total: diskGb, reserved: 0, ratio: 1.0 }
    );
    for (const trait of TRAITS) if (rng() < 0.5) traitRows.push({ provider: name, trait });
    // Up to ~95% of each class in use, spread over a few instances.
    const instances = 1 + Math.floor(rng() * 8);
    const share = [vcpus * 4, memoryMb - 512, diskGb].map((cap) => Math.floor((rng() * cap * 0.95) / instances));
    for (let n = 0; n < instances; n++) {
      const consumer = `instance-${i}-${n}`;
      allocationRows.push(
        { provider: name, consumer, rc: 'VCPU', used: share[0]! },
        { provider: name, consumer, rc: 'MEMORY_MB', used: share[1]! },
        { provider: name, consumer, rc: 'DISK_GB', used: share[2]! }
      );
    }
  }

  const inventories = new Map<string, Partial<Record<ResourceClass, Inventory>>>();
  for (const r of inventoryRows) {
    let m = inventories.get(r.provider);
    if (m === undefined) inventories.set(r.provider, (m = {}));
    m[r.rc] = Object.freeze({ total: r.total, reserved: r.reserved, allocationRatio: r.ratio });
  }
  const traits = new Map<string, Set<string>>();
  for (const r of traitRows) {
    let t = traits.get(r.provider);
    if (t === undefined) traits.set(r.provider, (t = new Set()));
    t.add(r.trait);
  }
  const used = new Map<string, Resources>();
  const consumers = new Map<string, Set<string>>();
  for (const r of allocationRows) {
    let u = used.get(r.provider);
    if (u === undefined) used.set(r.provider, (u = { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 }));
    u[r.rc] += r.used;
    let c = consumers.get(r.provider);
    if (c === undefined) consumers.set(r.provider, (c = new Set()));
    c.add(r.consumer);
  }
  const none: ReadonlySet<string> = new Set();
  const zero: Inventory = Object.freeze({ total: 0, reserved: 0, allocationRatio: 1 });
  const states = providers.map((p) => {
    const inv = inventories.get(p.name) ?? {};
    return {
      row: p,
      traits: traits.get(p.name) ?? none,
      inventories: Object.freeze({
        VCPU: inv.VCPU ?? zero,
        MEMORY_MB: inv.MEMORY_MB ?? zero,
        DISK_GB: inv.DISK_GB ?? zero,
      }),
      used: Object.freeze(used.get(p.name) ?? { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 }),
      instances: consumers.get(p.name) ?? none,
    };
  });

  // A packed array (push, not `new Array(n)`), so that the baseline loop is as fast as it can be.
  const hosts: HostState[] = [];
  for (const s of states) {
    hosts.push({
      host: s.row.name,
      availabilityZone: s.row.availabilityZone,
      architecture: s.row.architecture,
      traits: s.traits,
      enabled: !s.row.disabled,
      disabledReason: s.row.disabled ? 'maintenance' : null,
      forcedDown: s.row.forcedDown,
      up: !s.row.forcedDown,
      inventories: s.inventories,
      used: s.used,
      generation: s.row.generation,
      failedBuilds: s.row.failedBuilds,
      instances: s.instances,
    });
  }
  return hosts;
}

/** The benchmarked request: one m1.medium on Ubuntu (x86_64), maxAttempts 3, no hints. */
export const BENCH_REQUEST: SchedulingRequest = {
  instanceIds: ['bench-instance-1'],
  flavor: { name: 'm1.medium', vcpus: 2, memoryMb: 4096, diskGb: 40, extraSpecs: {} },
  image: {
    name: 'ubuntu-24.04',
    sizeGb: 3,
    minDiskGb: 3,
    minRamMb: 1024,
    properties: { hwArchitecture: 'x86_64', traitsRequired: [] },
  },
  maxAttempts: 3,
};

export const BENCH_CONFIG: SchedulerConfig = DEFAULT_SCHEDULER_CONFIG;

/** The host specs a fleet's hosts were registered with (the inverse of listHostStates). */
export function fleetSpecs(hosts: readonly HostState[]): HostSpec[] {
  return hosts.map((h) => ({
    name: h.host,
    availabilityZone: h.availabilityZone,
    architecture: h.architecture,
    vcpus: h.inventories.VCPU.total,
    memoryMb: h.inventories.MEMORY_MB.total,
    diskGb: h.inventories.DISK_GB.total,
    reserved: {
      vcpus: h.inventories.VCPU.reserved,
      memoryMb: h.inventories.MEMORY_MB.reserved,
      diskGb: h.inventories.DISK_GB.reserved,
    },
    allocationRatio: {
      vcpus: h.inventories.VCPU.allocationRatio,
      memoryMb: h.inventories.MEMORY_MB.allocationRatio,
      diskGb: h.inventories.DISK_GB.allocationRatio,
    },
    traits: [...h.traits],
  }));
}
