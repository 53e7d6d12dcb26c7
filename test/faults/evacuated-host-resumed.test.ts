/**
 * Fault 10: a compute host SIGSTOPped (and forced down, Nova's forced_down) while its instance is
 * evacuated elsewhere, then resumed without a restart: no start-up reconcileHost runs, so the evacuated
 * guest and its source allocation stay until the reconciler's Schedule (a short period here) runs
 * reconcileHost on the host, now live again. After one period: no evacuated guest, no source allocation,
 * the evacuation `completed`, and the checker and the live audit clean.
 */
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openStore } from '../../src/store/db';
import { createInstanceRepository } from '../../src/store/instances';
import { createPlacementRepository } from '../../src/store/placement';
import { RECONCILE_SCHEDULE_ID } from '../../src/workers/reconcile-schedule';
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
} from './harness';

const PERIOD_SECONDS = 5;

describe('fault: an evacuated host SIGSTOPped and resumed without a restart', () => {
  const stack = new Stack(fleet('ev', 2));
  stack.workerExtraEnv = { RECONCILE_PERIOD_SECONDS: String(PERIOD_SECONDS) };
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it('is cleaned by the reconciler within one period of its return', async () => {
    const t0 = Date.now();
    const [build] = await startBuilds(stack, 1, 'ev');
    const built = await build!.done;
    const instanceId = built.instanceId!;
    const source = built.host!;
    const store = await openStore({ sqlitePath: path.join(stack.dataDir, 'conductor.sqlite') });
    try {
      const placement = createPlacementRepository(store, { cacheHostStates: false });
      const instances = createInstanceRepository(store);
      const frozen = stack.worker('compute', source);
      await frozen.signal('SIGSTOP');
      await placement.setForcedDown(source, true);

      const evacuate = await startOperation(stack, 'rebuild', `rebuild-${instanceId}-evacuate`, {
        instanceId,
        evacuate: true,
        timeouts: FAST_TIMEOUTS,
      });
      const evacuated = await evacuate.done;
      expect(evacuated.result, stack.logs()).toBe('ok');
      const dest = (await instances.get(instanceId)).host!;
      expect(dest).not.toBe(source);
      // The source still has its guest and its allocation: nothing there has run since the freeze.
      expect(stack.guests(source)).toContain(instanceId);
      expect((await placement.getAllocations(instanceId)).map((a) => a.host).sort()).toEqual([dest, source].sort());

      await frozen.signal('SIGCONT');
      await placement.setForcedDown(source, false);
      const resumedAt = Date.now();
      // The whole clean-up: the guest destroyed, the source allocation released, then (its last step)
      // the evacuation completed; checking only the first two raced that last write.
      const migrationStatuses = async () => (await instances.listMigrations(instanceId)).map((m) => m.status);
      await until('the reconciler to clean the returned host', (PERIOD_SECONDS * 2 + 30) * 1000, async () =>
        !stack.guests(source).includes(instanceId) &&
        (await placement.getAllocations(instanceId)).length === 1 &&
        (await migrationStatuses()).every((status) => status === 'completed')
          ? true
          : undefined
      );
      const cleanedAfter = (Date.now() - resumedAt) / 1000;
      expect(await placement.getAllocations(instanceId)).toEqual([expect.objectContaining({ host: dest })]);
      expect(stack.guests(dest)).toContain(instanceId);
      expect(await migrationStatuses()).toEqual(['completed']);
      // The compute worker was never restarted: no start-up reconciliation did this.
      expect(frozen.output.match(/--- start/g)).toHaveLength(1);
      console.log(
        `[faults] 10 reconcile: the evacuated guest cleaned ${cleanedAfter.toFixed(1)} s after SIGCONT (period ${PERIOD_SECONDS} s)`
      );
    } finally {
      await store.close();
    }
    await stack.client.schedule.getHandle(RECONCILE_SCHEDULE_ID).pause('fault suite: checking');
    await figures(stack, '10 an evacuated host SIGSTOPped and resumed', await outcomes([build!]), t0);
    await assertConsistent(stack);
  });
});
