import { describe, expect, it } from 'vitest';

import { transaction } from '../../../src/store/db';
import { createInstanceRepository } from '../../../src/store/instances';
import { createNotificationOutbox } from '../../../src/store/notification-outbox';
import { createPlacementRepository } from '../../../src/store/placement';
import { instanceWrites } from '../../../src/store/write-once';
import { BACKENDS, useFreshStore } from './backends';
import { hostSpec, newInstance } from './fixtures';

describe.each(BACKENDS)('notification outbox on $name', (backend) => {
  const fx = useFreshStore(backend);
  const outbox = () => createNotificationOutbox(fx.store);
  const types = async (instanceId?: string) =>
    (await outbox().list(instanceId ? { instanceId } : {})).map((n) => n.eventType);

  it("writes an action's start and end once each, however often the write is repeated", async () => {
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-1'));
    const { actionId } = await repo.startAction('i-1', 'stop', 'req-1');
    await repo.startAction('i-1', 'stop', 'req-1');
    await repo.finishAction(actionId, 'Success');
    await repo.finishAction(actionId, 'Error');
    expect(await types('i-1')).toEqual(['instance.power_off.start', 'instance.power_off.end']);
  });

  it("writes a step's start and end once, and compute.exception for a failed compute step", async () => {
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-2', { host: 'h1' }));
    const { actionId } = await repo.startAction('i-2', 'resize', 'req-2');
    await repo.startEvent(actionId, 'compute_resize_instance', 1, 'h1');
    await repo.startEvent(actionId, 'compute_resize_instance', 1, 'h1');
    await repo.finishEvent(
      actionId,
      'compute_resize_instance',
      1,
      'Error',
      'ComputeHostUnavailable: h1 did not answer'
    );
    await repo.finishEvent(actionId, 'compute_resize_instance', 1, 'Success');
    const seen = await outbox().list({ instanceId: 'i-2' });
    expect(seen.map((n) => [n.eventType, n.priority, n.publisherId])).toEqual([
      ['instance.resize.start', 'INFO', 'nova-compute:h1'],
      ['instance.resize.error', 'ERROR', 'nova-compute:h1'],
      ['compute.exception', 'ERROR', 'nova-compute:h1'],
    ]);
    expect(seen[2]!.payload['nova_object.data']).toMatchObject({
      exception: 'ComputeHostUnavailable',
      exception_message: 'ComputeHostUnavailable: h1 did not answer',
      function_name: 'compute_resize_instance',
    });
  });

  it('writes nothing for a change that did not commit', async () => {
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-3'));
    await expect(
      transaction(fx.store, async (trx) => {
        const scoped = createInstanceRepository({ ...fx.store, db: trx });
        await scoped.startAction('i-3', 'stop', 'req-3');
        throw new Error('the write failed after the action started');
      })
    ).rejects.toThrow('the write failed');
    expect(await types('i-3')).toEqual([]);
    expect(await repo.listActions('i-3')).toEqual([]);
  });

  it('a write applied once (a retried activity) writes its notifications once', async () => {
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-4'));
    const writes = instanceWrites(fx.store);
    const start = () => writes('wf/run/1/beginOperation', (r) => r.startAction('i-4', 'start', 'req-4'));
    const first = await start();
    expect(await start()).toEqual(first);
    expect(await types('i-4')).toEqual(['instance.power_on.start']);
  });

  it('numbers notifications in commit order, delivers, counts the backlog and prunes', async () => {
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-5', { serverGroup: null }));
    await repo.ensureServerGroup('g5', 'anti-affinity');
    await repo.create(newInstance('i-6', { serverGroup: 'g5' }));
    await repo.deleteServerGroup('g5');
    const placement = createPlacementRepository(fx.store);
    await placement.upsertProvider(hostSpec('h5'));
    await placement.setDisabled('h5', true, 'maintenance');
    const all = await outbox().list();
    expect(all.map((n) => n.eventType)).toEqual([
      'server_group.create',
      'server_group.add_member',
      'server_group.delete',
      'service.update',
    ]);
    expect(all.map((n) => n.seq)).toEqual([...all.map((n) => n.seq)].sort((a, b) => a - b));
    expect(all.at(-1)!.payload['nova_object.data']).toMatchObject({
      host: 'h5',
      disabled: true,
      disabled_reason: 'maintenance',
    });
    expect(await outbox().backlog()).toMatchObject({ count: 4 });
    await outbox().markDelivered(all.slice(0, 3).map((n) => n.seq));
    expect(await outbox().undelivered(10)).toHaveLength(1);
    const future = new Date(Date.now() + 60_000).toISOString();
    expect(await outbox().prune(future)).toBe(3);
    expect(await outbox().prune(future, { undeliveredToo: true })).toBe(1);
    expect(await outbox().list()).toEqual([]);
  });
});
