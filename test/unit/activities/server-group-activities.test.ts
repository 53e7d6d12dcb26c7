/**
 * The conductor's server-group activities on a real (SQLite) store: create (idempotent with the same
 * policy), list, show, delete (refused while members remain), and the late policy check a build runs
 * on its host before building there.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createConductorActivities } from '../../../src/activities/conductor';
import { DEFAULT_CATALOGUE } from '../../../src/domain/catalogue';
import type { Store } from '../../../src/store/db';
import { migrateToLatest, openStore } from '../../../src/store/db';
import { createInstanceRepository } from '../../../src/store/instances';

describe('server-group activities', () => {
  let dir: string;
  let store: Store;
  let conductor: ReturnType<typeof createConductorActivities>;
  let instances: ReturnType<typeof createInstanceRepository>;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'server-groups-'));
    store = await openStore({ sqlitePath: path.join(dir, 'store.sqlite') });
    await migrateToLatest(store);
    instances = createInstanceRepository(store);
    conductor = createConductorActivities({ instances, catalogue: DEFAULT_CATALOGUE });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A member of `group` on `host` (null: not placed yet). */
  async function member(group: string, host: string | null): Promise<string> {
    const instanceId = randomUUID();
    await conductor.createInstance({
      instanceId,
      name: 'vm',
      flavor: 'm1.tiny',
      image: 'cirros',
      schedulerHints: { group },
      requestId: `build-${instanceId}`,
    });
    if (host) await instances.update(instanceId, { host });
    return instanceId;
  }

  it('creates, lists, shows and deletes a group; the same create again returns it, another policy is refused', async () => {
    const created = await conductor.createServerGroup({ name: 'g', policy: 'anti-affinity' });
    expect(created).toEqual({ name: 'g', policy: 'anti-affinity', members: [], hosts: [] });
    expect(await conductor.createServerGroup({ name: 'g', policy: 'anti-affinity' })).toEqual(created);
    await expect(conductor.createServerGroup({ name: 'g', policy: 'affinity' })).rejects.toMatchObject({
      name: 'InvalidRequest',
      message: "Invalid request: serverGroup.policy: server group 'g' exists with policy anti-affinity, not affinity",
    });
    await conductor.createServerGroup({ name: 'a', policy: 'affinity' });
    expect((await conductor.listServerGroups()).map((g) => g.name)).toEqual(['a', 'g']);
    expect(await conductor.getServerGroup({ name: 'g' })).toEqual(created);
    expect(await conductor.deleteServerGroup({ name: 'g' })).toEqual(created);
    await expect(conductor.getServerGroup({ name: 'g' })).rejects.toMatchObject({
      name: 'ServerGroupNotFound',
      message: 'Server group g could not be found.',
    });
    await expect(conductor.deleteServerGroup({ name: 'g' })).rejects.toMatchObject({ name: 'ServerGroupNotFound' });
  });

  it('refuses to delete a group with members, naming them; once they are deleted it goes', async () => {
    await conductor.createServerGroup({ name: 'g', policy: 'affinity' });
    const id = await member('g', 'h1');
    await expect(conductor.deleteServerGroup({ name: 'g' })).rejects.toMatchObject({
      name: 'ServerGroupInUse',
      message: `Server group g still has 1 member(s): delete them first (${id}).`,
    });
    await instances.update(id, { vmState: 'deleted', host: null });
    expect((await conductor.deleteServerGroup({ name: 'g' })).name).toBe('g');
  });

  it('rejects a bad name or policy as InvalidRequest', async () => {
    await expect(
      conductor.createServerGroup({ name: 'g', policy: 'sideways' as unknown as 'affinity' })
    ).rejects.toMatchObject({ name: 'InvalidRequest' });
    await expect(conductor.getServerGroup({ name: '' })).rejects.toMatchObject({ name: 'InvalidRequest' });
  });

  describe('the late check (checkServerGroupPolicy)', () => {
    it('anti-affinity: refuses a host another member is on, allows the others and the member itself', async () => {
      await conductor.createServerGroup({ name: 'spread', policy: 'anti-affinity' });
      const other = await member('spread', 'h1');
      const self = await member('spread', 'h1');
      await expect(conductor.checkServerGroupPolicy({ instanceId: self, host: 'h1' })).rejects.toMatchObject({
        name: 'GroupAffinityViolation',
        message: `Server group spread (anti-affinity) would be violated on h1: member ${other} is there`,
      });
      expect(await conductor.checkServerGroupPolicy({ instanceId: self, host: 'h2' })).toEqual({ group: 'spread' });
    });

    it('affinity: refuses a host away from the members; the first member goes anywhere', async () => {
      await conductor.createServerGroup({ name: 'pack', policy: 'affinity' });
      const first = await member('pack', null);
      expect(await conductor.checkServerGroupPolicy({ instanceId: first, host: 'h9' })).toEqual({ group: 'pack' });
      await instances.update(first, { host: 'h1' });
      const second = await member('pack', null);
      await expect(conductor.checkServerGroupPolicy({ instanceId: second, host: 'h2' })).rejects.toMatchObject({
        name: 'GroupAffinityViolation',
        message: 'Server group pack (affinity) would be violated on h2: the members are on h1',
      });
      expect(await conductor.checkServerGroupPolicy({ instanceId: second, host: 'h1' })).toEqual({ group: 'pack' });
    });

    it('passes an instance in no group', async () => {
      const id = randomUUID();
      await conductor.createInstance({
        instanceId: id,
        name: 'vm',
        flavor: 'm1.tiny',
        image: 'cirros',
        requestId: 'r',
      });
      expect(await conductor.checkServerGroupPolicy({ instanceId: id, host: 'h1' })).toEqual({ group: null });
    });
  });
});
