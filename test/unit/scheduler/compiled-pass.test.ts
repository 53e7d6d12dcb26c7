import { describe, expect, it } from 'vitest';

import { compileFilterPlan, compileWeightPlan, rankHosts } from '../../../src/scheduler/compiled-pass';
import { activeFilters, firstRejectingFilter } from '../../../src/scheduler/filters';
import { ServerGroupPolicy, type HostState, type Rng, type SchedulerConfig } from '../../../src/scheduler/types';
import { weighHosts } from '../../../src/scheduler/weighers';
import { makeConfig, makeHost, makeRequest, seededRng, type RequestFixture } from './fixtures';

const TRAITS = ['HW_CPU_X86_AVX2', 'CUSTOM_GPU', 'CUSTOM_SLOW', 'COMPUTE_IMAGE_TYPE_QCOW2'];

function pickOne<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

function someOf<T>(rng: Rng, items: readonly T[], p: number): T[] {
  return items.filter(() => rng() < p);
}

/** A fleet with few distinct values, so that filters bite and equal weights (ties) are common. */
function randomFleet(rng: Rng, size: number): HostState[] {
  return Array.from({ length: size }, (_, i) =>
    makeHost(`host-${String(i).padStart(3, '0')}`, {
      availabilityZone: pickOne(rng, ['az1', 'az2']),
      architecture: pickOne(rng, ['x86_64', 'x86_64', 'aarch64']),
      traits: someOf(rng, TRAITS, 0.5),
      up: rng() < 0.9,
      enabled: rng() < 0.9,
      vcpus: pickOne(rng, [4, 8, 16]),
      memoryMb: pickOne(rng, [8192, 16384]),
      diskGb: pickOne(rng, [0, 100, 200]),
      reserved: { MEMORY_MB: pickOne(rng, [0, 512]) },
      allocationRatio: { VCPU: pickOne(rng, [1, 4, 1.5]) },
      used: {
        VCPU: pickOne(rng, [0, 2, 4, 8]),
        MEMORY_MB: pickOne(rng, [0, 2048, 4096, 8192]),
        DISK_GB: pickOne(rng, [0, 40, 100]),
      },
      failedBuilds: rng() < 0.2 ? pickOne(rng, [1, 2]) : 0,
    })
  );
}

function randomRequest(rng: Rng, hosts: readonly HostState[]): RequestFixture {
  const names = hosts.map((h) => h.host);
  const maybe = <T>(p: number, value: () => T): T | undefined => (rng() < p ? value() : undefined);
  const extraSpecs = Object.fromEntries(
    someOf(rng, TRAITS, 0.2).map((t) => [`trait:${t}`, pickOne(rng, ['required', 'forbidden'])])
  );
  const fixture: RequestFixture = {
    flavor: {
      vcpus: pickOne(rng, [1, 2, 4]),
      memoryMb: pickOne(rng, [512, 2048, 4096]),
      diskGb: pickOne(rng, [0, 20, 40]),
      extraSpecs,
    },
    image: {
      minRamMb: pickOne(rng, [0, 0, 0, 1024]),
      properties: {
        traitsRequired: someOf(rng, TRAITS, 0.1),
        ...(rng() < 0.5 ? { hwArchitecture: pickOne(rng, ['x86_64', 'aarch64']) } : {}),
      },
    },
    isRebuild: rng() < 0.1,
  };
  const az = maybe(0.3, () => pickOne(rng, ['az1', 'az2']));
  if (az !== undefined) fixture.availabilityZone = az;
  const ignore = maybe(0.3, () => new Set(someOf(rng, names, 0.2)));
  if (ignore !== undefined) fixture.ignoreHosts = ignore;
  const same = maybe(0.1, () => new Set(someOf(rng, names, 0.3)));
  if (same !== undefined) fixture.sameHostHosts = same;
  const different = maybe(0.2, () => new Set(someOf(rng, names, 0.2)));
  if (different !== undefined) fixture.differentHostHosts = different;
  const requested = maybe(0.1, () => pickOne(rng, [...names, 'not-a-host']));
  if (requested !== undefined) fixture.requestedHost = requested;
  const policy = pickOne(rng, [ServerGroupPolicy.Affinity, ServerGroupPolicy.AntiAffinity]);
  const group = maybe(0.3, () => ({ name: 'g', policy, hosts: new Set(someOf(rng, names, 0.2)) }));
  if (group !== undefined) fixture.serverGroup = group;
  return fixture;
}

