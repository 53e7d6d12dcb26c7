/**
 * Fault 8: an operator terminates a build mid-spawn and a resize waiting in VERIFY_RESIZE, and the
 * reconciler's Schedule (created by the conductor worker, a short period here) heals both within one
 * period: the build's instance ends `error` with its task state clear, its guest destroyed and its claim
 * released; the resize is confirmed (the source guest and the migration's allocation gone, the instance
 * active on its destination). Then the suite's own checker and the live audit find nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openStore } from '../../src/store/db';
import { createInstanceRepository } from '../../src/store/instances';
import { createPlacementRepository } from '../../src/store/placement';
import { ensureReconcileSchedule, RECONCILE_SCHEDULE_ID } from '../../src/workers/reconcile-schedule';
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

/** The reconciler's period in this scenario. */
const PERIOD_SECONDS = 5;

describe('fault: an operator terminating a build mid-spawn and a resize in VERIFY_RESIZE', () => {
  const stack = new Stack(fleet('ot', 2));
  stack.workerExtraEnv = { RECONCILE_PERIOD_SECONDS: String(PERIOD_SECONDS) };
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it('is healed by the reconciler within one period: stable states, no guest or allocation left, the audit clean', async () => {
    const t0 = Date.now();
    const schedule = await stack.client.schedule.getHandle(RECONCILE_SCHEDULE_ID).describe();
    expect(schedule.spec.intervals).toMatchObject([{ every: PERIOD_SECONDS * 1000 }]);
    expect(schedule.policies.overlap).toBe('SKIP');

    const [first] = await startBuilds(stack, 1, 'ot');
    const resized = (await first!.done).instanceId!;
    const source = (await first!.done).host!;
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
    const { host: buildHost } = await waitForTaskState(stack, [second!.workflowId], 'spawning');
    const building = (await stack.client.workflow.getHandle(second!.workflowId).query<Progress>('getProgress'))
      .instanceId;
    await stack.client.workflow.getHandle(second!.workflowId).terminate('operator: fault suite');
    const terminatedAt = Date.now();
    const results = await outcomes([first!, second!]);
    expect((await resize.done).result).toBe('Terminated');
    expect(results.map((r) => r.result)).toEqual(['ok', 'Terminated']);

    const store = await openStore({ sqlitePath: `${stack.dataDir}/conductor.sqlite` });
    try {
      const instances = createInstanceRepository(store);
      const placement = createPlacementRepository(store, { cacheHostStates: false });
      // One period, and the time a run takes (its hosts reconciled), is all it may need.
      await until('the reconciler to heal both', (PERIOD_SECONDS * 2 + 20) * 1000, async () => {
        const [b, r] = [await instances.get(building), await instances.get(resized)];
        return b.taskState === null && b.vmState === 'error' && r.vmState === 'active' ? true : undefined;
      });
      const healedAfter = (Date.now() - terminatedAt) / 1000;
      expect(await instances.get(building)).toMatchObject({ vmState: 'error', taskState: null, host: null });
      expect(await placement.getAllocations(building)).toEqual([]);
      expect(stack.guests(buildHost)).not.toContain(building);
      const [migration] = await instances.listMigrations(resized);
      expect(migration?.status).toBe('confirmed');
      expect(await placement.getAllocations(migration!.id)).toEqual([]);
      const dest = (await instances.get(resized)).host!;
      expect(dest).not.toBe(source);
      expect(stack.guests(source)).not.toContain(resized);
      expect(stack.guests(dest)).toContain(resized);
      console.log(
        `[faults] 8 reconcile: both healed ${healedAfter.toFixed(1)} s after the terminate (period ${PERIOD_SECONDS} s)`
      );
    } finally {
      await store.close();
    }
    // The schedule keeps running reconcile; pause it so every workflow can be seen terminal.
    const scheduleHandle = stack.client.schedule.getHandle(RECONCILE_SCHEDULE_ID);
    await scheduleHandle.pause('fault suite: checking');
    // A conductor worker starting again updates the schedule in place (its period), keeping it paused.
    expect(await ensureReconcileSchedule(stack.client, PERIOD_SECONDS * 2)).toBe('updated');
    const updated = await scheduleHandle.describe();
    expect(updated.spec.intervals).toMatchObject([{ every: PERIOD_SECONDS * 2 * 1000 }]);
    expect(updated.state.paused).toBe(true);
    await figures(stack, '8 operator terminates a build mid-spawn and a resize in VERIFY_RESIZE', results, t0);
    await assertConsistent(stack);
  });
});
