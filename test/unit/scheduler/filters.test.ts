import { describe, expect, it } from 'vitest';

import {
  activeFilters,
  AvailabilityZoneFilter,
  ComputeFilter,
  DEFAULT_FILTERS,
  DifferentHostFilter,
  IgnoreHostsFilter,
  ImagePropertiesFilter,
  RequestedHostFilter,
  ResourcesFilter,
  SameHostFilter,
  ServerGroupAffinityFilter,
  ServerGroupAntiAffinityFilter,
  traitRequirements,
  TraitsFilter,
} from '../../../src/scheduler/filters';
import { ServerGroupPolicy } from '../../../src/scheduler/types';
import { makeHost, makeRequest } from './fixtures';

describe('ComputeFilter', () => {
  const req = makeRequest();

  it('passes a host that is up and enabled', () => {
    expect(ComputeFilter.hostPasses(makeHost('a'), req)).toBe(true);
  });

  it('rejects a disabled host', () => {
    expect(ComputeFilter.hostPasses(makeHost('a', { enabled: false }), req)).toBe(false);
  });

  it('rejects a host whose compute service is down', () => {
    expect(ComputeFilter.hostPasses(makeHost('a', { up: false }), req)).toBe(false);
  });

  it('does not run on rebuild', () => {
    expect(ComputeFilter.runOnRebuild).toBe(false);
  });
});

describe('AvailabilityZoneFilter', () => {
  it('passes every host when no zone is requested, and is then inactive', () => {
    const req = makeRequest();
    expect(AvailabilityZoneFilter.hostPasses(makeHost('a', { availabilityZone: 'az2' }), req)).toBe(true);
    expect(AvailabilityZoneFilter.isActive(req)).toBe(false);
  });

  it('passes a host in the requested zone', () => {
    const req = makeRequest({ availabilityZone: 'az1' });
    expect(AvailabilityZoneFilter.hostPasses(makeHost('a', { availabilityZone: 'az1' }), req)).toBe(true);
  });

  it('rejects a host in another zone', () => {
    const req = makeRequest({ availabilityZone: 'az1' });
    expect(AvailabilityZoneFilter.hostPasses(makeHost('a', { availabilityZone: 'az2' }), req)).toBe(false);
  });
});