function randomConfig(rng: Rng): SchedulerConfig {
  const multiplier = () => pickOne(rng, [1, -1, 0, 2.5, -0.5]);
  return makeConfig({
    ramWeightMultiplier: multiplier(),
    cpuWeightMultiplier: multiplier(),
    diskWeightMultiplier: multiplier(),
    buildFailureWeightMultiplier: pickOne(rng, [1_000_000, 0, 3]),
  });
}

describe('rankHosts', () => {
  it('ranks as the named filters followed by weighHosts, on generated fleets and requests', () => {
    const rng = seededRng(20240601);
    let nonEmpty = 0;
    for (let round = 0; round < 400; round++) {
      const hosts = randomFleet(rng, 1 + Math.floor(rng() * 40));
      const req = makeRequest(randomRequest(rng, hosts));
      const config = randomConfig(rng);
      const k = 1 + Math.floor(rng() * 6);

      const filters = activeFilters(req);
      const passing = hosts.filter((h) => firstRejectingFilter(h, req, filters) === null);
      const expected = weighHosts(passing, req, config).slice(0, k);
      const weightOf = new Map(expected.map((w) => [w.host.host, w.weight]));
      const actual = rankHosts(hosts, compileFilterPlan(req), compileWeightPlan(config), k).map((i) => hosts[i]!.host);

      expect(actual.length, `round ${round}`).toBe(expected.length);
      expected.forEach((want, r) => {
        // The compiled pass multiplies by multiplier/range where weighHosts divides by range: the same
        // host may differ from the reference only where two weights are equal up to rounding.
        if (actual[r] === want.host.host) return;
        expect(weightOf.get(actual[r]!), `round ${round} rank ${r}`).toBeCloseTo(want.weight, 6);
      });
      if (expected.length > 0) nonEmpty++;
    }
    // The generator must exercise both outcomes.
    expect(nonEmpty).toBeGreaterThan(100);
    expect(nonEmpty).toBeLessThan(390);
  });

  it('returns nothing when k is 0 or no host is given', () => {
    const plan = compileFilterPlan(makeRequest());
    const weights = compileWeightPlan(makeConfig());
    expect(rankHosts([makeHost('a')], plan, weights, 0)).toEqual([]);
    expect(rankHosts([], plan, weights, 3)).toEqual([]);
  });

  it('handles fleets larger than its initial working memory', () => {
    const hosts = Array.from({ length: 3000 }, (_, i) => makeHost(`h${i}`, { used: { MEMORY_MB: i } }));
    const ranked = rankHosts(hosts, compileFilterPlan(makeRequest()), compileWeightPlan(makeConfig()), 3);
    expect(ranked).toEqual([0, 1, 2]);
  });
});

describe('compileFilterPlan', () => {
  it('leaves the filters a request does not need switched off', () => {
    const plan = compileFilterPlan(makeRequest());
    expect(plan).toMatchObject({
      rejectsAll: false,
      checkCompute: true,
      checkResources: true,
      availabilityZone: null,
      requiredTraits: null,
      forbiddenTraits: null,
      architecture: null,
      ignoreHosts: null,
      requestedHost: null,
      affinityHosts: null,
      antiAffinityHosts: null,
      sameHostHosts: null,
      differentHostHosts: null,
    });
  });

  it('collects the requested amounts and traits once', () => {
    const plan = compileFilterPlan(
      makeRequest({
        flavor: {
          vcpus: 2,
          memoryMb: 4096,
          diskGb: 0,
          extraSpecs: { 'trait:CUSTOM_A': 'required', 'trait:CUSTOM_B': 'forbidden' },
        },
        image: { properties: { traitsRequired: ['CUSTOM_C', 'CUSTOM_A'] } },
      })
    );
    expect(plan).toMatchObject({ vcpus: 2, memoryMb: 4096, diskGb: 0 });
    expect(plan.requiredTraits).toEqual(['CUSTOM_C', 'CUSTOM_A']);
    expect(plan.forbiddenTraits).toEqual(['CUSTOM_B']);
  });

  it('keeps only runOnRebuild filters on rebuild', () => {
    const plan = compileFilterPlan(
      makeRequest({
        isRebuild: true,
        availabilityZone: 'az1',
        requestedHost: 'a',
        image: { properties: { hwArchitecture: 'x86_64' } },
      })
    );
    expect(plan).toMatchObject({
      checkCompute: false,
      checkResources: false,
      availabilityZone: null,
      requestedHost: 'a',
      architecture: 'x86_64',
    });
  });
});
