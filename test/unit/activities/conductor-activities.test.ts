import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createConductorActivities } from '../../../src/activities/conductor';
import { DEFAULT_CATALOGUE } from '../../../src/domain/catalogue';
import type { Store } from '../../../src/store/db';
import { migrateToLatest, openStore } from '../../../src/store/db';
import { HostSpecSchema } from '../../../src/domain/fleet';
import { createInstanceRepository } from '../../../src/store/instances';
import { createPlacementRepository } from '../../../src/store/placement';

describe('conductor activities', () => {
  let dir: string;
  let store: Store;
  let conductor: ReturnType<typeof createConductorActivities>;
  let instances: ReturnType<typeof createInstanceRepository>;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'conductor-acts-'));
    store = await openStore({ sqlitePath: path.join(dir, 'store.sqlite') });
    await migrateToLatest(store);
    instances = createInstanceRepository(store);
    conductor = createConductorActivities({ instances, catalogue: DEFAULT_CATALOGUE });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An active instance with no task, as a finished build leaves it. */
  async function activeInstance(): Promise<string> {
    const instanceId = randomUUID();
    await conductor.createInstance({
      instanceId,
      name: 'vm',
      flavor: 'm1.tiny',
      image: 'cirros',
      requestId: `build-${instanceId}`,
    });
    await instances.update(instanceId, { vmState: 'active', taskState: null, powerState: 'running', host: 'h1' });
    return instanceId;
  }

  it('builds with a flavor made through the API, and resizes away from it once it is deleted (its numbers kept)', async () => {
    const base = { ephemeralGb: 0, swapMb: 0, isPublic: true, description: null };
    await instances.createFlavor({ ...base, id: 'api-1', name: 'custom', vcpus: 3, memoryMb: 1536, diskGb: 2 });
    await instances.setFlavorExtraSpecs('api-1', { 'hw:x': 'y' });
    const instanceId = randomUUID();
    const created = await conductor.createInstance({
      instanceId,
      name: 'vm',
      flavor: 'api-1',
      image: 'cirros',
      requestId: `build-${instanceId}`,
    });
    expect(created.flavor).toEqual({ name: 'api-1', vcpus: 3, memoryMb: 1536, diskGb: 2, extraSpecs: { 'hw:x': 'y' } });
    expect(await instances.get(instanceId)).toMatchObject({ flavor: 'api-1', vcpus: 3, memoryMb: 1536, diskGb: 2 });
    await instances.update(instanceId, { vmState: 'active', taskState: null, powerState: 'running', host: 'h1' });
    await instances.deleteFlavor('api-1');
    const plan = await conductor.planMigration({ instanceId, flavor: 'm1.small' });
    expect(plan.oldFlavor).toEqual({ name: 'api-1', vcpus: 3, memoryMb: 1536, diskGb: 2, extraSpecs: { 'hw:x': 'y' } });
    expect(plan.newFlavor.name).toBe('m1.small');
    await expect(
      conductor.createInstance({
        instanceId: randomUUID(),
        name: 'vm2',
        flavor: 'api-1',
        image: 'cirros',
        requestId: 'b2',
      })
    ).rejects.toThrow(/unknown flavor 'api-1'/);
  });

  const stop = (instanceId: string, requestId: string) =>
    conductor.beginOperation({
      instanceId,
      action: 'stop',
      requestId,
      taskState: 'powering-off',
      expectVmState: ['active'],
    });

  const evacuate = (instanceId: string, requestId: string, expectOwner: string | null) =>
    conductor.beginOperation({
      instanceId,
      action: 'evacuate',
      requestId,
      taskState: 'rebuilding',
      expectVmState: ['active', 'stopped', 'error'],
      allowTaskSet: true,
      expectOwner,
    });

  it('an evacuation takes over only from the owner it saw: of two racing evacuations one wins', async () => {
    const instanceId = await activeInstance();
    await stop(instanceId, 'stop-stuck'); // a stop stuck on the dead host
    const [first, second] = await Promise.allSettled([
      evacuate(instanceId, 'evacuate-1', 'stop-stuck'),
      evacuate(instanceId, 'evacuate-2', 'stop-stuck'),
    ]);
    const outcomes = [first.status, second.status].sort();
    expect(outcomes).toEqual(['fulfilled', 'rejected']);
    const lost = (first.status === 'rejected' ? first : second) as PromiseRejectedResult;
    expect(lost.reason).toMatchObject({ name: 'InstanceInvalidState' });
    const winner = first.status === 'fulfilled' ? 'evacuate-1' : 'evacuate-2';
    expect(await instances.get(instanceId)).toMatchObject({ taskState: 'rebuilding', taskOwner: winner });
  });

  it('an evacuation refuses an instance another request took since it looked', async () => {
    const instanceId = await activeInstance();
    await stop(instanceId, 'stop-1');
    // The stop it saw finished, and another one took the instance meanwhile.
    await instances.update(instanceId, { taskState: null });
    await stop(instanceId, 'stop-2');
    await expect(evacuate(instanceId, 'evacuate-1', 'stop-1')).rejects.toMatchObject({
      name: 'InstanceInvalidState',
    });
    expect(await instances.get(instanceId)).toMatchObject({ taskState: 'powering-off', taskOwner: 'stop-2' });
    expect(await evacuate(instanceId, 'evacuate-1', 'stop-2')).toMatchObject({
      instance: { taskState: 'rebuilding', taskOwner: 'evacuate-1' },
    });
  });

  it('an evacuation never takes over another rebuild or evacuation, whoever holds it', async () => {
    const instanceId = await activeInstance();
    await evacuate(instanceId, 'evacuate-1', null);
    await expect(evacuate(instanceId, 'evacuate-2', 'evacuate-1')).rejects.toMatchObject({
      name: 'InstanceInvalidState',
      message: expect.stringContaining('rebuilding') as unknown as string,
    });
    expect(await instances.get(instanceId)).toMatchObject({ taskOwner: 'evacuate-1' });
  });

  it('createInstance refuses an unknown flavor with InvalidRequest naming it, writing nothing', async () => {
    const instanceId = randomUUID();
    const create = conductor.createInstance({
      instanceId,
      name: 'vm',
      flavor: 'm9.huge',
      image: 'cirros',
      requestId: 'r',
    });
    await expect(create).rejects.toMatchObject({
      name: 'InvalidRequest',
      message: expect.stringMatching(
        /^Invalid request: flavor: unknown flavor 'm9.huge' \(valid: m1.tiny, m1.small, /
      ) as string,
    });
    expect(await instances.find(instanceId)).toBeUndefined();
  });

  it('a build holds its instance: another operation during the build fails naming the task state', async () => {
    const instanceId = randomUUID();
    await conductor.createInstance({
      instanceId,
      name: 'vm',
      flavor: 'm1.tiny',
      image: 'cirros',
      requestId: 'build-x',
    });
    await expect(stop(instanceId, 'stop-1')).rejects.toMatchObject({
      name: 'InstanceInvalidState',
      message: `Cannot 'stop' instance ${instanceId} while it is in taskState scheduling`,
    });
  });

  it('of two concurrent operations on one instance exactly one proceeds', async () => {
    const instanceId = await activeInstance();
    const outcomes = await Promise.allSettled([stop(instanceId, 'stop-a'), stop(instanceId, 'stop-b')]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const rejected = outcomes.find((o) => o.status === 'rejected');
    expect(rejected?.reason).toMatchObject({ name: 'InstanceInvalidState' });
    expect(await instances.get(instanceId)).toMatchObject({ taskState: 'powering-off' });
  });

  it('a retried begin of the same request finds its own lock and the same action', async () => {
    const instanceId = await activeInstance();
    const first = await stop(instanceId, 'stop-1');
    const retry = await stop(instanceId, 'stop-1');
    expect(retry.actionId).toBe(first.actionId);
    expect(retry.instance).toMatchObject({ taskState: 'powering-off', taskOwner: 'stop-1' });
    await expect(stop(instanceId, 'stop-2')).rejects.toMatchObject({ name: 'InstanceInvalidState' });
  });

  it('refuses an operation from a vm state it does not start from, naming the state', async () => {
    const instanceId = await activeInstance();
    await instances.update(instanceId, { vmState: 'stopped', powerState: 'shutdown' });
    await expect(stop(instanceId, 'stop-1')).rejects.toMatchObject({
      name: 'InstanceInvalidState',
      message: `Cannot 'stop' instance ${instanceId} while it is in vmState stopped`,
    });
    expect(await instances.get(instanceId)).toMatchObject({ taskState: null, taskOwner: null });
  });

  it('clearing the task state releases the lock for the next operation', async () => {
    const instanceId = await activeInstance();
    await stop(instanceId, 'stop-1');
    await conductor.updateInstance({
      instanceId,
      patch: { taskState: null },
      expectTaskState: 'powering-off',
      method: 'stop',
    });
    expect(await instances.get(instanceId)).toMatchObject({ taskState: null, taskOwner: null });
    await expect(stop(instanceId, 'stop-2')).resolves.toMatchObject({ instance: { taskOwner: 'stop-2' } });
  });

  it('updateInstance with finishAction ends the action in the same write, and only once the update applies', async () => {
    const instanceId = await activeInstance();
    const { actionId } = await stop(instanceId, 'stop-1');
    const finishAction = { actionId, result: 'Success' as const };
    // A compare-and-swap that does not apply leaves the action open.
    await expect(
      conductor.updateInstance({
        instanceId,
        patch: { taskState: null },
        expectTaskState: 'spawning',
        method: 'stop',
        finishAction,
      })
    ).rejects.toThrow();
    expect((await instances.listActions(instanceId)).find((a) => a.actionId === actionId)?.result).toBeNull();
    await conductor.updateInstance({
      instanceId,
      patch: { vmState: 'stopped', powerState: 'shutdown', taskState: null },
      expectTaskState: 'powering-off',
      method: 'stop',
      finishAction,
    });
    expect(await instances.get(instanceId)).toMatchObject({ vmState: 'stopped', taskState: null });
    expect((await instances.listActions(instanceId)).find((a) => a.actionId === actionId)?.result).toBe('Success');
  });

  describe('replaceAllocationWithMigration', () => {
    it("moves the instance's allocation to its migration, idempotently; refused without placement", async () => {
      const placement = createPlacementRepository(store);
      await placement.upsertProviders([HostSpecSchema.parse({ name: 'h1', vcpus: 8, memoryMb: 8192, diskGb: 100 })]);
      const withPlacement = createConductorActivities({
        instances,
        catalogue: DEFAULT_CATALOGUE,
        placement,
      });
      const instanceId = randomUUID();
      const migrationId = randomUUID();
      await placement.claim(instanceId, 'h1', { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 });
      await withPlacement.replaceAllocationWithMigration({ instanceId, migrationId });
      // A retry after the move applied (its answer lost) finds nothing left under the instance.
      await withPlacement.replaceAllocationWithMigration({ instanceId, migrationId });
      expect(await placement.getAllocations(instanceId)).toEqual([]);
      expect((await placement.getAllocations(migrationId)).map((a) => a.host)).toEqual(['h1']);
      await expect(conductor.replaceAllocationWithMigration({ instanceId, migrationId })).rejects.toThrow(
        /without placement/
      );
    });
  });
});
