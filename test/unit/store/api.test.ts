/** The API's own records (migration 0006) on SQLite and PostgreSQL: owners written once, stable integer ids. */
import { describe, expect, it } from 'vitest';

import { createApiRepository } from '../../../src/store/api';
import { BACKENDS, useFreshStore } from './backends';

describe.each(BACKENDS)('API repository on $name', (backend) => {
  const fx = useFreshStore(backend);

  it('records an instance owner once: the first owner wins', async () => {
    const api = createApiRepository(fx.store);
    await api.setInstanceOwner('i-1', { projectId: 'p1', userId: 'u1' });
    await api.setInstanceOwner('i-1', { projectId: 'p2', userId: 'u2' });
    expect(await api.instanceOwner('i-1')).toEqual({ projectId: 'p1', userId: 'u1' });
    expect(await api.instanceOwner('i-2')).toBeUndefined();
    expect([...(await api.instanceOwners()).entries()]).toEqual([['i-1', { projectId: 'p1', userId: 'u1' }]]);
  });

  it('records and forgets server group owners', async () => {
    const api = createApiRepository(fx.store);
    await api.setServerGroupOwner('g', { projectId: 'p1', userId: 'u1' });
    expect((await api.serverGroupOwners()).get('g')).toEqual({ projectId: 'p1', userId: 'u1' });
    await api.deleteServerGroupOwner('g');
    expect((await api.serverGroupOwners()).size).toBe(0);
  });

  it('assigns integer ids per kind, 1, 2, 3 …, stable and resolvable, also when asked at once', async () => {
    const api = createApiRepository(fx.store);
    const ids = await Promise.all(['a', 'b', 'c', 'a', 'b'].map((k) => api.integerId('service', k)));
    expect(new Set(ids.slice(0, 3))).toEqual(new Set([1, 2, 3]));
    expect(ids[3]).toBe(ids[0]);
    expect(ids[4]).toBe(ids[1]);
    expect(await api.integerId('migration', 'x')).toBe(1);
    expect(await api.keyOfInteger('service', ids[1]!)).toBe('b');
    expect(await api.keyOfInteger('service', 99)).toBeUndefined();
  });
});