describe('ResourcesFilter', () => {
  const flavor = { vcpus: 2, memoryMb: 4096, diskGb: 40 };
  const req = makeRequest({ flavor });

  it('passes an exactly full fit in every class', () => {
    const host = makeHost('a', { vcpus: 2, memoryMb: 4096, diskGb: 40 });
    expect(ResourcesFilter.hostPasses(host, req)).toBe(true);
  });

  it('rejects one unit over in any class', () => {
    const exact = { vcpus: 4, memoryMb: 8192, diskGb: 80 };
    const used = { VCPU: 2, MEMORY_MB: 4096, DISK_GB: 40 };
    expect(ResourcesFilter.hostPasses(makeHost('a', { ...exact, used }), req)).toBe(true);
    expect(ResourcesFilter.hostPasses(makeHost('a', { ...exact, used: { ...used, VCPU: 3 } }), req)).toBe(false);
    expect(ResourcesFilter.hostPasses(makeHost('a', { ...exact, used: { ...used, MEMORY_MB: 4097 } }), req)).toBe(
      false
    );
    expect(ResourcesFilter.hostPasses(makeHost('a', { ...exact, used: { ...used, DISK_GB: 41 } }), req)).toBe(false);
  });

  it('applies the allocation ratio to what is left after the reserve', () => {
    // (4 - 1) * 4.0 = 12 vCPUs: 10 used + 2 fits, 11 used + 2 does not.
    const base = { vcpus: 4, reserved: { VCPU: 1 }, allocationRatio: { VCPU: 4.0 } };
    expect(ResourcesFilter.hostPasses(makeHost('a', { ...base, used: { VCPU: 10 } }), req)).toBe(true);
    expect(ResourcesFilter.hostPasses(makeHost('a', { ...base, used: { VCPU: 11 } }), req)).toBe(false);
  });

  it('rounds fractional capacity down', () => {
    // (5 - 0) * 1.5 = 7.5 -> 7 vCPUs: 5 used + 2 fits, 6 used + 2 does not.
    const base = { vcpus: 5, allocationRatio: { VCPU: 1.5 } };
    expect(ResourcesFilter.hostPasses(makeHost('a', { ...base, used: { VCPU: 5 } }), req)).toBe(true);
    expect(ResourcesFilter.hostPasses(makeHost('a', { ...base, used: { VCPU: 6 } }), req)).toBe(false);
  });

  it('counts reserved memory against the host', () => {
    const host = makeHost('a', { memoryMb: 4096 + 512, reserved: { MEMORY_MB: 513 } });
    expect(ResourcesFilter.hostPasses(host, req)).toBe(false);
    expect(ResourcesFilter.hostPasses(makeHost('a', { memoryMb: 4096 + 512, reserved: { MEMORY_MB: 512 } }), req)).toBe(
      true
    );
  });

  it('asks no DISK_GB for a zero-disk flavor, even of a host without disk inventory', () => {
    const zeroDisk = makeRequest({ flavor: { ...flavor, diskGb: 0 } });
    expect(ResourcesFilter.hostPasses(makeHost('a', { diskGb: 0 }), zeroDisk)).toBe(true);
    expect(ResourcesFilter.hostPasses(makeHost('a', { diskGb: 10, used: { DISK_GB: 12 } }), zeroDisk)).toBe(true);
    expect(ResourcesFilter.hostPasses(makeHost('a', { diskGb: 0 }), req)).toBe(false);
  });

  it('rejects a host already over-committed in a requested class', () => {
    expect(ResourcesFilter.hostPasses(makeHost('a', { vcpus: 4, used: { VCPU: 6 } }), req)).toBe(false);
  });
});

describe('TraitsFilter', () => {
  it('is inactive, and passes every host, without trait extra specs or image traits', () => {
    const req = makeRequest({ flavor: { extraSpecs: { 'hw:cpu_policy': 'dedicated' } } });
    expect(TraitsFilter.isActive(req)).toBe(false);
    expect(TraitsFilter.hostPasses(makeHost('a'), req)).toBe(true);
  });

  it('requires a trait the flavor marks required', () => {
    const req = makeRequest({ flavor: { extraSpecs: { 'trait:HW_CPU_X86_AVX2': 'required' } } });
    expect(TraitsFilter.hostPasses(makeHost('a', { traits: ['HW_CPU_X86_AVX2'] }), req)).toBe(true);
    expect(TraitsFilter.hostPasses(makeHost('b', { traits: ['HW_CPU_X86_SSE'] }), req)).toBe(false);
  });

  it('rejects a host with a trait the flavor forbids', () => {
    const req = makeRequest({ flavor: { extraSpecs: { 'trait:CUSTOM_SLOW': 'forbidden' } } });
    expect(TraitsFilter.hostPasses(makeHost('a', { traits: ['CUSTOM_SLOW'] }), req)).toBe(false);
    expect(TraitsFilter.hostPasses(makeHost('b', { traits: ['CUSTOM_FAST'] }), req)).toBe(true);
  });

  it("requires the image's traits too", () => {
    const req = makeRequest({ image: { properties: { traitsRequired: ['COMPUTE_IMAGE_TYPE_QCOW2'] } } });
    expect(TraitsFilter.hostPasses(makeHost('a', { traits: ['COMPUTE_IMAGE_TYPE_QCOW2'] }), req)).toBe(true);
    expect(TraitsFilter.hostPasses(makeHost('b'), req)).toBe(false);
  });

  it('ignores extra specs that are not traits or carry another value', () => {
    const req = makeRequest({
      flavor: { extraSpecs: { 'hw:mem_page_size': 'large', 'trait:CUSTOM_X': 'preferred', traits: 'required' } },
    });
    expect(traitRequirements(req)).toEqual({ required: [], forbidden: [] });
    expect(TraitsFilter.hostPasses(makeHost('a'), req)).toBe(true);
  });

  it('rejects every host when a trait is both required and forbidden', () => {
    const req = makeRequest({
      flavor: { extraSpecs: { 'trait:CUSTOM_X': 'forbidden' } },
      image: { properties: { traitsRequired: ['CUSTOM_X'] } },
    });
    expect(TraitsFilter.hostPasses(makeHost('a', { traits: ['CUSTOM_X'] }), req)).toBe(false);
    expect(TraitsFilter.hostPasses(makeHost('b'), req)).toBe(false);
  });
});

