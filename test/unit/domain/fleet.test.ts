import { describe, expect, it } from 'vitest';

import { FleetSchema, generateFleet, MAX_HOSTS_PER_LIST, parseHostList } from '../../../src/domain/fleet';
import { hostsToServe } from '../../../src/workers/compute-worker';

describe('parseHostList (COMPUTE_HOSTS)', () => {
  it('expands ranges and lists, keeping order and dropping duplicates', () => {
    expect(parseHostList('node-1..node-3')).toEqual(['node-1', 'node-2', 'node-3']);
    expect(parseHostList('node-9..11, edge-a,node-10')).toEqual(['node-9', 'node-10', 'node-11', 'edge-a']);
    expect(parseHostList('node-1..node-1000')).toHaveLength(1000);
  });

  it('refuses bad names, empty or mixed ranges, empty lists and lists past the bound', () => {
    expect(() => parseHostList('Node-1')).toThrow(/'Node-1' is not a valid host name/);
    expect(() => parseHostList('node-5..node-2')).toThrow(/empty/);
    expect(() => parseHostList('node-1..edge-3')).toThrow(/same prefix/);
    expect(() => parseHostList(' , ')).toThrow(/empty/);
    expect(() => parseHostList(`n-1..n-${MAX_HOSTS_PER_LIST + 1}`)).toThrow(/more than/);
  });
});

describe('generateFleet', () => {
  it('makes a valid fleet of N hosts of one shape, spread over the zones', () => {
    const fleet = generateFleet(1000);
    expect(FleetSchema.safeParse(fleet).success).toBe(true);
    expect(fleet.hosts).toHaveLength(1000);
    expect(fleet.hosts[999]!.name).toBe('node-1000');
    expect(new Set(fleet.hosts.map((h) => h.availabilityZone))).toEqual(new Set(['az1', 'az2']));
    expect(() => generateFleet(0)).toThrow(/1 to/);
  });
});

describe('hostsToServe (a compute process)', () => {
  const fleet = generateFleet(5);
  const env = { FLEET_FILE: 'fleet.json' };

  it('serves COMPUTE_HOST alone, a COMPUTE_HOSTS list or range, or every host with `all`', () => {
    const names = (e: Parameters<typeof hostsToServe>[0]) => hostsToServe(e, fleet).map((h) => h.name);
    expect(names({ ...env, COMPUTE_HOST: 'node-2' })).toEqual(['node-2']);
    expect(names({ ...env, COMPUTE_HOSTS: 'node-2..node-4' })).toEqual(['node-2', 'node-3', 'node-4']);
    expect(names({ ...env, COMPUTE_HOSTS: 'all' })).toHaveLength(5);
    expect(hostsToServe({ ...env, COMPUTE_HOSTS: 'node-1' }, fleet)[0]!.vcpus).toBe(16);
  });

  it('refuses hosts missing from the fleet file, naming them, and a process with no host', () => {
    expect(() => hostsToServe({ ...env, COMPUTE_HOSTS: 'node-4..node-7' }, fleet)).toThrow(
      /hosts node-6, node-7 not in the fleet file fleet.json/
    );
    expect(() => hostsToServe(env, fleet)).toThrow(/neither COMPUTE_HOST nor COMPUTE_HOSTS/);
  });
});
