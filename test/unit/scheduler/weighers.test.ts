import { describe, expect, it } from 'vitest';

import {
  BuildFailureWeigher,
  CPUWeigher,
  DEFAULT_WEIGHERS,
  DiskWeigher,
  normalize,
  RAMWeigher,
  weighHosts,
} from '../../../src/scheduler/weighers';
import { makeConfig, makeHost, makeRequest } from './fixtures';

const req = makeRequest();

describe('normalize', () => {
  it('scales values into [0, 1] by min and max', () => {
    expect(normalize([10, 20, 15])).toEqual([0, 1, 0.5]);
  });

  it('gives 0 to every value when they are all equal', () => {
    expect(normalize([7, 7, 7])).toEqual([0, 0, 0]);
  });

  it('handles negative values and an empty list', () => {
    expect(normalize([-3, 0, -1])).toEqual([0, 1, 2 / 3]);
    expect(normalize([])).toEqual([]);
  });
});

describe('RAMWeigher', () => {
  it('weighs free RAM: capacity after reserve and ratio, minus used', () => {
    const host = makeHost('a', {
      memoryMb: 8192,
      reserved: { MEMORY_MB: 512 },
      allocationRatio: { MEMORY_MB: 1.5 },
      used: { MEMORY_MB: 1000 },
    });
    expect(RAMWeigher.weigh(host, req)).toBe(Math.floor((8192 - 512) * 1.5) - 1000);
    expect(RAMWeigher.multiplier(makeConfig({ ramWeightMultiplier: -2 }))).toBe(-2);
  });
});

describe('CPUWeigher', () => {
  it('weighs free vCPUs', () => {
    const host = makeHost('a', { vcpus: 8, allocationRatio: { VCPU: 4 }, used: { VCPU: 5 } });
    expect(CPUWeigher.weigh(host, req)).toBe(27);
    expect(CPUWeigher.multiplier(makeConfig({ cpuWeightMultiplier: 3 }))).toBe(3);
  });
});

describe('DiskWeigher', () => {
  it('weighs free disk', () => {
    const host = makeHost('a', { diskGb: 100, reserved: { DISK_GB: 10 }, used: { DISK_GB: 30 } });
    expect(DiskWeigher.weigh(host, req)).toBe(60);
    expect(DiskWeigher.multiplier(makeConfig({ diskWeightMultiplier: 0.5 }))).toBe(0.5);
  });
});

describe('BuildFailureWeigher', () => {
  it('weighs minus the failed builds, with a default multiplier of 1e6', () => {
    expect(BuildFailureWeigher.weigh(makeHost('a', { failedBuilds: 3 }), req)).toBe(-3);
    expect(BuildFailureWeigher.multiplier(makeConfig())).toBe(1_000_000);
  });

  it('sinks a host with one failure below a much fuller healthy host', () => {
    const failing = makeHost('empty-but-failing', { failedBuilds: 1 });
    const full = makeHost('nearly-full', { used: { VCPU: 15, MEMORY_MB: 30000, DISK_GB: 490 } });
    expect(weighHosts([failing, full], req, makeConfig()).map((w) => w.host.host)).toEqual([
      'nearly-full',
      'empty-but-failing',
    ]);
  });
});

describe('weighHosts', () => {
  const small = makeHost('small', { used: { VCPU: 8, MEMORY_MB: 16384, DISK_GB: 250 } });
  const empty = makeHost('empty');
  const full = makeHost('full', { used: { VCPU: 15, MEMORY_MB: 30000, DISK_GB: 400 } });

  it('spreads with positive multipliers: the emptiest host first', () => {
    expect(weighHosts([small, full, empty], req, makeConfig()).map((w) => w.host.host)).toEqual([
      'empty',
      'small',
      'full',
    ]);
  });

  it('stacks with negative multipliers: the fullest host first', () => {
    const stack = makeConfig({ ramWeightMultiplier: -1, cpuWeightMultiplier: -1, diskWeightMultiplier: -1 });
    expect(weighHosts([small, full, empty], req, stack).map((w) => w.host.host)).toEqual(['full', 'small', 'empty']);
  });

  it('sums each normalised weight times its multiplier', () => {
    const config = makeConfig({ ramWeightMultiplier: 2, cpuWeightMultiplier: 0, diskWeightMultiplier: 0 });
    const weights = Object.fromEntries(
      weighHosts([small, full, empty], req, config).map((w) => [w.host.host, w.weight])
    );
    expect(weights.empty).toBe(2);
    expect(weights.full).toBe(0);
    expect(weights.small).toBeCloseTo((2 * (32768 - 16384 - 2768)) / (32768 - 2768), 12);
  });

  it('gives equal hosts weight 0 and orders them by name', () => {
    const ranked = weighHosts([makeHost('c'), makeHost('a'), makeHost('b')], req, makeConfig());
    expect(ranked.map((w) => [w.host.host, w.weight])).toEqual([
      ['a', 0],
      ['b', 0],
      ['c', 0],
    ]);
  });

  it('uses the four default weighers', () => {
    expect(DEFAULT_WEIGHERS.map((w) => w.name)).toEqual([
      'RAMWeigher',
      'CPUWeigher',
      'DiskWeigher',
      'BuildFailureWeigher',
    ]);
  });
});
