/**
 * Server metadata and rename as Nova's API has them: metadata on create (checked, stored, shown), the
 * metadata routes (merge, replace, one key, delete, Nova's limits and errors), PUT /servers/{id} with a
 * name, and rebuild with a name and metadata (the 202 body shows them and the requested image at once).
 * Temporal is a fake here that does what the accept handshake waits for (the record, the task owner).
 */
import { randomUUID } from 'node:crypto';

import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { imageId, keystoneId } from '../../../src/api/ids';
import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';

interface Started {
  type: string;
  workflowId: string;
  input: Record<string, unknown>;
}

describe('OpenStack API: server metadata and rename', () => {
  let api: TestApi;
  let demo: string;
  let other: string;
  let watcher: string;
  const server = randomUUID();
  const busy = randomUUID();
  const started: Started[] = [];

  const record = (instanceId: string, overrides: Record<string, unknown> = {}) => ({
    instanceId,
    name: 'vm',
    vmState: 'active' as const,
    taskState: null,
    powerState: 'running' as const,
    host: 'node-1',
    availabilityZone: 'nova',
    flavor: 'm1.small',
    image: 'cirros',
    vcpus: 1,
    memoryMb: 2048,
    diskGb: 20,
    serverGroup: null,
    ...overrides,
  });

  beforeAll(async () => {
    // A Temporal that "runs" a workflow as far as the API waits: a build creates the record, an action holds it.
    const fake = {
      workflow: {
        start: async (type: string, options: { workflowId: string; args: [Record<string, unknown>] }) => {
          const input = options.args[0];
          started.push({ type, workflowId: options.workflowId, input });
          const instanceId = input.instanceId as string;
          if (type === 'buildInstance') await api.deps.instances.create(record(instanceId, { name: input.name }));
          else await api.deps.instances.update(instanceId, { taskState: 'rebuilding', taskOwner: options.workflowId });
          return { describe: () => Promise.resolve({ status: { name: 'RUNNING' } }) };
        },
      },
    };
    api = await openTestApi({ temporal: () => Promise.resolve(fake as unknown as Client) });
    [demo, other, watcher] = await Promise.all([api.token('demo'), api.token('other'), api.token('watcher')]);
    const owner = { projectId: keystoneId('project', 'demo'), userId: keystoneId('user', 'demo') };
    for (const [id, extra] of [
      [server, {}],
      [busy, { taskState: 'rebuilding', taskOwner: 'someone' }],
    ] as const) {
      await api.deps.instances.create(record(id, extra));
      await api.deps.api.setInstanceOwner(id, owner);
    }
  });
  afterAll(async () => {
    await api.close();
  });

  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object, token = demo) =>
    api.app.inject({
      method,
      url: `/compute/v2.1${url}`,
      ...(payload ? { payload } : {}),
      headers: { 'x-auth-token': token, 'OpenStack-API-Version': 'compute 2.60' },
    });
  const show = async (id: string) => (await call('GET', `/servers/${id}`)).json<{ server: Record<string, unknown> }>();

  it('merges with POST, replaces with PUT, shows and deletes one key, and shows metadata on the server', async () => {
    let res = await call('PUT', `/servers/${server}/metadata`, { metadata: { a: '1', b: '2' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ metadata: { a: '1', b: '2' } });
    res = await call('POST', `/servers/${server}/metadata`, { metadata: { b: '3', c: '4' } });
    expect(res.json()).toEqual({ metadata: { a: '1', b: '3', c: '4' } });
    res = await call('PUT', `/servers/${server}/metadata/d`, { meta: { d: '5' } });
    expect(res.json()).toEqual({ meta: { d: '5' } });
    expect((await call('GET', `/servers/${server}/metadata/b`)).json()).toEqual({ meta: { b: '3' } });
    expect((await call('DELETE', `/servers/${server}/metadata/a`)).statusCode).toBe(204);
    expect((await call('GET', `/servers/${server}/metadata`)).json()).toEqual({ metadata: { b: '3', c: '4', d: '5' } });
    expect((await show(server)).server.metadata).toEqual({ b: '3', c: '4', d: '5' });
    const detail = (await call('GET', '/servers/detail')).json<{ servers: { id: string; metadata: object }[] }>();
    expect(detail.servers.find((s) => s.id === server)?.metadata).toEqual({ b: '3', c: '4', d: '5' });
    res = await call('PUT', `/servers/${server}/metadata`, { metadata: {} });
    expect(res.json()).toEqual({ metadata: {} });
  });

  it.each([
    ['a key with a character outside the pattern', { metadata: { 'a/b': 'x' } }, 400, /'a\/b' was unexpected/],
    ['an empty key', { metadata: { '': 'x' } }, 400, /'' was unexpected/],
    ['a key of 256 characters', { metadata: { ['k'.repeat(256)]: 'x' } }, 400, /was unexpected/],
    ['a value of 256 characters', { metadata: { k: 'v'.repeat(256) } }, 400, /is too long/],
    ['a value that is not a string', { metadata: { k: 1 } }, 400, /is not of type 'string'/],
    ['metadata that is not an object', { metadata: ['x'] }, 400, /is not of type 'object'/],
    [
      '129 items',
      { metadata: Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v'])) },
      403,
      /^Maximum number of metadata items exceeds 128$/,
    ],
  ])('refuses %s (and writes nothing)', async (_what, body, code, message) => {
    await call('PUT', `/servers/${server}/metadata`, { metadata: { keep: 'me' } });
    const res = await call('POST', `/servers/${server}/metadata`, body);
    expect(res.statusCode).toBe(code);
    expect(Object.values(res.json<Record<string, { message: string }>>())[0]!.message).toMatch(message);
    expect((await call('GET', `/servers/${server}/metadata`)).json()).toEqual({ metadata: { keep: 'me' } });
  });

  it('counts the quota on the merged result: 128 items are fine, one more is 403', async () => {
    const items = Object.fromEntries(Array.from({ length: 127 }, (_, i) => [`k${i}`, 'v']));
    expect((await call('PUT', `/servers/${server}/metadata`, { metadata: items })).statusCode).toBe(200);
    expect((await call('POST', `/servers/${server}/metadata`, { metadata: { x: '1' } })).statusCode).toBe(200);
    expect((await call('PUT', `/servers/${server}/metadata/y`, { meta: { y: '1' } })).statusCode).toBe(403);
    expect(
      Object.keys((await call('GET', `/servers/${server}/metadata`)).json<{ metadata: object }>().metadata)
    ).toHaveLength(128);
  });

  it("answers Nova's errors: key mismatch 400, missing key 404, busy server 409, reader 403, other project 404", async () => {
    await call('PUT', `/servers/${server}/metadata`, { metadata: { a: '1' } });
    let res = await call('PUT', `/servers/${server}/metadata/a`, { meta: { b: '1' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ badRequest: { code: 400, message: 'Request body and URI mismatch' } });
    expect((await call('PUT', `/servers/${server}/metadata/a`, { meta: { a: '1', b: '2' } })).statusCode).toBe(400);
    res = await call('GET', `/servers/${server}/metadata/nope`);
    expect(res.json()).toEqual({ itemNotFound: { code: 404, message: 'Metadata item was not found' } });
    expect((await call('DELETE', `/servers/${server}/metadata/nope`)).statusCode).toBe(404);
    res = await call('POST', `/servers/${busy}/metadata`, { metadata: { a: '1' } });
    expect(res.statusCode).toBe(409);
    expect(res.json<{ conflictingRequest: { message: string } }>().conflictingRequest.message).toBe(
      `Cannot 'update metadata' instance ${busy} while it is in task_state rebuilding`
    );
    expect((await call('POST', `/servers/${server}/metadata`, { metadata: { a: '2' } }, watcher)).statusCode).toBe(403);
    expect((await call('GET', `/servers/${server}/metadata`, undefined, other)).statusCode).toBe(404);
    expect((await call('GET', `/servers/${server}/metadata`)).json()).toEqual({ metadata: { a: '1' } });
  });

  it('renames a server with PUT /servers/{id}, and refuses a blank name or an unsupported attribute', async () => {
    const res = await call('PUT', `/servers/${server}`, { server: { name: 'renamed' } });
    expect(res.statusCode).toBe(200);
    expect(res.json<{ server: { name: string; id: string } }>().server).toMatchObject({ id: server, name: 'renamed' });
    expect((await show(server)).server.name).toBe('renamed');
    expect((await call('PUT', `/servers/${server}`, { server: { name: '' } })).statusCode).toBe(400);
    expect((await call('PUT', `/servers/${server}`, { server: { name: '   ' } })).statusCode).toBe(400);
    expect((await call('PUT', `/servers/${server}`, { server: { description: 'd' } })).statusCode).toBe(400);
    expect((await call('PUT', `/servers/${server}`, { server: { name: 'x' } }, other)).statusCode).toBe(404);
    expect((await show(server)).server.name).toBe('renamed');
  });

  it('stores the metadata of a create, and refuses bad metadata before anything starts', async () => {
    const before = started.length;
    const bad = await call('POST', '/servers', {
      server: {
        name: 'x',
        flavorRef: 'm1.small',
        imageRef: imageId('cirros'),
        networks: 'none',
        metadata: { 'a/b': '1' },
      },
    });
    expect(bad.statusCode).toBe(400);
    expect(started.length).toBe(before);
    const res = await call('POST', '/servers', {
      server: {
        name: 'md',
        flavorRef: 'm1.small',
        imageRef: imageId('cirros'),
        networks: 'none',
        metadata: { role: 'web' },
      },
    });
    expect(res.statusCode).toBe(202);
    const id = res.json<{ server: { id: string } }>().server.id;
    expect((await show(id)).server.metadata).toEqual({ role: 'web' });
  });

  it('rebuilds with a name and metadata: the 202 body shows them and the new image, and they stay', async () => {
    const id = randomUUID();
    await api.deps.instances.create(record(id));
    await api.deps.api.setInstanceOwner(id, {
      projectId: keystoneId('project', 'demo'),
      userId: keystoneId('user', 'demo'),
    });
    await api.deps.api.writeInstanceMetadata(id, { old: 'x' }, { replace: true });
    const refused = await call('POST', `/servers/${id}/action`, {
      rebuild: { imageRef: imageId('cirros'), metadata: { 'no/slash': '1' } },
    });
    expect(refused.statusCode).toBe(400);
    const res = await call('POST', `/servers/${id}/action`, {
      rebuild: { imageRef: imageId('cirros'), name: 'rebuilt', metadata: { new: 'y' } },
    });
    expect(res.statusCode).toBe(202);
    const body = res.json<{ server: { name: string; metadata: object; image: { id: string } } }>().server;
    expect(body).toMatchObject({ name: 'rebuilt', metadata: { new: 'y' }, image: { id: imageId('cirros') } });
    expect(started.filter((s) => s.type === 'rebuild' && s.input.instanceId === id)).toHaveLength(1);
    expect((await show(id)).server).toMatchObject({ name: 'rebuilt', metadata: { new: 'y' } });
  });

  it('keeps the access IPs (IPv6 in RFC 5952 form) and disk config of a create, and updates them with PUT', async () => {
    const base = { name: 'ips', flavorRef: 'm1.small', imageRef: imageId('cirros'), networks: 'none' };
    const before = started.length;
    const bad = await call('POST', '/servers', { server: { ...base, accessIPv4: '1.1.1' } });
    expect(bad.statusCode).toBe(400);
    expect(started.length).toBe(before);
    const res = await call('POST', '/servers', {
      server: {
        ...base,
        accessIPv4: '1.1.1.1',
        accessIPv6: '0000:0000:0000:0000:0000:babe:220.12.22.2',
        'OS-DCF:diskConfig': 'AUTO',
      },
    });
    expect(res.statusCode).toBe(202);
    const created = res.json<{ server: { id: string; 'OS-DCF:diskConfig': string } }>().server;
    expect(created['OS-DCF:diskConfig']).toBe('AUTO');
    expect((await show(created.id)).server).toMatchObject({
      accessIPv4: '1.1.1.1',
      accessIPv6: '::babe:dc0c:1602',
      'OS-DCF:diskConfig': 'AUTO',
    });
    const updated = await call('PUT', `/servers/${created.id}`, { server: { accessIPv4: '2.2.2.2' } });
    expect(updated.json<{ server: object }>().server).toMatchObject({
      accessIPv4: '2.2.2.2',
      accessIPv6: '::babe:dc0c:1602',
    });
    expect((await call('PUT', `/servers/${created.id}`, { server: { accessIPv6: 'nope' } })).statusCode).toBe(400);
    expect((await show(created.id)).server).toMatchObject({ accessIPv4: '2.2.2.2' });
  });
});
