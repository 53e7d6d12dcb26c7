/**
 * Server reads through inject over a seeded store: Nova's key set per microversion gate (2.1, 2.3, 2.9,
 * 2.16, 2.19, 2.26, 2.47) from its api-samples, admin-only attributes, the state map, power states,
 * hostId, tenancy (a member sees its project's servers only, 404 for others'), deleted servers 404,
 * filters and paging.
 */
import { createHash, randomUUID } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { POWER_STATE, rebuildView, statusOf } from '../../../src/api/compute/server-view';
import { keystoneId } from '../../../src/api/ids';
import type { InstanceRecord } from '../../../src/domain/instance';
import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';
import { novaSample, sampleKeys } from '../../helpers/nova-samples';

describe('OpenStack API: server reads', () => {
  let api: TestApi;
  let admin: string;
  let demo: string;
  let other: string;
  const ids = { demo1: randomUUID(), demo2: randomUUID(), other1: randomUUID(), gone: randomUUID(), cli: randomUUID() };
  const demoProject = keystoneId('project', 'demo');

  async function seed(id: string, name: string, patch: Partial<InstanceRecord>, project?: string) {
    await api.deps.instances.create({
      instanceId: id,
      name,
      vmState: 'active',
      taskState: null,
      powerState: 'running',
      host: 'node-1',
      availabilityZone: 'nova',
      flavor: 'm1.small',
      image: 'cirros',
      vcpus: 1,
      memoryMb: 2048,
      diskGb: 20,
      serverGroup: null,
      ...patch,
    });
    if (project)
      await api.deps.api.setInstanceOwner(id, {
        projectId: keystoneId('project', project),
        userId: keystoneId('user', project),
      });
  }

  beforeAll(async () => {
    api = await openTestApi();
    [admin, demo, other] = await Promise.all([api.token('admin'), api.token('demo'), api.token('other')]);
    await seed(ids.demo1, 'web-1', {}, 'demo');
    await seed(
      ids.demo2,
      'db-1',
      { vmState: 'stopped', powerState: 'shutdown', host: 'node-2', flavor: 'm1.tiny' },
      'demo'
    );
    await seed(ids.other1, 'web-1', {}, 'other');
    await seed(ids.gone, 'gone', { vmState: 'deleted', host: null }, 'demo');
    await seed(ids.cli, 'from-cli', { vmState: 'resized', host: 'node-3' });
  });
  afterAll(() => api.close());

  const get = (url: string, token: string, version?: string) =>
    api.app.inject({
      method: 'GET',
      url,
      headers: { 'x-auth-token': token, ...(version ? { 'OpenStack-API-Version': `compute ${version}` } : {}) },
    });

  it.each([
    ['2.1', 'servers/server-get-resp'],
    ['2.3', 'servers/v2.3/server-get-resp'],
    ['2.9', 'servers/v2.9/server-get-resp'],
    ['2.16', 'servers/v2.16/server-get-resp'],
    ['2.19', 'servers/v2.19/server-get-resp'],
    ['2.47', 'servers/v2.47/server-get-resp'],
  ])('shows a server to an admin with exactly the keys of Nova sample at %s', async (version, sample) => {
    const res = await get(`/compute/v2.1/servers/${ids.demo1}`, admin, version);
    expect(res.statusCode).toBe(200);
    const server = res.json<{ server: Record<string, unknown> }>().server;
    expect(Object.keys(server).sort()).toEqual(sampleKeys(sample, 'server'));
    const flavorSample = (novaSample(sample) as { server: { flavor: Record<string, unknown> } }).server.flavor;
    expect(Object.keys(server.flavor as object).sort()).toEqual(Object.keys(flavorSample).sort());
  });

  it.each([
    ['2.1', 'servers/server-action-rebuild-resp'],
    ['2.19', 'servers/v2.19/server-action-rebuild-resp'],
    ['2.26', 'servers/v2.26/server-action-rebuild-resp'],
  ])('answers a rebuild at %s with the keys of Nova rebuild sample', async (version, sample) => {
    const full = (await get(`/compute/v2.1/servers/${ids.demo1}`, admin, version)).json<{
      server: Record<string, unknown>;
    }>();
    const body = rebuildView(full.server, 'secret');
    expect(Object.keys(body).sort()).toEqual(sampleKeys(sample, 'server'));
  });

  it('adds tags at 2.26 (as the 2.26 rebuild sample shows) and hides admin attributes from a member', async () => {
    const at226 = (await get(`/compute/v2.1/servers/${ids.demo1}`, admin, '2.26')).json<{
      server: Record<string, unknown>;
    }>();
    expect(Object.keys(at226.server).sort()).toEqual(
      [...sampleKeys('servers/v2.19/server-get-resp', 'server'), 'tags'].sort()
    );
    expect(sampleKeys('servers/v2.26/server-action-rebuild-resp', 'server')).toContain('tags');
    const member = (await get(`/compute/v2.1/servers/${ids.demo1}`, demo, '2.47')).json<{
      server: Record<string, unknown>;
    }>();
    const adminOnly = sampleKeys('servers/v2.47/server-get-resp', 'server').filter(
      (k) => k.startsWith('OS-EXT-SRV-ATTR:') || k === 'host_status'
    );
    expect(Object.keys(member.server).sort()).toEqual(
      sampleKeys('servers/v2.47/server-get-resp', 'server').filter((k) => !adminOnly.includes(k))
    );
  });

  it('maps states, power states, hostId and the owner as Nova does', async () => {
    const s = (await get(`/compute/v2.1/servers/${ids.demo2}`, demo)).json<{ server: Record<string, unknown> }>()
      .server;
    expect(s).toMatchObject({
      status: 'SHUTOFF',
      'OS-EXT-STS:vm_state': 'stopped',
      'OS-EXT-STS:power_state': 4,
      'OS-EXT-STS:task_state': null,
      tenant_id: demoProject,
      hostId: createHash('sha224').update(`${demoProject}node-2`).digest('hex'),
      flavor: { id: 'm1.tiny' },
    });
    expect(statusOf('active', 'resize_prep')).toBe('RESIZE');
    expect(statusOf('active', 'migrating')).toBe('MIGRATING');
    expect(statusOf('active', 'powering-off')).toBe('ACTIVE');
    expect(statusOf('resized', null)).toBe('VERIFY_RESIZE');
    expect(statusOf('resized', 'resize_reverting')).toBe('REVERT_RESIZE');
    expect(statusOf('building', 'spawning')).toBe('BUILD');
    expect(statusOf('error', null)).toBe('ERROR');
    expect(statusOf('active', 'rebuilding')).toBe('REBUILD');
    expect(statusOf('active', 'pausing')).toBe('ACTIVE');
    expect(statusOf('paused', null)).toBe('PAUSED');
    expect(statusOf('paused', 'unpausing')).toBe('PAUSED');
    expect(statusOf('paused', 'rebooting_hard')).toBe('HARD_REBOOT');
    expect(statusOf('suspended', null)).toBe('SUSPENDED');
    expect(statusOf('suspended', 'resuming')).toBe('SUSPENDED');
    expect(POWER_STATE).toMatchObject({ paused: 3, suspended: 7 });
  });

  it("gives a member its project's servers only: others' and deleted ones are 404", async () => {
    const list = (await get('/compute/v2.1/servers', demo)).json<{ servers: Array<{ id: string }> }>();
    expect(list.servers.map((s) => s.id).sort()).toEqual([ids.demo1, ids.demo2].sort());
    expect(Object.keys(list.servers[0]!).sort()).toEqual(
      Object.keys((novaSample('servers/servers-list-resp') as { servers: object[] }).servers[0]!).sort()
    );
    expect((await get(`/compute/v2.1/servers/${ids.other1}`, demo)).json()).toEqual({
      itemNotFound: { code: 404, message: `Instance ${ids.other1} could not be found.` },
    });
    expect((await get(`/compute/v2.1/servers/${ids.gone}`, demo)).statusCode).toBe(404);
    expect((await get(`/compute/v2.1/servers/${ids.gone}`, admin)).statusCode).toBe(404);
    const others = (await get('/compute/v2.1/servers/detail', other)).json<{ servers: Array<{ id: string }> }>();
    expect(others.servers.map((s) => s.id)).toEqual([ids.other1]);
    // all_tenants is an admin's: ignored for a member.
    const tried = (await get('/compute/v2.1/servers?all_tenants=1', demo)).json<{ servers: unknown[] }>();
    expect(tried.servers).toHaveLength(2);
  });

  it('gives an admin its project by default and every project with all_tenants, with filters and paging', async () => {
    const own = (await get('/compute/v2.1/servers', admin)).json<{ servers: Array<{ id: string }> }>();
    expect(own.servers.map((s) => s.id)).toEqual([ids.cli]);
    const all = (await get('/compute/v2.1/servers/detail?all_tenants=True', admin)).json<{
      servers: Array<{ id: string; status: string }>;
    }>();
    expect(all.servers.map((s) => s.id).sort()).toEqual([ids.demo1, ids.demo2, ids.other1, ids.cli].sort());
    expect(all.servers.find((s) => s.id === ids.cli)!.status).toBe('VERIFY_RESIZE');
    const named = (await get('/compute/v2.1/servers?all_tenants=1&name=^web', admin)).json<{ servers: unknown[] }>();
    expect(named.servers).toHaveLength(2);
    const shutoff = (await get('/compute/v2.1/servers?all_tenants=1&status=SHUTOFF', admin)).json<{
      servers: Array<{ id: string }>;
    }>();
    expect(shutoff.servers.map((s) => s.id)).toEqual([ids.demo2]);
    const onHost = (await get('/compute/v2.1/servers?all_tenants=1&host=node-3', admin)).json<{
      servers: Array<{ id: string }>;
    }>();
    expect(onHost.servers.map((s) => s.id)).toEqual([ids.cli]);
    const byProject = (await get(`/compute/v2.1/servers?all_tenants=1&project_id=${demoProject}`, admin)).json<{
      servers: unknown[];
    }>();
    expect(byProject.servers).toHaveLength(2);
    // Without all_tenants a project filter is ignored: the admin's own project (Tempest's
    // test_list_servers_by_admin_with_specified_tenant).
    const tenantOnly = (await get(`/compute/v2.1/servers?tenant_id=${demoProject}`, admin)).json<{
      servers: Array<{ id: string }>;
    }>();
    expect(tenantOnly.servers.map((s) => s.id)).toEqual([ids.cli]);
    const first = (await get('/compute/v2.1/servers?all_tenants=1&limit=3', admin)).json<{
      servers: Array<{ id: string }>;
      servers_links: Array<{ href: string }>;
    }>();
    expect(first.servers).toHaveLength(3);
    expect(first.servers_links[0]!.href).toContain(`marker=${first.servers[2]!.id}`);
    const rest = (await get(`/compute/v2.1/servers?all_tenants=1&marker=${first.servers[2]!.id}`, admin)).json<{
      servers: Array<{ id: string }>;
    }>();
    expect([...first.servers, ...rest.servers].map((s) => s.id).sort()).toEqual(all.servers.map((s) => s.id).sort());
    expect((await get('/compute/v2.1/servers?marker=nope', admin)).statusCode).toBe(400);
    const deleted = (await get('/compute/v2.1/servers?all_tenants=1&deleted=true', admin)).json<{
      servers: Array<{ id: string }>;
    }>();
    expect(deleted.servers.map((s) => s.id)).toEqual([ids.gone]);
  });

  it.each([
    ['2.1', 'limits/limit-get-resp'],
    ['2.36', 'limits/v2.36/limit-get-resp'],
    ['2.39', 'limits/v2.39/limit-get-resp'],
    ['2.57', 'limits/v2.57/limit-get-resp'],
  ])('shows limits at %s as Nova (no quotas: unlimited) with the project usage', async (version, sample) => {
    const res = await get('/compute/v2.1/limits', demo, version);
    const absolute = res.json<{ limits: { absolute: Record<string, number> } }>().limits.absolute;
    const expected = (novaSample(sample) as { limits: { absolute: object } }).limits.absolute;
    expect(Object.keys(absolute).sort()).toEqual(Object.keys(expected).sort());
    expect(absolute).toMatchObject({
      maxTotalInstances: -1,
      totalInstancesUsed: 2,
      totalCoresUsed: 2,
      totalRAMUsed: 2048 + 2048,
    });
  });

  it('answers Nova-shaped errors for unknown routes, bad actions and unimplemented ones, never 500', async () => {
    const post = (body: unknown, token = demo) =>
      api.app.inject({
        method: 'POST',
        url: `/compute/v2.1/servers/${ids.demo1}/action`,
        payload: body as object,
        headers: { 'x-auth-token': token },
      });
    expect((await post({ lock: null })).json()).toEqual({
      notImplemented: { code: 501, message: 'Action lock is not implemented by this conductor.' },
    });
    expect((await post({ createImage: {} })).json()).toEqual({
      badRequest: {
        code: 400,
        message: "Invalid input for field/attribute createImage. 'name' is a required property",
      },
    });
    expect((await post({ reboot: { type: 'GENTLE' } })).json()).toEqual({
      badRequest: {
        code: 400,
        message: "Invalid input for field/attribute type. Value: must be one of 'SOFT', 'HARD'",
      },
    });
    expect((await post({ fly: null })).statusCode).toBe(400);
    expect(
      (await post({ 'os-resetState': { state: 'active' } })).json<{ forbidden: { code: number } }>().forbidden.code
    ).toBe(403);
    expect((await post({ migrate: null })).statusCode).toBe(403);
    expect((await post({ 'os-stop': null }, other)).statusCode).toBe(404);
    expect((await get('/compute/v2.1/os-volumes', admin)).json<{ itemNotFound: unknown }>().itemNotFound).toBeDefined();
  });
});
