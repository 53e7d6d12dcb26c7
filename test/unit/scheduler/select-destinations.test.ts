import { describe, expect, it } from 'vitest';

import { NoValidHost } from '../../../src/domain/errors';
import { consumeFromRequest, selectDestinations } from '../../../src/scheduler/select-destinations';
import { ServerGroupPolicy, type HostState } from '../../../src/scheduler/types';
import { makeConfig, makeHost, makeRequest, sequenceRng, unusedRng } from './fixtures';

const config = makeConfig();

/** Hosts ordered by free RAM, most free first: a, b, c, d. */
function rankedFleet(): HostState[] {
  return [
    makeHost('c', { used: { MEMORY_MB: 8192 } }),
    makeHost('a'),
    makeHost('d', { used: { MEMORY_MB: 12288 } }),
    makeHost('b', { used: { MEMORY_MB: 4096 } }),
  ];
}

function hostsOf(selections: { hosts: string[] }[]): string[][] {
  return selections.map((s) => s.hosts);
}

function noValidHost(run: () => unknown): NoValidHost {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(NoValidHost);
    return err as NoValidHost;
  }
  throw new Error('expected NoValidHost');
}

describe('selectDestinations', () => {
  it('chooses the best weighed host, then alternates in weighed order', () => {
    const result = selectDestinations(rankedFleet(), makeRequest(), config, unusedRng);
    expect(result).toEqual([{ instanceId: 'inst-1', hosts: ['a', 'b', 'c'] }]);
  });

  it('limits alternates to maxAttempts - 1', () => {
    expect(hostsOf(selectDestinations(rankedFleet(), makeRequest({ maxAttempts: 1 }), config, unusedRng))).toEqual([
      ['a'],
    ]);
    expect(hostsOf(selectDestinations(rankedFleet(), makeRequest({ maxAttempts: 2 }), config, unusedRng))).toEqual([
      ['a', 'b'],
    ]);
  });

  it('returns fewer alternates when fewer hosts pass', () => {
    const req = makeRequest({ maxAttempts: 10 });
    expect(hostsOf(selectDestinations(rankedFleet(), req, config, unusedRng))).toEqual([['a', 'b', 'c', 'd']]);
  });

  it('only offers alternates that passed the filters', () => {
    const hosts = rankedFleet().map((h) => (h.host === 'b' ? { ...h, up: false } : h));
    expect(hostsOf(selectDestinations(hosts, makeRequest(), config, unusedRng))).toEqual([['a', 'c', 'd']]);
  });

  it('breaks equal weights by host name', () => {
    const hosts = [makeHost('h3'), makeHost('h1'), makeHost('h2')];
    expect(hostsOf(selectDestinations(hosts, makeRequest(), config, unusedRng))).toEqual([['h1', 'h2', 'h3']]);
  });

  it('stacks with negative multipliers', () => {
    const stack = makeConfig({ ramWeightMultiplier: -1 });
    expect(hostsOf(selectDestinations(rankedFleet(), makeRequest(), stack, unusedRng))).toEqual([['d', 'c', 'b']]);
  });

  it('sinks a host with failed builds below the others', () => {
    const hosts = rankedFleet().map((h) => (h.host === 'a' ? { ...h, failedBuilds: 1 } : h));
    expect(hostsOf(selectDestinations(hosts, makeRequest({ maxAttempts: 4 }), config, unusedRng))).toEqual([
      ['b', 'c', 'd', 'a'],
    ]);
  });

  it('picks at random among the best hostSubsetSize hosts with the injected rng', () => {
    const subset = makeConfig({ hostSubsetSize: 3 });
    const pick = (r: number) => hostsOf(selectDestinations(rankedFleet(), makeRequest(), subset, sequenceRng(r)));
    expect(pick(0)).toEqual([['a', 'b', 'c']]);
    expect(pick(0.5)).toEqual([['b', 'a', 'c']]);
    expect(pick(0.99)).toEqual([['c', 'a', 'b']]);
    expect(pick(0.5)).toEqual(pick(0.5));
  });

  it('keeps a subset pick in range when the rng returns 1 and when the subset exceeds the hosts', () => {
    const subset = makeConfig({ hostSubsetSize: 10 });
    const result = selectDestinations(rankedFleet(), makeRequest({ maxAttempts: 1 }), subset, () => 1);
    expect(hostsOf(result)).toEqual([['d']]);
  });

  it('treats a hostSubsetSize below 1 as 1', () => {
    const result = selectDestinations(rankedFleet(), makeRequest(), makeConfig({ hostSubsetSize: 0 }), unusedRng);
    expect(hostsOf(result)).toEqual([['a', 'b', 'c']]);
  });

  it('honours ignoreHosts', () => {
    const req = makeRequest({ ignoreHosts: new Set(['a', 'c']) });
    expect(hostsOf(selectDestinations(rankedFleet(), req, config, unusedRng))).toEqual([['b', 'd']]);
  });

  it('honours the availability zone', () => {
    const hosts = rankedFleet().map((h) => (h.host === 'c' || h.host === 'd' ? { ...h, availabilityZone: 'az2' } : h));
    const req = makeRequest({ availabilityZone: 'az2' });
    expect(hostsOf(selectDestinations(hosts, req, config, unusedRng))).toEqual([['c', 'd']]);
  });

  describe('with a requested host', () => {
    it('restricts the choice to that host', () => {
      const req = makeRequest({ requestedHost: 'c' });
      expect(hostsOf(selectDestinations(rankedFleet(), req, config, unusedRng))).toEqual([['c']]);
    });

    it('still runs the other filters on it', () => {
      const hosts = rankedFleet().map((h) => (h.host === 'c' ? { ...h, enabled: false } : h));
      const err = noValidHost(() => selectDestinations(hosts, makeRequest({ requestedHost: 'c' }), config, unusedRng));
      expect(err.message).toBe('No valid host was found. Filter ComputeFilter returned 0 hosts for instance inst-1');
    });

    it('finds no host when the requested host is not in the list', () => {
      const err = noValidHost(() =>
        selectDestinations(rankedFleet(), makeRequest({ requestedHost: 'z' }), config, unusedRng)
      );
      expect(err.reason).toBe('Filter RequestedHostFilter returned 0 hosts for instance inst-1');
    });
  });

  describe('with a forced host', () => {
    it('bypasses the filters and returns no alternates', () => {
      const hosts = rankedFleet().map((h) => (h.host === 'd' ? { ...h, up: false, architecture: 'ppc64le' } : h));
      const req = makeRequest({ forcedHost: 'd', image: { properties: { hwArchitecture: 'x86_64' } } });
      expect(selectDestinations(hosts, req, config, unusedRng)).toEqual([{ instanceId: 'inst-1', hosts: ['d'] }]);
    });

    it('places every instance of the request on it', () => {
      const req = makeRequest({ forcedHost: 'b', instanceIds: ['i1', 'i2'] });
      expect(hostsOf(selectDestinations(rankedFleet(), req, config, unusedRng))).toEqual([['b'], ['b']]);
    });

    it('throws NoValidHost when the forced host is not in the host list', () => {
      const err = noValidHost(() =>
        selectDestinations(rankedFleet(), makeRequest({ forcedHost: 'z' }), config, unusedRng)
      );
      expect(err.reason).toBe('Forced host z is not in the host list for instance inst-1');
    });

    it('throws NoValidHost when the forced host is also ignored', () => {
      const req = makeRequest({ forcedHost: 'a', ignoreHosts: new Set(['a']) });
      const err = noValidHost(() => selectDestinations(rankedFleet(), req, config, unusedRng));
      expect(err.reason).toBe('Forced host a is among the ignored hosts for instance inst-1');
    });
  });

  describe('when no host passes', () => {
    it('names the filter that returned 0 hosts and the instance', () => {
      const hosts = rankedFleet().map((h) => ({ ...h, used: { ...h.used, VCPU: 16 } }));
      const err = noValidHost(() => selectDestinations(hosts, makeRequest(), config, unusedRng));
      expect(err.reason).toBe('Filter ResourcesFilter returned 0 hosts for instance inst-1');
      expect(err.name).toBe('NoValidHost');
    });

    it('names the last filter to remove candidates, not the first to reject a host', () => {
      // a and b are down; c and d are up but on another architecture.
      const hosts = rankedFleet().map((h) =>
        h.host === 'a' || h.host === 'b' ? { ...h, up: false } : { ...h, architecture: 'aarch64' }
      );
      const req = makeRequest({ image: { properties: { hwArchitecture: 'x86_64' } } });
      const err = noValidHost(() => selectDestinations(hosts, req, config, unusedRng));
      expect(err.reason).toBe('Filter ImagePropertiesFilter returned 0 hosts for instance inst-1');
    });

    it('says so when there are no hosts at all', () => {
      const err = noValidHost(() => selectDestinations([], makeRequest(), config, unusedRng));
      expect(err.reason).toBe('There are no hosts to choose from for instance inst-1');
    });

    it('rejects every host when the image does not fit the flavor', () => {
      const req = makeRequest({ flavor: { memoryMb: 512 }, image: { minRamMb: 1024 } });
      const err = noValidHost(() => selectDestinations(rankedFleet(), req, config, unusedRng));
      expect(err.reason).toBe('Filter ImagePropertiesFilter returned 0 hosts for instance inst-1');
    });
  });

  describe('for several instances', () => {
    /** Hosts with room for exactly one m1.small-sized instance each. */
    const oneSlotHosts = () =>
      ['h1', 'h2', 'h3'].map((name, i) => makeHost(name, { vcpus: 1, memoryMb: 2048 + i, diskGb: 20 }));

    it('consumes capacity so that instances fitting one per host land on different hosts', () => {
      const req = makeRequest({ instanceIds: ['i1', 'i2', 'i3'], maxAttempts: 1 });
      expect(hostsOf(selectDestinations(oneSlotHosts(), req, config, unusedRng))).toEqual([['h3'], ['h2'], ['h1']]);
    });

    it('offers as alternates only hosts that still had room for that instance', () => {
      const req = makeRequest({ instanceIds: ['i1', 'i2', 'i3'] });
      expect(hostsOf(selectDestinations(oneSlotHosts(), req, config, unusedRng))).toEqual([
        ['h3', 'h2', 'h1'],
        ['h2', 'h1'],
        ['h1'],
      ]);
    });

    it('throws NoValidHost for the first instance that does not fit, placing none', () => {
      const req = makeRequest({ instanceIds: ['i1', 'i2', 'i3', 'i4'] });
      const err = noValidHost(() => selectDestinations(oneSlotHosts(), req, config, unusedRng));
      expect(err.reason).toBe('Filter ResourcesFilter returned 0 hosts for instance i4');
    });

    it('with minCount, places as many as fit beyond it and leaves out the rest', () => {
      const req = makeRequest({ instanceIds: ['i1', 'i2', 'i3', 'i4', 'i5'], minCount: 2, maxAttempts: 1 });
      expect(selectDestinations(oneSlotHosts(), req, config, unusedRng)).toEqual([
        { instanceId: 'i1', hosts: ['h3'] },
        { instanceId: 'i2', hosts: ['h2'] },
        { instanceId: 'i3', hosts: ['h1'] },
      ]);
    });

    it('with minCount, still throws NoValidHost when fewer than minCount fit', () => {
      const req = makeRequest({ instanceIds: ['i1', 'i2', 'i3', 'i4', 'i5'], minCount: 4 });
      const err = noValidHost(() => selectDestinations(oneSlotHosts(), req, config, unusedRng));
      expect(err.reason).toBe('Filter ResourcesFilter returned 0 hosts for instance i4');
    });

    it('stacks several instances on one host when the weighers say so', () => {
      const stack = makeConfig({ ramWeightMultiplier: -1, cpuWeightMultiplier: -1, diskWeightMultiplier: -1 });
      const req = makeRequest({ instanceIds: ['i1', 'i2'], maxAttempts: 1 });
      expect(hostsOf(selectDestinations(rankedFleet(), req, stack, unusedRng))).toEqual([['d'], ['d']]);
    });

    it('spreads an anti-affinity group within one request', () => {
      const req = makeRequest({
        instanceIds: ['i1', 'i2', 'i3'],
        maxAttempts: 1,
        serverGroup: { name: 'g', policy: ServerGroupPolicy.AntiAffinity, hosts: new Set(['a']) },
      });
      const stack = makeConfig({ ramWeightMultiplier: -1 });
      expect(hostsOf(selectDestinations(rankedFleet(), req, stack, unusedRng))).toEqual([['d'], ['c'], ['b']]);
    });

    it('fails the anti-affinity request when the group runs out of hosts', () => {
      const req = makeRequest({
        instanceIds: ['i1', 'i2', 'i3', 'i4', 'i5'],
        serverGroup: { name: 'g', policy: ServerGroupPolicy.AntiAffinity, hosts: new Set() },
      });
      const err = noValidHost(() => selectDestinations(rankedFleet(), req, config, unusedRng));
      expect(err.reason).toBe('Filter ServerGroupAntiAffinityFilter returned 0 hosts for instance i5');
    });

    it('keeps an affinity group together once its first member is placed', () => {
      const req = makeRequest({
        instanceIds: ['i1', 'i2', 'i3'],
        serverGroup: { name: 'g', policy: ServerGroupPolicy.Affinity, hosts: new Set() },
      });
      expect(hostsOf(selectDestinations(rankedFleet(), req, config, unusedRng))).toEqual([
        ['a', 'b', 'c'],
        ['a'],
        ['a'],
      ]);
    });

    it('consults the rng once per instance when choosing among a subset', () => {
      const calls: number[] = [];
      const rng = () => {
        calls.push(calls.length);
        return 0.99;
      };
      const req = makeRequest({ instanceIds: ['i1', 'i2'], maxAttempts: 1 });
      const result = selectDestinations(rankedFleet(), req, makeConfig({ hostSubsetSize: 2 }), rng);
      expect(calls).toHaveLength(2);
      // i1 takes b, the second best; with b now fuller (and less free CPU and disk), c is second best.
      expect(hostsOf(result)).toEqual([['b'], ['c']]);
    });
  });

  describe('on rebuild', () => {
    it('runs only the filters that run on rebuild, and consumes nothing', () => {
      const full = makeHost('src', { up: false, enabled: false, vcpus: 1, used: { VCPU: 1 } });
      const req = makeRequest({
        isRebuild: true,
        requestedHost: 'src',
        availabilityZone: 'elsewhere',
        ignoreHosts: new Set(['src']),
        instanceIds: ['i1'],
      });
      expect(hostsOf(selectDestinations([full, makeHost('other')], req, config, unusedRng))).toEqual([['src']]);
    });

    it('still checks the new image against the host', () => {
      const req = makeRequest({
        isRebuild: true,
        requestedHost: 'src',
        image: { properties: { hwArchitecture: 'aarch64' } },
      });
      const err = noValidHost(() => selectDestinations([makeHost('src')], req, config, unusedRng));
      expect(err.reason).toBe('Filter ImagePropertiesFilter returned 0 hosts for instance inst-1');
    });
  });

  it('returns nothing for a request without instances', () => {
    expect(selectDestinations(rankedFleet(), makeRequest({ instanceIds: [] }), config, unusedRng)).toEqual([]);
  });

  it('mutates neither the hosts nor the request', () => {
    const hosts = rankedFleet();
    const group = { name: 'g', policy: ServerGroupPolicy.AntiAffinity, hosts: new Set<string>() };
    const req = makeRequest({ instanceIds: ['i1', 'i2', 'i3'], serverGroup: group });
    const hostsBefore = structuredClone(hosts);
    const reqBefore = structuredClone(req);
    for (const h of hosts) Object.freeze(Object.freeze(h).used);
    selectDestinations(hosts, req, config, unusedRng);
    expect(hosts).toEqual(hostsBefore);
    expect(req).toEqual(reqBefore);
    expect(group.hosts.size).toBe(0);
  });
});

describe('consumeFromRequest', () => {
  it('returns a copy with the resources debited and the instance added', () => {
    const host = makeHost('a', { used: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 0 }, instances: ['old'] });
    Object.freeze(host.used);
    const consumed = consumeFromRequest(host, { VCPU: 2, MEMORY_MB: 4096, DISK_GB: 40 }, 'new');
    expect(consumed.used).toEqual({ VCPU: 3, MEMORY_MB: 4608, DISK_GB: 40 });
    expect([...consumed.instances]).toEqual(['old', 'new']);
    expect(host.used).toEqual({ VCPU: 1, MEMORY_MB: 512, DISK_GB: 0 });
    expect([...host.instances]).toEqual(['old']);
  });
});
