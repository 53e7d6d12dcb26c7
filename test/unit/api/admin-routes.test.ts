/**
 * The admin and per-server read routes through inject over a seeded store: os-services, os-hypervisors,
 * os-migrations, os-instance-actions and os-server-groups, each at the microversions that change it,
 * compared key by key with Nova's api-samples; admin-only routes 403 for a member; integer ids below
 * 2.53 stable and resolvable.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { hypervisorId, keystoneId, serverGroupId, serviceId } from '../../../src/api/ids';
import { HostSpecSchema } from '../../../src/domain/fleet';
import type { Store } from '../../../src/store/db';
import { migrateToLatest, openStore } from '../../../src/store/db';
import { createPlacementRepository } from '../../../src/store/placement';
import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';
import { novaSample } from '../../helpers/nova-samples';

/** The sorted keys of the first element of `list` in a body (or of the member object). */
function firstKeys(body: unknown, member: string): string[] {
  const value = (body as Record<string, unknown>)[member];
  const first = Array.isArray(value) ? (value[0] as object) : (value as object);
  return Object.keys(first ?? {}).sort();
}

describe('OpenStack API: services, hypervisors, migrations, instance actions, server groups', () => {
  let api: TestApi;
  let store: Store;
  let dir: string;
  let admin: string;
  let demo: string;
  const server = randomUUID();
  const migrationId = randomUUID();
  const up = new Set(['h-1']);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'conductor-api-admin-'));
    store = await openStore({ sqlitePath: path.join(dir, 'conductor.sqlite') });
    await migrateToLatest(store);
    const placement = createPlacementRepository(store);
    for (const name of ['h-1', 'h-2'])
      await placement.upsertProvider(HostSpecSchema.parse({ name, vcpus: 8, memoryMb: 16384, diskGb: 100 }));
    api = await openTestApi({ store, hostStates: () => placement.listHostStates((h) => up.has(h)) });
    [admin, demo] = await Promise.all([api.token('admin'), api.token('demo')]);
    const repo = api.deps.instances;
    await repo.create({
      instanceId: server,
      name: 'vm',
      vmState: 'active',
      taskState: null,
      powerState: 'running',
      host: 'h-2',
      availabilityZone: 'nova',
      flavor: 'm1.small',
      image: 'cirros',
      vcpus: 1,
      memoryMb: 2048,
      diskGb: 20,
      serverGroup: 'spread',
    });
    await placement.claim(server, 'h-2', { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 });
    await api.deps.api.setInstanceOwner(server, {
      projectId: keystoneId('project', 'demo'),
      userId: keystoneId('user', 'demo'),
    });
    const { actionId } = await repo.startAction(server, 'stop', 'stop-req-1');
    await repo.startEvent(actionId, 'compute_stop_instance', 0, 'h-2');
    await repo.finishEvent(actionId, 'compute_stop_instance', 0, 'Success');
    await repo.finishAction(actionId, 'Success');
    await repo.createMigration({
      id: migrationId,
      instanceId: server,
      sourceHost: 'h-1',
      destHost: 'h-2',
      oldFlavor: 'm1.small',
      newFlavor: 'm1.medium',
      migrationType: 'resize',
      status: 'confirmed',
    });
    await repo.ensureServerGroup('spread', 'anti-affinity');
    await api.deps.api.setServerGroupOwner('spread', {
      projectId: keystoneId('project', 'demo'),
      userId: keystoneId('user', 'demo'),
    });
  });
  afterAll(async () => {
    await api.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (url: string, token: string, version?: string) =>
    api.app.inject({
      method: 'GET',
      url: `/compute/v2.1${url}`,
      headers: { 'x-auth-token': token, ...(version ? { 'OpenStack-API-Version': `compute ${version}` } : {}) },
    });

  it.each([
    ['2.1', 'os-services/services-list-get-resp'],
    ['2.11', 'os-services/v2.11/services-list-get-resp'],
    ['2.53', 'os-services/v2.53/services-list-get-resp'],
  ])('lists services at %s with the keys of Nova sample', async (version, sample) => {
    const res = await get('/os-services', admin, version);
    expect(firstKeys(res.json(), 'services')).toEqual(firstKeys(novaSample(sample), 'services'));
    const services = res.json<{ services: Array<{ host: string; state: string; id: unknown }> }>().services;
    expect(services.map((s) => [s.host, s.state])).toEqual([
      ['h-1', 'up'],
      ['h-2', 'down'],
    ]);
    if (version === '2.53') expect(services[0]!.id).toBe(serviceId('h-1'));
    else expect(typeof services[0]!.id).toBe('number');
  });

  it.each([
    ['2.1', 'os-hypervisors/hypervisors-detail-resp'],
    ['2.28', 'os-hypervisors/v2.28/hypervisors-detail-resp'],
    ['2.33', 'os-hypervisors/v2.33/hypervisors-detail-resp'],
    ['2.53', 'os-hypervisors/v2.53/hypervisors-detail-resp'],
  ])('lists hypervisors in detail at %s with the keys of Nova sample', async (version, sample) => {
    const res = await get('/os-hypervisors/detail', admin, version);
    expect(firstKeys(res.json(), 'hypervisors')).toEqual(firstKeys(novaSample(sample), 'hypervisors'));
    const first = res.json<{ hypervisors: Array<{ cpu_info: unknown; service: object }> }>().hypervisors[0]!;
    expect(typeof first.cpu_info).toBe(version === '2.1' ? 'string' : 'object');
    expect(Object.keys(first.service).sort()).toEqual(['disabled_reason', 'host', 'id']);
  });

  it('shows a hypervisor by its integer id below 2.53 and by UUID from 2.53; list keys as Nova', async () => {
    const list = await get('/os-hypervisors', admin);
    expect(firstKeys(list.json(), 'hypervisors')).toEqual(
      firstKeys(novaSample('os-hypervisors/hypervisors-list-resp'), 'hypervisors')
    );
    const h2 = list.json<{ hypervisors: Array<{ id: number; hypervisor_hostname: string }> }>().hypervisors[1]!;
    expect(h2.hypervisor_hostname).toBe('h-2');
    const byInt = await get(`/os-hypervisors/${h2.id}`, admin);
    expect(byInt.json<{ hypervisor: { hypervisor_hostname: string } }>().hypervisor.hypervisor_hostname).toBe('h-2');
    const byUuid = await get(`/os-hypervisors/${hypervisorId('h-2')}`, admin, '2.53');
    expect(firstKeys(byUuid.json(), 'hypervisor')).toEqual(
      firstKeys(novaSample('os-hypervisors/v2.53/hypervisors-show-resp'), 'hypervisor')
    );
    expect((await get('/os-hypervisors/999', admin)).statusCode).toBe(404);
    // The integer ids do not change from one read to the next.
    expect(
      (await get('/os-hypervisors', admin)).json<{ hypervisors: Array<{ id: number }> }>().hypervisors[1]!.id
    ).toBe(h2.id);
  });

  it('sums every hypervisor in statistics, with the keys of Nova sample', async () => {
    const res = await get('/os-hypervisors/statistics', admin);
    expect(firstKeys(res.json(), 'hypervisor_statistics')).toEqual(
      firstKeys(novaSample('os-hypervisors/hypervisors-statistics-resp'), 'hypervisor_statistics')
    );
    expect(res.json<{ hypervisor_statistics: object }>().hypervisor_statistics).toMatchObject({
      count: 2,
      vcpus: 16,
      vcpus_used: 1,
      memory_mb: 31744, // 16384 each, less 512 reserved
      memory_mb_used: 2048,
      local_gb_used: 20,
      running_vms: 1,
    });
    expect((await get('/os-hypervisors/statistics', demo)).statusCode).toBe(403);
  });

  it("answers an up hypervisor's uptime as `uptime` prints it, and 400 for one that is down", async () => {
    const list = (await get('/os-hypervisors', admin)).json<{ hypervisors: Array<{ id: number }> }>().hypervisors;
    const res = await get(`/os-hypervisors/${list[0]!.id}/uptime`, admin);
    expect(firstKeys(res.json(), 'hypervisor')).toEqual(
      firstKeys(novaSample('os-hypervisors/hypervisors-uptime-resp'), 'hypervisor')
    );
    expect(res.json<{ hypervisor: { uptime: string } }>().hypervisor.uptime).toMatch(
      /^ \d\d:\d\d:\d\d up .*, +\d+ users, +load average: [\d.]+, [\d.]+, [\d.]+$/
    );
    expect((await get(`/os-hypervisors/${list[1]!.id}/uptime`, admin)).statusCode).toBe(400); // h-2 is down
    expect((await get('/os-hypervisors/999/uptime', admin)).statusCode).toBe(404);
  });

  it('searches hypervisors by hostname and lists their servers below 2.53 (Nova samples), 404 from 2.53', async () => {
    const search = await get('/os-hypervisors/h-/search', admin);
    expect(firstKeys(search.json(), 'hypervisors')).toEqual(
      firstKeys(novaSample('os-hypervisors/hypervisors-search-resp'), 'hypervisors')
    );
    expect(search.json<{ hypervisors: unknown[] }>().hypervisors).toHaveLength(2);
    expect((await get('/os-hypervisors/nope/search', admin)).statusCode).toBe(404);
    const servers = (await get('/os-hypervisors/h-2/servers', admin)).json<{
      hypervisors: Array<{ hypervisor_hostname: string; servers?: Array<{ uuid: string; name: string }> }>;
    }>().hypervisors;
    expect(Object.keys(servers[0]!).sort()).toEqual(
      firstKeys(novaSample('os-hypervisors/hypervisors-with-servers-resp'), 'hypervisors')
    );
    expect(servers[0]!.servers).toEqual([{ uuid: server, name: 'vm' }]);
    expect((await get('/os-hypervisors/h-/search', admin, '2.53')).statusCode).toBe(404);
  });

  it('pages hypervisors from 2.33 by their integer id, and by UUID from 2.53', async () => {
    const first = (await get('/os-hypervisors?limit=1', admin, '2.33')).json<{
      hypervisors: Array<{ id: number; hypervisor_hostname: string }>;
    }>();
    expect(first.hypervisors.map((h) => h.hypervisor_hostname)).toEqual(['h-1']);
    const next = (await get(`/os-hypervisors?marker=${first.hypervisors[0]!.id}`, admin, '2.33')).json<{
      hypervisors: Array<{ hypervisor_hostname: string }>;
    }>();
    expect(next.hypervisors.map((h) => h.hypervisor_hostname)).toEqual(['h-2']);
    const byUuid = (await get(`/os-hypervisors?marker=${hypervisorId('h-1')}`, admin, '2.53')).json<{
      hypervisors: Array<{ hypervisor_hostname: string }>;
    }>();
    expect(byUuid.hypervisors.map((h) => h.hypervisor_hostname)).toEqual(['h-2']);
    expect((await get('/os-hypervisors?marker=nope', admin, '2.53')).statusCode).toBe(400);
  });

  it.each([
    ['2.1', 'os-migrations/migrations-get'],
    ['2.23', 'os-migrations/v2.23/migrations-get'],
    ['2.59', 'os-migrations/v2.59/migrations-get'],
  ])('lists migrations at %s with the keys of Nova sample', async (version, sample) => {
    const res = await get('/os-migrations', admin, version);
    const expected = firstKeys(novaSample(sample), 'migrations').filter((k) => k !== 'links');
    expect(firstKeys(res.json(), 'migrations')).toEqual(expected);
    const m = res.json<{ migrations: Array<Record<string, unknown>> }>().migrations[0]!;
    expect(m).toMatchObject({ instance_uuid: server, source_compute: 'h-1', dest_compute: 'h-2', status: 'confirmed' });
    expect(typeof m.id).toBe('number');
    if (version === '2.59') expect(m.uuid).toBe(migrationId);
  });

  it('lists and shows instance actions as Nova at 2.1, 2.51 (member events, no traceback) and 2.58', async () => {
    const list = await get(`/servers/${server}/os-instance-actions`, demo);
    expect(firstKeys(list.json(), 'instanceActions')).toEqual(
      firstKeys(novaSample('os-instance-actions/instance-actions-list-resp'), 'instanceActions')
    );
    const list58 = await get(`/servers/${server}/os-instance-actions`, demo, '2.58');
    expect(firstKeys(list58.json(), 'instanceActions')).toEqual(
      firstKeys(novaSample('os-instance-actions/v2.58/instance-actions-list-resp'), 'instanceActions')
    );
    const asAdmin = (await get(`/servers/${server}/os-instance-actions/stop-req-1`, admin)).json<{
      instanceAction: { events: object[] };
    }>();
    expect(firstKeys(asAdmin, 'instanceAction')).toEqual(
      firstKeys(novaSample('os-instance-actions/instance-action-get-resp'), 'instanceAction')
    );
    expect(Object.keys(asAdmin.instanceAction.events[0]!).sort()).toEqual([
      'event',
      'finish_time',
      'result',
      'start_time',
      'traceback',
    ]);
    // Below 2.51 a member sees no events; from 2.51 events without tracebacks.
    expect(
      firstKeys((await get(`/servers/${server}/os-instance-actions/stop-req-1`, demo)).json(), 'instanceAction')
    ).not.toContain('events');
    const member51 = (await get(`/servers/${server}/os-instance-actions/stop-req-1`, demo, '2.51')).json<{
      instanceAction: { events: object[] };
    }>();
    const sample51 = novaSample('os-instance-actions/v2.51/instance-action-get-non-admin-resp') as {
      instanceAction: { events: object[] };
    };
    expect(Object.keys(member51.instanceAction.events[0]!).sort()).toEqual(
      Object.keys(sample51.instanceAction.events[0]!).sort()
    );
    expect((await get(`/servers/${server}/os-instance-actions/nope`, demo)).statusCode).toBe(404);
  });

  it('lists and shows server groups as Nova at 2.1 and 2.13, for their project only', async () => {
    const list = await get('/os-server-groups', demo);
    expect(firstKeys(list.json(), 'server_groups')).toEqual(
      firstKeys(novaSample('os-server-groups/server-groups-list-resp'), 'server_groups')
    );
    const show = await get(`/os-server-groups/${serverGroupId('spread')}`, demo, '2.13');
    expect(firstKeys(show.json(), 'server_group')).toEqual(
      firstKeys(novaSample('os-server-groups/v2.13/server-groups-get-resp'), 'server_group')
    );
    expect(show.json()).toMatchObject({
      server_group: { name: 'spread', policies: ['anti-affinity'], members: [server] },
    });
    expect((await get('/os-server-groups', admin)).json<{ server_groups: unknown[] }>().server_groups).toEqual([]);
    expect(
      (await get('/os-server-groups?all_projects=True', admin)).json<{ server_groups: unknown[] }>().server_groups
    ).toHaveLength(1);
  });

  it("gates a server's migrations by microversion and refuses force_complete / abort of a migration not under way", async () => {
    const at = (method: 'GET' | 'POST' | 'DELETE', url: string, version: string, payload?: object) =>
      api.app.inject({
        method,
        url: `/compute/v2.1${url}`,
        ...(payload ? { payload } : {}),
        headers: { 'x-auth-token': admin, 'OpenStack-API-Version': `compute ${version}` },
      });
    expect((await at('GET', `/servers/${server}/migrations`, '2.22')).statusCode).toBe(404);
    expect((await at('GET', `/servers/${server}/migrations`, '2.23')).json()).toEqual({ migrations: [] });
    const id = (await get('/os-migrations', admin)).json<{ migrations: Array<{ id: number }> }>().migrations[0]!.id;
    const force = (v: string) => at('POST', `/servers/${server}/migrations/${id}/action`, v, { force_complete: null });
    expect((await force('2.21')).statusCode).toBe(404);
    expect(
      (await force('2.22')).json<{ conflictingRequest: { message: string } }>().conflictingRequest.message
    ).toMatch(/is not a live migration under way/);
    expect((await at('DELETE', `/servers/${server}/migrations/${id}`, '2.23')).statusCode).toBe(404);
    expect((await at('DELETE', `/servers/${server}/migrations/${id}`, '2.24')).statusCode).toBe(404);
    expect((await at('GET', `/servers/${server}/migrations/999`, '2.23')).statusCode).toBe(404);
  });

  it('answers 403 to a member on the admin-only routes', async () => {
    for (const url of ['/os-services', '/os-hypervisors', '/os-hypervisors/detail', '/os-migrations']) {
      const res = await get(url, demo);
      expect(res.statusCode, url).toBe(403);
      expect(Object.keys(res.json())).toEqual(['forbidden']);
    }
  });
});
