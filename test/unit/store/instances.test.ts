import { describe, expect, it } from 'vitest';

import {
  FailureType,
  InstanceInvalidState,
  InstanceNotFound,
  InvalidRequest,
  MigrationError,
} from '../../../src/domain/errors';
import { openStore } from '../../../src/store/db';
import { createInstanceRepository, type NewMigration } from '../../../src/store/instances';
import { BACKENDS, useFreshStore } from './backends';
import { newInstance } from './fixtures';

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 2));

describe.each(BACKENDS)('instance repository on $name', (backend) => {
  const fx = useFreshStore(backend);

  describe('instances', () => {
    it('creates idempotently on the instance id', async () => {
      const repo = createInstanceRepository(fx.store);
      const first = await repo.create(newInstance('i-1', { serverGroup: 'g', availabilityZone: 'az1' }));
      expect(first).toMatchObject({
        instanceId: 'i-1',
        name: 'vm-i-1',
        vmState: 'building',
        taskState: 'scheduling',
        powerState: 'nostate',
        host: null,
        availabilityZone: 'az1',
        flavor: 'm1.small',
        image: 'cirros',
        vcpus: 1,
        memoryMb: 2048,
        diskGb: 20,
        serverGroup: 'g',
      });
      expect(first.createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(first.updatedAt).toBe(first.createdAt);
      const again = await repo.create(newInstance('i-1', { name: 'other' }));
      expect(again).toEqual(first);
      expect(await repo.list()).toHaveLength(1);
    });

    it('lists a page of instances by id, after a given one (deleted ones included)', async () => {
      const repo = createInstanceRepository(fx.store);
      for (const id of ['i-3', 'i-1', 'i-2'])
        await repo.create(newInstance(id, { vmState: id === 'i-2' ? 'deleted' : 'active', taskState: null }));
      expect((await repo.listPage({ after: null, limit: 2 })).map((i) => i.instanceId)).toEqual(['i-1', 'i-2']);
      expect((await repo.listPage({ after: 'i-2', limit: 2 })).map((i) => i.instanceId)).toEqual(['i-3']);
      expect(await repo.listPage({ after: 'i-3', limit: 2 })).toEqual([]);
    });

    it('gets, finds and lists with filters', async () => {
      const repo = createInstanceRepository(fx.store);
      await repo.create(newInstance('i-1', { host: 'compute-a', vmState: 'active', taskState: null }));
      await repo.create(newInstance('i-2', { host: 'compute-b', vmState: 'stopped', taskState: null }));
      await repo.create(newInstance('i-3', { host: 'compute-a', vmState: 'error', taskState: null }));
      expect((await repo.get('i-2')).host).toBe('compute-b');
      expect(await repo.find('nope')).toBeUndefined();
      const err = await failure(repo.get('nope'));
      expect(err).toBeInstanceOf(InstanceNotFound);
      expect(err.name).toBe(FailureType.InstanceNotFound);
      expect((await repo.list({ host: 'compute-a' })).map((i) => i.instanceId)).toEqual(['i-1', 'i-3']);
      expect((await repo.list({ vmState: 'stopped' })).map((i) => i.instanceId)).toEqual(['i-2']);
      expect((await repo.list({ vmState: ['active', 'error'] })).map((i) => i.instanceId)).toEqual(['i-1', 'i-3']);
      expect((await repo.list({ host: 'compute-a', vmState: 'active' })).map((i) => i.instanceId)).toEqual(['i-1']);
    });

    it('updates the given fields only, and refreshes updatedAt', async () => {
      const repo = createInstanceRepository(fx.store);
      const created = await repo.create(newInstance('i-1'));
      await tick();
      const updated = await repo.update('i-1', { taskState: null, host: 'compute-a', vmState: undefined });
      expect(updated).toMatchObject({ taskState: null, host: 'compute-a', vmState: 'building', name: 'vm-i-1' });
      expect(updated.updatedAt > created.updatedAt).toBe(true);
      expect(await repo.update('i-1', { host: null })).toMatchObject({ host: null });
      await expect(repo.update('nope', { host: null })).rejects.toBeInstanceOf(InstanceNotFound);
      await expect(repo.update('nope', { host: null }, { taskState: null })).rejects.toBeInstanceOf(InstanceNotFound);
    });

    it('compare-and-swaps on the expected task state and names the current one', async () => {
      const repo = createInstanceRepository(fx.store);
      await repo.create(newInstance('i-1')); // building / scheduling
      const err = await failure(repo.update('i-1', { taskState: 'powering-off' }, { taskState: null, method: 'stop' }));
      expect(err).toBeInstanceOf(InstanceInvalidState);
      expect(err.name).toBe(FailureType.InstanceInvalidState);
      expect(err).toMatchObject({ instanceId: 'i-1', attribute: 'taskState', state: 'scheduling', method: 'stop' });
      expect(err.message).toBe("Cannot 'stop' instance i-1 while it is in taskState scheduling");
      expect((await repo.get('i-1')).taskState).toBe('scheduling');

      // A list of expected states, including "no task"; `undefined` means "not checked".
      await repo.update('i-1', { taskState: null }, { taskState: [null, 'scheduling'] });
      await repo.update('i-1', { taskState: 'networking' }, { taskState: null, vmState: undefined });
      await repo.update('i-1', { taskState: 'spawning' }, { taskState: ['networking', 'block_device_mapping'] });
      const active = await repo.update(
        'i-1',
        { vmState: 'active', taskState: null },
        { taskState: 'spawning', vmState: 'building' }
      );
      expect(active).toMatchObject({ vmState: 'active', taskState: null });

      const vmErr = await failure(
        repo.update('i-1', { taskState: 'powering-on' }, { taskState: null, vmState: 'stopped', method: 'start' })
      );
      expect(vmErr).toMatchObject({ attribute: 'vmState', state: 'active', method: 'start' });
      expect(vmErr.message).toBe("Cannot 'start' instance i-1 while it is in vmState active");
      await expect(repo.update('i-1', {}, { taskState: [] })).rejects.toBeInstanceOf(InstanceInvalidState);
      expect(await failure(repo.update('i-1', {}, { taskState: 'deleting' }))).toMatchObject({
        state: null,
        method: 'update',
      });
    });

    it('lets exactly one of two concurrent operations take the instance', async () => {
      const other = await openStore(fx.database.options);
      try {
        const repos = [createInstanceRepository(fx.store), createInstanceRepository(other)];
        await repos[0]!.create(newInstance('i-1', { vmState: 'active', taskState: null }));
        const ops = ['powering-off', 'resize_prep', 'rebuilding', 'deleting', 'powering-off', 'resize_prep'] as const;
        const results = await Promise.allSettled(
          ops.map((taskState, i) => repos[i % 2]!.update('i-1', { taskState }, { taskState: null, method: `op-${i}` }))
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
        expect(won).toHaveLength(1);
        const winner = (won[0] as PromiseFulfilledResult<{ taskState: string }>).value.taskState;
        expect(lost).toHaveLength(ops.length - 1);
        for (const err of lost) {
          expect(err).toBeInstanceOf(InstanceInvalidState);
          expect(err).toMatchObject({ attribute: 'taskState', state: winner });
        }
        expect((await repos[1]!.get('i-1')).taskState).toBe(winner);
      } finally {
        await other.close();
      }
    });
  });

  describe('actions, events and faults', () => {
    it('starts one action per request, idempotently', async () => {
      const repo = createInstanceRepository(fx.store);
      const a = await repo.startAction('i-1', 'create', 'req-1');
      expect(await repo.startAction('i-1', 'create', 'req-1')).toEqual(a);
      const b = await repo.startAction('i-1', 'stop', 'req-2');
      expect(b.actionId).not.toBe(a.actionId);
      const actions = await repo.listActions('i-1');
      expect(actions.map((x) => [x.action, x.requestId, x.result, x.finishedAt])).toEqual([
        ['create', 'req-1', null, null],
        ['stop', 'req-2', null, null],
      ]);
      expect(await repo.listActions('other')).toEqual([]);
    });

    it('records one event per step and attempt, idempotently', async () => {
      const repo = createInstanceRepository(fx.store);
      const { actionId } = await repo.startAction('i-1', 'create', 'req-1');
      const started = '2030-01-01T00:00:00.000Z';
      const base = { actionId, event: 'compute__do_build_and_run_instance', startedAt: started };
      await repo.recordEvent({ ...base, attempt: 1, host: 'compute-a', result: null });
      await repo.recordEvent({ ...base, attempt: 1, host: 'compute-a', result: null });
      await repo.recordEvent({ ...base, attempt: 1, host: 'compute-a', result: 'Error', details: 'spawn failed' });
      // A retried activity re-sends the finish with other details: the first finish wins.
      await repo.recordEvent({ ...base, attempt: 1, host: 'compute-a', result: 'Success', details: 'late' });
      await repo.recordEvent({
        ...base,
        attempt: 2,
        host: 'compute-b',
        result: 'Success',
        finishedAt: '2030-01-01T00:00:09.000Z',
      });
      await repo.finishAction(actionId, 'Success');
      await repo.finishAction(actionId, 'Error');

      const [action] = await repo.listActions('i-1');
      expect(action).toMatchObject({ actionId, action: 'create', result: 'Success', message: 'Error' });
      expect(action!.finishedAt).not.toBeNull();
      expect(action!.events).toHaveLength(2);
      expect(action!.events[0]).toMatchObject({
        event: 'compute__do_build_and_run_instance',
        attempt: 1,
        host: 'compute-a',
        startedAt: started,
        result: 'Error',
        details: 'spawn failed',
      });
      expect(action!.events[0]!.finishedAt).not.toBeNull();
      expect(action!.events[1]).toMatchObject({
        attempt: 2,
        host: 'compute-b',
        result: 'Success',
        finishedAt: '2030-01-01T00:00:09.000Z',
      });
    });

    it('has startEvent / finishEvent as the two halves of recordEvent', async () => {
      const repo = createInstanceRepository(fx.store);
      const { actionId } = await repo.startAction('i-1', 'stop', 'req-1');
      await repo.startEvent(actionId, 'compute_stop_instance', 1, 'compute-a');
      let [action] = await repo.listActions('i-1');
      expect(action!.events[0]).toMatchObject({ host: 'compute-a', result: null, finishedAt: null });
      await repo.finishEvent(actionId, 'compute_stop_instance', 1, 'Success');
      await repo.finishEvent(actionId, 'compute_stop_instance', 1, 'Error', 'ignored: already finished');
      [action] = await repo.listActions('i-1');
      expect(action!.events).toHaveLength(1);
      expect(action!.events[0]).toMatchObject({ host: 'compute-a', result: 'Success', details: null });
      expect(action!.message).toBeNull();
      // Finishing a step that was never started records it.
      await repo.finishEvent(actionId, 'compute_other', 1, 'Error', 'boom');
      [action] = await repo.listActions('i-1');
      expect(action!.events.map((e) => [e.event, e.result])).toEqual([
        ['compute_stop_instance', 'Success'],
        ['compute_other', 'Error'],
      ]);
      expect(action!.message).toBe('Error');
    });

    it('records faults, oldest first, idempotently with a fault id', async () => {
      const repo = createInstanceRepository(fx.store);
      await repo.recordFault('i-1', { code: 500, message: 'NoValidHost', details: 'trace' });
      const second = await repo.recordFault('i-1', { code: 409, message: 'second', host: 'compute-a', faultId: 'f-2' });
      expect(await repo.recordFault('i-1', { code: 409, message: 'dup', faultId: 'f-2' })).toEqual(second);
      const faults = await repo.listFaults('i-1');
      expect(faults.map((f) => [f.code, f.message, f.details, f.host])).toEqual([
        [500, 'NoValidHost', 'trace', null],
        [409, 'second', null, 'compute-a'],
      ]);
      expect(await repo.listFaults('i-2')).toEqual([]);
    });
  });

  describe('migrations', () => {
    const migration: NewMigration = {
      id: 'mig-1',
      instanceId: 'i-1',
      sourceHost: 'compute-a',
      destHost: null,
      oldFlavor: 'm1.small',
      newFlavor: 'm1.medium',
      migrationType: 'resize',
      status: 'pre-migrating',
    };

    it('creates idempotently, updates with an expected status, lists by instance', async () => {
      const repo = createInstanceRepository(fx.store);
      const created = await repo.createMigration(migration);
      expect(created).toMatchObject({ ...migration });
      expect(await repo.createMigration({ ...migration, status: 'other' })).toEqual(created);
      const moved = await repo.updateMigration(
        'mig-1',
        { status: 'migrating', destHost: 'compute-b' },
        { status: 'pre-migrating' }
      );
      expect(moved).toMatchObject({ status: 'migrating', destHost: 'compute-b', sourceHost: 'compute-a' });
      const err = await failure(
        repo.updateMigration('mig-1', { status: 'confirmed' }, { status: ['finished'], method: 'confirmResize' })
      );
      expect(err).toBeInstanceOf(MigrationError);
      expect(err.message).toMatch(/confirmResize.*mig-1.*migrating/);
      expect((await repo.getMigration('mig-1')).status).toBe('migrating');
      await repo.createMigration({ ...migration, id: 'mig-2', migrationType: 'migration', newFlavor: 'm1.small' });
      expect((await repo.listMigrations('i-1')).map((m) => m.id)).toEqual(['mig-1', 'mig-2']);
      expect(await repo.findMigration('nope')).toBeUndefined();
      await expect(repo.getMigration('nope')).rejects.toBeInstanceOf(MigrationError);
      await expect(repo.updateMigration('nope', { status: 'error' })).rejects.toBeInstanceOf(MigrationError);
    });
  });

  describe('server groups', () => {
    it('ensures a group once and reports its members and their hosts', async () => {
      const repo = createInstanceRepository(fx.store);
      expect(await repo.getServerGroup('g')).toBeUndefined();
      expect(await repo.ensureServerGroup('g', 'anti-affinity')).toEqual({
        name: 'g',
        policy: 'anti-affinity',
        members: [],
        hosts: [],
      });
      await repo.ensureServerGroup('g', 'anti-affinity');
      await expect(repo.ensureServerGroup('g', 'affinity')).rejects.toBeInstanceOf(InvalidRequest);

      await repo.create(newInstance('i-1', { serverGroup: 'g', host: 'compute-b' }));
      await repo.create(newInstance('i-2', { serverGroup: 'g', host: 'compute-a' }));
      await repo.create(newInstance('i-3', { serverGroup: 'g', host: null }));
      await repo.create(newInstance('i-4', { serverGroup: 'g', host: 'compute-c', vmState: 'deleted' }));
      await repo.create(newInstance('i-5', { serverGroup: 'other', host: 'compute-d' }));
      await repo.create(newInstance('i-6', { serverGroup: 'g', host: 'compute-a' }));
      expect(await repo.getServerGroup('g')).toEqual({
        name: 'g',
        policy: 'anti-affinity',
        members: ['i-1', 'i-2', 'i-3', 'i-6'],
        hosts: ['compute-a', 'compute-b'],
      });
    });
  });
});
