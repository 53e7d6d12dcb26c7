/**
 * flavor-manage (admin): POST /flavors, DELETE /flavors/{id}, extra specs and flavor access as Nova answers
 * them, and a deleted flavor still shown on the servers made with it (Nova embeds the flavor).
 */

import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { imageId } from '../../../src/api/ids';
import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';

describe('OpenStack API: flavor-manage', () => {
  let api: TestApi;
  let admin: string;
  let demo: string;
  const builds: string[] = [];

  beforeAll(async () => {
    const fake = {
      workflow: {
        start: async (_type: string, options: { args: [Record<string, unknown>] }) => {
          builds.push(options.args[0].flavor as string);
          const instanceId = options.args[0].instanceId as string;
          await api.deps.instances.create({
            instanceId,
            name: 'x',
            vmState: 'active',
            taskState: null,
            powerState: 'running',
            host: 'node-1',
            availabilityZone: 'nova',
            flavor: options.args[0].flavor as string,
            image: 'cirros',
            vcpus: 2,
            memoryMb: 1024,
            diskGb: 3,
            serverGroup: null,
          });
          return { describe: () => Promise.resolve({ status: { name: 'RUNNING' } }) };
        },
      },
    };
    api = await openTestApi({ temporal: () => Promise.resolve(fake as unknown as Client) });
    [admin, demo] = await Promise.all([api.token('admin'), api.token('demo')]);
  });
  afterAll(async () => {
    await api.close();
  });

  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, token = admin, payload?: object, version = '2.60') =>
    api.app.inject({
      method,
      url: `/compute/v2.1${url}`,
      ...(payload ? { payload } : {}),
      headers: { 'x-auth-token': token, 'OpenStack-API-Version': `compute ${version}` },
    });
  const message = (res: { json: <T>() => T }) =>
    Object.values(res.json<Record<string, { message: string }>>())[0]!.message;

  it('creates a flavor (admin only), shows and lists it, and refuses a taken id or name with 409', async () => {
    const body = {
      flavor: {
        name: 'tiny-x',
        id: '1001',
        ram: 1024,
        vcpus: '2',
        disk: 3,
        swap: 1,
        'os-flavor-access:is_public': 'True',
      },
    };
    const denied = await call('POST', '/flavors', demo, body);
    expect(denied.statusCode).toBe(403);
    expect(message(denied)).toBe("Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.");
    const res = await call('POST', '/flavors', admin, body);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      flavor: { id: '1001', name: 'tiny-x', ram: 1024, vcpus: 2, disk: 3, swap: 1, 'os-flavor-access:is_public': true },
    });
    expect((await call('GET', '/flavors/1001', demo)).json()).toMatchObject({ flavor: { id: '1001', name: 'tiny-x' } });
    const list = (await call('GET', '/flavors', demo)).json<{ flavors: { id: string }[] }>().flavors.map((f) => f.id);
    expect(list).toContain('1001');
    expect(list).toContain('m1.small');
    let dup = await call('POST', '/flavors', admin, { flavor: { ...body.flavor, name: 'other' } });
    expect([dup.statusCode, message(dup)]).toEqual([409, 'Flavor with ID 1001 already exists.']);
    dup = await call('POST', '/flavors', admin, { flavor: { ...body.flavor, id: '1002' } });
    expect([dup.statusCode, message(dup)]).toEqual([409, 'Flavor with name tiny-x already exists.']);
    dup = await call('POST', '/flavors', admin, { flavor: { ...body.flavor, id: '1003', name: 'm1.small' } });
    expect([dup.statusCode, message(dup)]).toEqual([409, 'Flavor with name m1.small already exists.']);
  });

  it.each([
    ['no ram', { name: 'a', vcpus: 1, disk: 1 }, /'ram' is a required property/],
    ['zero vcpus', { name: 'a', vcpus: 0, ram: 1, disk: 1 }, /vcpus/],
    ['a negative disk', { name: 'a', vcpus: 1, ram: 1, disk: -1 }, /disk/],
    ['a blank name', { name: ' a', vcpus: 1, ram: 1, disk: 1 }, /name/],
    ['a bad id', { name: 'a', id: 'a/b', vcpus: 1, ram: 1, disk: 1 }, /id/],
  ])('refuses %s (400, nothing created)', async (_what, flavor, why) => {
    const before = (await api.deps.instances.listFlavors()).length;
    const res = await call('POST', '/flavors', admin, { flavor });
    expect(res.statusCode).toBe(400);
    expect(message(res)).toMatch(why);
    expect(await api.deps.instances.listFlavors()).toHaveLength(before);
  });

  it('takes a number as an id (as Nova), and makes a UUID when none is given', async () => {
    const numbered = await call('POST', '/flavors', admin, {
      flavor: { name: 'n', id: 1763627090, ram: 1, vcpus: 1, disk: 0 },
    });
    expect(numbered.json()).toMatchObject({ flavor: { id: '1763627090', name: 'n' } });
    const unnamed = await call('POST', '/flavors', admin, { flavor: { name: 'u', ram: 1, vcpus: 1, disk: 0 } });
    expect(unnamed.json<{ flavor: { id: string } }>().flavor.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('sets and lists extra specs, and lists no access for a public flavor', async () => {
    await call('POST', '/flavors', admin, { flavor: { name: 'specs', id: 'specs', ram: 512, vcpus: 1, disk: 1 } });
    expect((await call('POST', '/flavors/specs/os-extra_specs', demo, { extra_specs: { a: 'b' } })).statusCode).toBe(
      403
    );
    const set = await call('POST', '/flavors/specs/os-extra_specs', admin, {
      extra_specs: { 'hw:cpu_policy': 'shared' },
    });
    expect(set.json()).toEqual({ extra_specs: { 'hw:cpu_policy': 'shared' } });
    expect((await call('GET', '/flavors/specs/os-extra_specs', demo)).json()).toEqual({
      extra_specs: { 'hw:cpu_policy': 'shared' },
    });
    expect((await call('GET', '/flavors/m1.small/os-extra_specs', demo)).statusCode).toBe(200);
    expect((await call('GET', '/flavors/specs/os-flavor-access', admin)).statusCode).toBe(404);
  });

  it('boots a server with an API flavor, deletes the flavor, and the server still shows it', async () => {
    await call('POST', '/flavors', admin, { flavor: { name: 'gone-soon', id: 'gone', ram: 1024, vcpus: 2, disk: 3 } });
    await call('POST', '/flavors/gone/os-extra_specs', admin, { extra_specs: { k: 'v' } });
    const created = await call('POST', '/servers', demo, {
      server: { name: 'vm', flavorRef: 'gone', imageRef: imageId('cirros'), networks: 'none' },
    });
    expect(created.statusCode).toBe(202);
    expect(builds.at(-1)).toBe('gone');
    const id = created.json<{ server: { id: string } }>().server.id;
    expect((await call('DELETE', '/flavors/gone', demo)).statusCode).toBe(403);
    expect((await call('DELETE', '/flavors/gone', admin)).statusCode).toBe(202);
    expect((await call('GET', '/flavors/gone', demo)).statusCode).toBe(404);
    expect((await call('DELETE', '/flavors/gone', admin)).statusCode).toBe(404);
    const flavors = (await call('GET', '/flavors/detail', demo)).json<{ flavors: { id: string }[] }>().flavors;
    expect(flavors.map((f) => f.id)).not.toContain('gone');
    const v247 = (await call('GET', `/servers/${id}`, demo, undefined, '2.47')).json<{ server: { flavor: object } }>();
    expect(v247.server.flavor).toEqual({
      vcpus: 2,
      ram: 1024,
      disk: 3,
      ephemeral: 0,
      swap: 0,
      original_name: 'gone-soon',
      extra_specs: { k: 'v' },
    });
    const v21 = (await call('GET', `/servers/${id}`, demo, undefined, '2.1')).json<{
      server: { flavor: { id: string } };
    }>();
    expect(v21.server.flavor.id).toBe('gone');
    const refused = await call('POST', '/servers', demo, {
      server: { name: 'vm2', flavorRef: 'gone', imageRef: imageId('cirros'), networks: 'none' },
    });
    expect([refused.statusCode, message(refused)]).toEqual([400, 'Flavor gone could not be found.']);
  });

  it("refuses to delete the catalogue file's flavors (409)", async () => {
    const res = await call('DELETE', '/flavors/m1.small', admin);
    expect(res.statusCode).toBe(409);
    expect((await call('GET', '/flavors/m1.small', demo)).statusCode).toBe(200);
  });
});
