/**
 * Writes that can only fail are refused before any workflow is started or anything written (the API's
 * Temporal client here fails the test if it is ever asked for): create's checks per microversion, the
 * roles, the action bodies' microversion gates, and Nova's messages.
 */
import { randomUUID } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { imageId, keystoneId } from '../../../src/api/ids';
import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';

describe('OpenStack API: writes refused before anything starts', () => {
  let api: TestApi;
  let admin: string;
  let demo: string;
  let watcher: string;
  const server = randomUUID();
  let temporalAsked = 0;

  beforeAll(async () => {
    api = await openTestApi({
      temporal: () => {
        temporalAsked++;
        return Promise.reject(new Error('a refused request must not reach Temporal'));
      },
    });
    [admin, demo, watcher] = await Promise.all([api.token('admin'), api.token('demo'), api.token('watcher')]);
    await api.deps.instances.create({
      instanceId: server,
      name: 'vm',
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
    });
    await api.deps.api.setInstanceOwner(server, {
      projectId: keystoneId('project', 'demo'),
      userId: keystoneId('user', 'demo'),
    });
  });
  afterAll(async () => {
    expect(temporalAsked).toBe(0);
    expect((await api.deps.instances.list()).map((i) => i.instanceId)).toEqual([server]);
    await api.close();
  });

  const post = (url: string, payload: object, token = demo, version = '2.60') =>
    api.app.inject({
      method: 'POST',
      url: `/compute/v2.1${url}`,
      payload,
      headers: { 'x-auth-token': token, 'OpenStack-API-Version': `compute ${version}` },
    });
  const create = (server: Record<string, unknown>, version = '2.60', token = demo) =>
    post(
      '/servers',
      { server: { name: 'x', flavorRef: 'm1.small', imageRef: imageId('cirros'), ...server } },
      token,
      version
    );

  it.each([
    ['networks missing at 2.37', { networks: undefined }, '2.37', /'networks' is a required property/],
    ['a list of networks', { networks: [{ uuid: randomUUID() }] }, '2.60', /Networks are not supported/],
    ['an unknown flavor', { networks: 'auto', flavorRef: 'm1.nope' }, '2.60', /^Flavor m1.nope could not be found\.$/],
    ['an unknown image', { networks: 'auto', imageRef: randomUUID() }, '2.60', /^Image .* could not be found\.$/],
    ['a key pair', { networks: 'auto', key_name: 'k' }, '2.60', /^Invalid key_name provided\.$/],
    [
      'min_count above max_count',
      { networks: 'auto', min_count: 3, max_count: 2 },
      '2.60',
      /min_count must be <= max_count/,
    ],
    [
      'a volume',
      {
        networks: 'none',
        block_device_mapping_v2: [
          { source_type: 'volume', destination_type: 'volume', uuid: randomUUID(), boot_index: 0 },
        ],
      },
      '2.60',
      /Block device mappings/,
    ],
    ['a host from a member', { networks: 'auto', availability_zone: 'nova:node-1' }, '2.60', /admin/],
    ['no name', { networks: 'auto', name: undefined }, '2.60', /name/],
  ])('refuses a create with %s: 400', async (_what, fields, version, message) => {
    const res = await create(fields, version);
    expect(res.statusCode).toBe(400);
    expect(res.json<{ badRequest: { code: number; message: string } }>().badRequest.message).toMatch(message);
  });

  it('refuses an unknown host and an unknown server group even for an admin: 400', async () => {
    expect((await create({ networks: 'auto', availability_zone: 'nova:nowhere' }, '2.60', admin)).statusCode).toBe(400);
    const res = await post('/servers', {
      server: { name: 'x', flavorRef: 'm1.small', imageRef: imageId('cirros'), networks: 'auto' },
      'OS-SCH-HNT:scheduler_hints': { group: randomUUID() },
    });
    expect(res.json<{ badRequest: { message: string } }>().badRequest.message).toMatch(/Server group .* not found/);
  });

  it('refuses writes from a reader (403) and for servers of another project (404)', async () => {
    expect((await create({ networks: 'auto' }, '2.60', watcher)).statusCode).toBe(403);
    expect((await post(`/servers/${server}/action`, { 'os-stop': null }, watcher)).statusCode).toBe(403);
    const del = await api.app.inject({
      method: 'DELETE',
      url: `/compute/v2.1/servers/${randomUUID()}`,
      headers: { 'x-auth-token': demo },
    });
    expect(del.statusCode).toBe(404);
  });

  it("checks actions' bodies by microversion before starting anything", async () => {
    const action = (body: object, version: string, token = admin) =>
      post(`/servers/${server}/action`, body, token, version);
    expect((await action({ migrate: { host: 'node-2' } }, '2.55')).statusCode).toBe(400);
    expect(
      (await action({ migrate: { host: 'nowhere' } }, '2.56')).json<{ badRequest: { message: string } }>().badRequest
        .message
    ).toBe('Compute host nowhere could not be found.');
    expect((await action({ 'os-migrateLive': { host: null, block_migration: 'auto' } }, '2.24')).statusCode).toBe(400);
    expect((await action({ resize: { flavorRef: 'm1.small' } }, '2.60', demo)).json()).toEqual({
      badRequest: { code: 400, message: 'When resizing, instances must change flavor!' },
    });
    expect((await action({ resize: { flavorRef: 'm1.nope' } }, '2.60', demo)).statusCode).toBe(400);
    expect((await action({ rebuild: { imageRef: randomUUID() } }, '2.60', demo)).statusCode).toBe(400);
    expect((await action({ 'os-resetState': { state: 'deleted' } }, '2.60')).statusCode).toBe(400);
    expect((await action({ confirmResize: null }, '2.60', demo)).json()).toEqual({
      conflictingRequest: {
        code: 409,
        message: `Cannot 'confirmResize' instance ${server} while it is in vm_state active`,
      },
    });
    expect((await action({ evacuate: {} }, '2.60', demo)).statusCode).toBe(403);
    expect((await action({ 'os-stop': null, 'os-start': null }, '2.60', demo)).statusCode).toBe(400);
  });

  it('refuses a server group with another policy (400) and service updates from a member (403)', async () => {
    const group = await post('/os-server-groups', { server_group: { name: 'g', policies: ['soft-affinity'] } });
    expect(group.statusCode).toBe(400);
    expect((await api.deps.api.serverGroupOwners()).size).toBe(0);
    const put = await api.app.inject({
      method: 'PUT',
      url: '/compute/v2.1/os-services/disable',
      payload: { host: 'node-1', binary: 'nova-compute' },
      headers: { 'x-auth-token': demo },
    });
    expect(put.statusCode).toBe(403);
  });
});