describe('ImagePropertiesFilter', () => {
  it('passes any architecture when the image names none', () => {
    const req = makeRequest();
    expect(ImagePropertiesFilter.isActive(req)).toBe(false);
    expect(ImagePropertiesFilter.hostPasses(makeHost('a', { architecture: 'aarch64' }), req)).toBe(true);
  });

  it("rejects a host of another architecture than the image's", () => {
    const req = makeRequest({ image: { properties: { hwArchitecture: 'aarch64' } } });
    expect(ImagePropertiesFilter.hostPasses(makeHost('a', { architecture: 'aarch64' }), req)).toBe(true);
    expect(ImagePropertiesFilter.hostPasses(makeHost('b', { architecture: 'x86_64' }), req)).toBe(false);
  });

  it("rejects every host when the flavor has less RAM than the image's minimum", () => {
    const req = makeRequest({ flavor: { memoryMb: 512 }, image: { minRamMb: 1024 } });
    expect(ImagePropertiesFilter.isActive(req)).toBe(true);
    expect(ImagePropertiesFilter.hostPasses(makeHost('a'), req)).toBe(false);
    expect(
      ImagePropertiesFilter.hostPasses(
        makeHost('a'),
        makeRequest({ flavor: { memoryMb: 1024 }, image: { minRamMb: 1024 } })
      )
    ).toBe(true);
  });

  it("rejects every host when the flavor's disk is below the image's minimum, unless the flavor disk is 0", () => {
    expect(
      ImagePropertiesFilter.hostPasses(makeHost('a'), makeRequest({ flavor: { diskGb: 2 }, image: { minDiskGb: 3 } }))
    ).toBe(false);
    expect(
      ImagePropertiesFilter.hostPasses(makeHost('a'), makeRequest({ flavor: { diskGb: 3 }, image: { minDiskGb: 3 } }))
    ).toBe(true);
    expect(
      ImagePropertiesFilter.hostPasses(makeHost('a'), makeRequest({ flavor: { diskGb: 0 }, image: { minDiskGb: 3 } }))
    ).toBe(true);
  });

  it('runs on rebuild', () => {
    expect(ImagePropertiesFilter.runOnRebuild).toBe(true);
  });
});

describe('ServerGroupAffinityFilter', () => {
  const group = (hosts: string[]) => ({ name: 'g', policy: ServerGroupPolicy.Affinity, hosts: new Set(hosts) });

  it('passes every host while the group has no members yet', () => {
    const req = makeRequest({ serverGroup: group([]) });
    expect(ServerGroupAffinityFilter.isActive(req)).toBe(false);
    expect(ServerGroupAffinityFilter.hostPasses(makeHost('a'), req)).toBe(true);
  });

  it("passes only the group's hosts once it has members", () => {
    const req = makeRequest({ serverGroup: group(['a']) });
    expect(ServerGroupAffinityFilter.hostPasses(makeHost('a'), req)).toBe(true);
    expect(ServerGroupAffinityFilter.hostPasses(makeHost('b'), req)).toBe(false);
  });

  it('ignores an anti-affinity group', () => {
    const req = makeRequest({ serverGroup: { ...group(['a']), policy: ServerGroupPolicy.AntiAffinity } });
    expect(ServerGroupAffinityFilter.isActive(req)).toBe(false);
    expect(ServerGroupAffinityFilter.hostPasses(makeHost('b'), req)).toBe(true);
  });
});

