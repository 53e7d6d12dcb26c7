/**
 * The API's own records (migrations 0006, 0009) on SQLite and PostgreSQL: owners written once, stable integer
 * ids, server metadata replaced, merged and deleted by key.
 */
import { describe, expect, it } from 'vitest';

import { createApiRepository } from '../../../src/store/api';
import { DEFAULT_CATALOGUE } from '../../../src/domain/catalogue';
import { createInstanceRepository, resolveAnyFlavor } from '../../../src/store/instances';
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

  it('replaces, merges and deletes server metadata per instance, and writes nothing when the check throws', async () => {
    const api = createApiRepository(fx.store);
    expect(await api.instanceMetadata('i-1')).toEqual({});
    expect(await api.writeInstanceMetadata('i-1', { a: '1', b: '2' }, { replace: true })).toEqual({ a: '1', b: '2' });
    await api.writeInstanceMetadata('i-2', { z: 'x' }, { replace: true });
    expect(await api.writeInstanceMetadata('i-1', { b: '3', c: '4' }, { replace: false })).toEqual({
      a: '1',
      b: '3',
      c: '4',
    });
    expect(await api.writeInstanceMetadata('i-1', { c: '5' }, { replace: true })).toEqual({ c: '5' });
    const tooMany = () => {
      throw new Error('over quota');
    };
    await expect(api.writeInstanceMetadata('i-1', { d: '6' }, { replace: false, check: tooMany })).rejects.toThrow(
      'over quota'
    );
    expect(await api.instanceMetadata('i-1')).toEqual({ c: '5' });
    expect(await api.deleteInstanceMetadataKey('i-1', 'c')).toBe(true);
    expect(await api.deleteInstanceMetadataKey('i-1', 'c')).toBe(false);
    expect(await api.instanceMetadata('i-1')).toEqual({});
    expect([...(await api.allInstanceMetadata()).entries()]).toEqual([['i-2', { z: 'x' }]]);
  });

  it('keeps instance attributes (set ones replaced, others kept) and server group display names', async () => {
    const api = createApiRepository(fx.store);
    expect(await api.instanceAttributes('i-1')).toEqual({ accessIPv4: null, accessIPv6: null, diskConfig: null });
    await api.setInstanceAttributes('i-1', { accessIPv4: '1.1.1.1', diskConfig: 'AUTO' });
    await api.setInstanceAttributes('i-1', { accessIPv6: '::1' });
    await api.setInstanceAttributes('i-1', { accessIPv4: null });
    expect(await api.instanceAttributes('i-1')).toEqual({ accessIPv4: null, accessIPv6: '::1', diskConfig: 'AUTO' });
    expect([...(await api.allInstanceAttributes()).keys()]).toEqual(['i-1']);
    await api.setServerGroupOwner('k1', { projectId: 'p1', userId: 'u1' }, 'web');
    await api.setServerGroupOwner('k2', { projectId: 'p1', userId: 'u1' }, 'web');
    await api.setServerGroupOwner('cli-group', { projectId: 'p1', userId: 'u1' });
    expect([...(await api.serverGroupDisplayNames()).entries()].sort()).toEqual([
      ['k1', 'web'],
      ['k2', 'web'],
    ]);
  });

  it('keeps API flavors: unique live ids and names, deleted ones kept for their servers, extra specs merged', async () => {
    const repo = createInstanceRepository(fx.store);
    const base = { vcpus: 1, memoryMb: 512, diskGb: 1, ephemeralGb: 0, swapMb: 1, isPublic: true, description: null };
    expect(await repo.createFlavor({ ...base, id: 'f1', name: 'one' })).toBe('created');
    expect(await repo.createFlavor({ ...base, id: 'f1', name: 'other' })).toBe('id-exists');
    expect(await repo.createFlavor({ ...base, id: 'f2', name: 'one' })).toBe('name-exists');
    expect(await repo.setFlavorExtraSpecs('f1', { 'trait:CUSTOM_A': 'required' })).toBe(true);
    expect(await repo.setFlavorExtraSpecs('nope', { a: 'b' })).toBe(false);
    expect(await resolveAnyFlavor(DEFAULT_CATALOGUE, repo, 'f1')).toEqual({
      name: 'f1',
      vcpus: 1,
      memoryMb: 512,
      diskGb: 1,
      extraSpecs: { 'trait:CUSTOM_A': 'required' },
    });
    expect(await repo.deleteFlavor('f1')).toBe(true);
    expect(await repo.deleteFlavor('f1')).toBe(false);
    expect(await repo.findFlavor('f1')).toBeUndefined();
    expect((await repo.findFlavor('f1', { includeDeleted: true }))?.name).toBe('one');
    expect(await repo.listFlavors()).toEqual([]);
    await expect(resolveAnyFlavor(DEFAULT_CATALOGUE, repo, 'f1')).rejects.toThrow(/unknown flavor 'f1'/);
    expect((await resolveAnyFlavor(DEFAULT_CATALOGUE, repo, 'f1', { includeDeleted: true })).memoryMb).toBe(512);
    // The name and the id are free again once the flavor is deleted.
    expect(await repo.createFlavor({ ...base, id: 'f1', name: 'one', vcpus: 2 })).toBe('created');
    expect((await repo.findFlavor('f1'))?.vcpus).toBe(2);
  });
});
