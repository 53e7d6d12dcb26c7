/** HostState and SchedulingRequest builders for the scheduler unit tests. */
import type { Flavor, Image } from '../../../src/domain/catalogue';
import type { Resources } from '../../../src/domain/resources';
import {
  DEFAULT_SCHEDULER_CONFIG,
  type HostState,
  type Rng,
  type SchedulerConfig,
  type SchedulingRequest,
} from '../../../src/scheduler/types';

export interface HostFixture {
  availabilityZone?: string;
  architecture?: string;
  traits?: string[];
  enabled?: boolean;
  up?: boolean;
  /** Inventory totals. */
  vcpus?: number;
  memoryMb?: number;
  diskGb?: number;
  reserved?: Partial<Resources>;
  allocationRatio?: Partial<Resources>;
  used?: Partial<Resources>;
  failedBuilds?: number;
  instances?: string[];
}

/** A healthy, empty x86_64 host in AZ `nova`: 16 vCPUs, 32 GiB, 500 GB, nothing reserved, ratios 1. */
export function makeHost(name: string, f: HostFixture = {}): HostState {
  const reserved = { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0, ...f.reserved };
  const ratio = { VCPU: 1, MEMORY_MB: 1, DISK_GB: 1, ...f.allocationRatio };
  return {
    host: name,
    availabilityZone: f.availabilityZone ?? 'nova',
    architecture: f.architecture ?? 'x86_64',
    traits: new Set(f.traits ?? []),
    enabled: f.enabled ?? true,
    disabledReason: f.enabled === false ? 'disabled by test' : null,
    forcedDown: false,
    up: f.up ?? true,
    inventories: {
      VCPU: { total: f.vcpus ?? 16, reserved: reserved.VCPU, allocationRatio: ratio.VCPU },
      MEMORY_MB: { total: f.memoryMb ?? 32768, reserved: reserved.MEMORY_MB, allocationRatio: ratio.MEMORY_MB },
      DISK_GB: { total: f.diskGb ?? 500, reserved: reserved.DISK_GB, allocationRatio: ratio.DISK_GB },
    },
    used: { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0, ...f.used },
    generation: 1,
    failedBuilds: f.failedBuilds ?? 0,
    instances: new Set(f.instances ?? []),
  };
}

export function makeFlavor(f: Partial<Flavor> = {}): Flavor {
  return { name: 'm1.small', vcpus: 1, memoryMb: 2048, diskGb: 20, extraSpecs: {}, ...f };
}

export function makeImage(
  f: Partial<Omit<Image, 'properties'>> & { properties?: Partial<Image['properties']> } = {}
): Image {
  const { properties, ...rest } = f;
  return {
    name: 'cirros',
    sizeGb: 0.02,
    minDiskGb: 0,
    minRamMb: 0,
    ...rest,
    properties: { traitsRequired: [], ...properties },
  };
}

export type RequestFixture = Partial<Omit<SchedulingRequest, 'flavor' | 'image'>> & {
  flavor?: Partial<Flavor>;
  image?: Partial<Omit<Image, 'properties'>> & { properties?: Partial<Image['properties']> };
};

/** One instance, m1.small on cirros, maxAttempts 3, no hints. */
export function makeRequest(f: RequestFixture = {}): SchedulingRequest {
  const { flavor, image, ...rest } = f;
  return { instanceIds: ['inst-1'], maxAttempts: 3, ...rest, flavor: makeFlavor(flavor), image: makeImage(image) };
}

export function makeConfig(f: Partial<SchedulerConfig> = {}): SchedulerConfig {
  return { ...DEFAULT_SCHEDULER_CONFIG, ...f };
}

/** An rng that returns the given values in turn (then repeats the last one). */
export function sequenceRng(...values: number[]): Rng {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)] ?? 0;
}

/** A small deterministic PRNG (mulberry32) for generated fleets. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An rng that fails the test if it is consulted. */
export const unusedRng: Rng = () => {
  throw new Error('rng should not be consulted');
};
