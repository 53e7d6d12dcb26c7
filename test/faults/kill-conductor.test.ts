/** Fault 3: kill -9 the conductor three times: during builds, during stops, during starts. */
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  assertConsistent,
  FAST_TIMEOUTS,
  figures,
  fleet,
  outcomes,
  Stack,
  startBuilds,
  startOperation,
  type Started,
  waitForTaskState,
} from './harness';

describe('fault: the conductor killed three times during builds and lifecycle operations', () => {
  const stack = new Stack(fleet('kd', 3));
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  /** Kills the conductor once one operation is in `taskState` (null: half a second after they started). */
  async function killConductorWhile(started: Started[], taskState: string | null): Promise<void> {
    if (taskState === null) await delay(500);
    else
      await waitForTaskState(
        stack,
        started.map((s) => s.workflowId),
        taskState
      );
    await stack.worker('conductor').signal('SIGKILL');
    await delay(1_000);
    await stack.startWorker('conductor');
  }

  it('every build, stop and start completes after its conductor died; nothing leaked', async () => {
    const t0 = Date.now();
    const builds = await startBuilds(stack, 4, 'kd');
    await killConductorWhile(builds, 'spawning');
    const built = await outcomes(builds);
    await stack.waitAllTerminal(60_000);
    const line = await figures(stack, '3 kill -9 conductor x3 (builds, stops, starts)', built, t0);
    expect(built.map((b) => b.result)).toEqual(built.map(() => 'ok'));

    const ops: string[] = [];
    for (const type of ['stop', 'start'] as const) {
      const started = await Promise.all(
        built.map((b) =>
          startOperation(stack, type, `${type}-${b.instanceId}-faults`, {
            instanceId: b.instanceId,
            timeouts: FAST_TIMEOUTS,
            ...(type === 'stop' ? { shutdownTimeoutSeconds: 5 } : {}),
          })
        )
      );
      await killConductorWhile(started, type === 'stop' ? 'powering-off' : null);
      const done = await outcomes(started);
      ops.push(`${type}: ${done.filter((d) => d.result === 'ok').length}/${done.length} ok`);
      expect(done.map((d) => d.result)).toEqual(done.map(() => 'ok'));
    }
    console.log(`[faults] ${line.replace('[faults] ', '')}; lifecycle ${ops.join(', ')}`);
    await assertConsistent(stack);
  });
});
