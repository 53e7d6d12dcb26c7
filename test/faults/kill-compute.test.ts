/** Fault 1: kill -9 a compute worker while it spawns, restart it a few seconds later. */
import { setTimeout as delay } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { assertConsistent, figures, fleet, outcomes, Stack, startBuilds, waitForTaskState } from './harness';

describe('fault: a compute worker killed mid-spawn', () => {
  const stack = new Stack(fleet('kc', 3));
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it('every build ends active, each guest once, nothing leaked', async () => {
    const t0 = Date.now();
    const builds = await startBuilds(stack, 6, 'kc');
    const { host } = await waitForTaskState(
      stack,
      builds.map((b) => b.workflowId),
      'spawning'
    );
    await stack.worker('compute', host).signal('SIGKILL');
    await delay(4_000);
    await stack.startWorker('compute', host);
    const results = await outcomes(builds);
    await stack.waitAllTerminal(60_000);
    await figures(stack, `1 kill -9 compute ${host} mid-spawn`, results, t0);
    expect(results.map((o) => o.result)).toEqual(results.map(() => 'ok'));
    await assertConsistent(stack);
  });
});
