/**
 * Fault 8: an operator terminates a build mid-spawn and a resize waiting in VERIFY_RESIZE.
 *
 * EXPECTED STATE UNTIL THE RECONCILER LANDS: nothing heals these yet, so this scenario asserts that the
 * audit and the suite's own checker both report exactly the two leftovers: the build's instance keeps
 * its task state (`task-state-without-workflow`) and the resize's migration keeps the source allocation
 * (`migration-allocation-without-workflow`). When the reconciler heals them, expect a clean audit here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openStore } from '../../src/store/db';
import { createInstanceRepository } from '../../src/store/instances';
import {
  assertConsistent,
  FAST_TIMEOUTS,
  figures,
  fleet,
  outcomes,
  Stack,
  startBuilds,
  startOperation,
  until,
  waitForTaskState,
} from './harness';

interface Progress {
  instanceId: string;
  vmState: string;
}

describe('fault: an operator terminating a build mid-spawn and a resize in VERIFY_RESIZE', () => {
  const stack = new Stack(fleet('ot', 2));
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it('leaves exactly the two expected findings (not healed yet), seen by the audit and the checker', async () => {
    const t0 = Date.now();
    const [first] = await startBuilds(stack, 1, 'ot');
    const resized = (await first!.done).instanceId!;
    const resize = await startOperation(stack, 'resizeMigrate', `resize-${resized}-faults`, {
      instanceId: resized,
      flavor: 'm1.medium',
      confirmWindowSeconds: 0,
      timeouts: FAST_TIMEOUTS,
    });
    const handle = stack.client.workflow.getHandle(resize.workflowId);
    await until('the resize in VERIFY_RESIZE', 60_000, async () =>
      (await handle.query<Progress>('getProgress')).vmState === 'resized' ? true : undefined
    );
    await handle.terminate('operator: fault suite');

    const [second] = await startBuilds(stack, 1, 'ot');
    await waitForTaskState(stack, [second!.workflowId], 'spawning');
    const building = (await stack.client.workflow.getHandle(second!.workflowId).query<Progress>('getProgress'))
      .instanceId;
    await stack.client.workflow.getHandle(second!.workflowId).terminate('operator: fault suite');
    const results = await outcomes([first!, second!]);
    expect((await resize.done).result).toBe('Terminated');
    expect(results.map((r) => r.result)).toEqual(['ok', 'Terminated']);

    const store = await openStore({ sqlitePath: `${stack.dataDir}/conductor.sqlite` });
    const migrations = await createInstanceRepository(store).listMigrations(resized);
    await store.close();
    expect(migrations).toHaveLength(1);
    await stack.waitAllTerminal(60_000);
    await figures(stack, '8 operator terminates a build mid-spawn and a resize in VERIFY_RESIZE', results, t0);
    await assertConsistent(stack, [
      { kind: 'task-state-without-workflow', subject: building },
      { kind: 'migration-allocation-without-workflow', subject: migrations[0]!.id },
    ]);
  });
});
