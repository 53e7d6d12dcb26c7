/**
 * os-server-groups as Nova keys them: by id, not by name. Two groups of one name are two groups (each
 * under its own conductor key), shown with the name the client gave; deleting one leaves the other.
 * Temporal is a fake that runs the serverGroup workflow's store calls.
 */
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ServerGroupPolicy } from '../../../src/domain/host';
import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';

interface Group {
  id: string;
  name: string;
  policies: string[];
}

describe('OpenStack API: server groups are not keyed by name', () => {
  let api: TestApi;
  let demo: string;
  let other: string;

  beforeAll(async () => {
    const run = async (input: { action: string; name: string; policy?: ServerGroupPolicy }) => {
      const repo = api.deps.instances;
      if (input.action === 'create') return { groups: [await repo.ensureServerGroup(input.name, input.policy!)] };
      const group = await repo.getServerGroup(input.name);
      await repo.deleteServerGroup(input.name);
      return { groups: [group] };
    };
    const fake = {
      workflow: {
        start: (_type: string, options: { args: [{ action: string; name: string; policy?: ServerGroupPolicy }] }) =>
          Promise.resolve({ result: () => run(options.args[0]) }),
      },
    };
    api = await openTestApi({ temporal: () => Promise.resolve(fake as unknown as Client) });
    [demo, other] = await Promise.all([api.token('demo'), api.token('other')]);
  });
  afterAll(async () => {
    await api.close();
  });

  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, token = demo, payload?: object) =>
    api.app.inject({
      method,
      url: `/compute/v2.1${url}`,
      ...(payload ? { payload } : {}),
      headers: { 'x-auth-token': token, 'OpenStack-API-Version': 'compute 2.60' },
    });
  const create = async (name: string, policy: string, token = demo) => {
    const res = await call('POST', '/os-server-groups', token, { server_group: { name, policies: [policy] } });
    expect(res.statusCode).toBe(200);
    return res.json<{ server_group: Group }>().server_group;
  };
  const list = async (token = demo) =>
    (await call('GET', '/os-server-groups', token)).json<{ server_groups: Group[] }>().server_groups;

  it('creates two groups of the same name and policy as two groups, and deletes one of them', async () => {
    const a = await create('web', 'anti-affinity');
    const b = await create('web', 'anti-affinity');
    expect(a.id).not.toBe(b.id);
    expect(a).toMatchObject({ name: 'web', policies: ['anti-affinity'] });
    expect(
      (await list())
        .filter((g) => g.name === 'web')
        .map((g) => g.id)
        .sort()
    ).toEqual([a.id, b.id].sort());
    expect((await call('DELETE', `/os-server-groups/${a.id}`)).statusCode).toBe(204);
    expect((await list()).filter((g) => g.name === 'web').map((g) => g.id)).toEqual([b.id]);
    const shown = await call('GET', `/os-server-groups/${b.id}`);
    expect(shown.json<{ server_group: Group }>().server_group).toMatchObject({ id: b.id, name: 'web' });
  });

  it('lets another project use the same name (its own group, invisible to the first project)', async () => {
    const mine = await create('db', 'affinity');
    const theirs = await create('db', 'anti-affinity', other);
    expect(theirs.id).not.toBe(mine.id);
    expect((await list(other)).map((g) => g.id)).toEqual([theirs.id]);
    expect((await call('GET', `/os-server-groups/${theirs.id}`)).statusCode).toBe(404);
  });
});