describe('ServerGroupAntiAffinityFilter', () => {
  const group = (hosts: string[]) => ({ name: 'g', policy: ServerGroupPolicy.AntiAffinity, hosts: new Set(hosts) });

  it('passes every host while the group has no members yet', () => {
    expect(ServerGroupAntiAffinityFilter.hostPasses(makeHost('a'), makeRequest({ serverGroup: group([]) }))).toBe(true);
  });

  it("rejects the group's hosts", () => {
    const req = makeRequest({ serverGroup: group(['a']) });
    expect(ServerGroupAntiAffinityFilter.hostPasses(makeHost('a'), req)).toBe(false);
    expect(ServerGroupAntiAffinityFilter.hostPasses(makeHost('b'), req)).toBe(true);
  });

  it('ignores an affinity group', () => {
    const req = makeRequest({ serverGroup: { ...group(['a']), policy: ServerGroupPolicy.Affinity } });
    expect(ServerGroupAntiAffinityFilter.hostPasses(makeHost('a'), req)).toBe(true);
  });
});

describe('SameHostFilter', () => {
  it('passes every host without the hint', () => {
    expect(SameHostFilter.hostPasses(makeHost('a'), makeRequest())).toBe(true);
  });

  it('passes only the hosts of the hinted instances', () => {
    const req = makeRequest({ sameHostHosts: new Set(['a']) });
    expect(SameHostFilter.hostPasses(makeHost('a'), req)).toBe(true);
    expect(SameHostFilter.hostPasses(makeHost('b'), req)).toBe(false);
  });

  it('passes no host when the hinted instances live nowhere', () => {
    expect(SameHostFilter.hostPasses(makeHost('a'), makeRequest({ sameHostHosts: new Set() }))).toBe(false);
  });
});

describe('DifferentHostFilter', () => {
  it('rejects the hosts of the hinted instances', () => {
    const req = makeRequest({ differentHostHosts: new Set(['a']) });
    expect(DifferentHostFilter.hostPasses(makeHost('a'), req)).toBe(false);
    expect(DifferentHostFilter.hostPasses(makeHost('b'), req)).toBe(true);
  });

  it('is inactive for an empty hint', () => {
    expect(DifferentHostFilter.isActive(makeRequest({ differentHostHosts: new Set() }))).toBe(false);
  });
});

describe('IgnoreHostsFilter', () => {
  it('rejects ignored hosts only', () => {
    const req = makeRequest({ ignoreHosts: new Set(['a']) });
    expect(IgnoreHostsFilter.hostPasses(makeHost('a'), req)).toBe(false);
    expect(IgnoreHostsFilter.hostPasses(makeHost('b'), req)).toBe(true);
  });
});

describe('RequestedHostFilter', () => {
  it('passes only the requested host', () => {
    const req = makeRequest({ requestedHost: 'a' });
    expect(RequestedHostFilter.hostPasses(makeHost('a'), req)).toBe(true);
    expect(RequestedHostFilter.hostPasses(makeHost('b'), req)).toBe(false);
  });

  it('passes every host when no host is requested', () => {
    expect(RequestedHostFilter.isActive(makeRequest())).toBe(false);
    expect(RequestedHostFilter.hostPasses(makeHost('b'), makeRequest())).toBe(true);
  });
});

describe('activeFilters', () => {
  it('runs only the filters with something to check', () => {
    expect(activeFilters(makeRequest()).map((f) => f.name)).toEqual(['ComputeFilter', 'ResourcesFilter']);
  });

  it('runs only runOnRebuild filters on rebuild', () => {
    const req = makeRequest({
      isRebuild: true,
      requestedHost: 'a',
      availabilityZone: 'az1',
      ignoreHosts: new Set(['b']),
      image: { properties: { hwArchitecture: 'x86_64', traitsRequired: ['CUSTOM_X'] } },
    });
    expect(activeFilters(req).map((f) => f.name)).toEqual(['RequestedHostFilter', 'ImagePropertiesFilter']);
  });

  it('gives every filter a distinct Nova-style name', () => {
    const names = DEFAULT_FILTERS.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[A-Z][A-Za-z]+Filter$/);
  });
});
