import { describe, expect, it } from 'vitest';

import { createInstanceRepository } from '../../../src/store/instances';
import { APPLIED_WRITE_RETENTION_MS, instanceWrites, pruneAppliedWrites } from '../../../src/store/write-once';
import { BACKENDS, useFreshStore } from './backends';
import { newInstance } from './fixtures';

describe.each(BACKENDS)('writes applied once per call on $name', (backend) => {
  const fx = useFreshStore(backend);

  it('answers a retried call with the first answer, without running the write again', async () => {
    const writes = instanceWrites(fx.store);
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-1', { taskState: 'powering-off', taskOwner: 'stop-1' }));
    const complete = () =>
      writes('stop-1/run/5/updateInstance', (instances) =>
        instances.update('i-1', { vmState: 'stopped', taskState: null }, { taskState: 'powering-off', method: 'stop' })
      );
    const first = await complete();
    expect(first).toMatchObject({ vmState: 'stopped', taskState: null, taskOwner: null });
    // Run again, its own compare-and-swap would now fail: the retry gets the first answer instead.
    expect(await complete()).toEqual(first);
    expect(await repo.get('i-1')).toEqual(first);
  });

  it('decides afresh after a write that failed (a real rival still loses at once)', async () => {
    const writes = instanceWrites(fx.store);
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-2', { taskState: 'spawning', taskOwner: 'build-2' }));
    const rival = () =>
      writes('stop-2/run/1/beginOperation', (instances) =>
        instances.update('i-2', { taskState: 'powering-off', taskOwner: 'stop-2' }, { taskState: null, method: 'stop' })
      );
    await expect(rival()).rejects.toMatchObject({ name: 'InstanceInvalidState' });
    await repo.update('i-2', { vmState: 'active', taskState: null });
    expect(await rival()).toMatchObject({ taskState: 'powering-off', taskOwner: 'stop-2' });
  });

  it('runs a write with no key directly, every time', async () => {
    const writes = instanceWrites(fx.store);
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-3', { taskState: null }));
    const action = await writes(undefined, (instances) => instances.startAction('i-3', 'stop', 'stop-3'));
    await writes(undefined, (instances) => instances.finishAction(action.actionId, 'Success'));
    expect((await repo.listActions('i-3')).map((a) => [a.action, a.result])).toEqual([['stop', 'Success']]);
  });

  it('forgets applied writes after the retention', async () => {
    const writes = instanceWrites(fx.store);
    await createInstanceRepository(fx.store).create(newInstance('i-4'));
    await writes('k-old', (instances) => instances.get('i-4'));
    expect(await pruneAppliedWrites(fx.store)).toBe(0);
    expect(await pruneAppliedWrites(fx.store, Date.now() + APPLIED_WRITE_RETENTION_MS + 1000)).toBe(1);
  });
});
