/** Fault 2: kill -9 the scheduler during a burst into a fleet with fewer free slots than builds; restart it. */
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { assertConsistent, figures, fleet, outcomes, Stack, startBuilds } from './harness';

// Three hosts of 4096 usable MB (512 reserved): two m1.small (2048 MB) each, six slots for nine builds.
const SLOTS = 6;
const BUILDS = 9;

describe('fault: the scheduler killed during a burst into a nearly full fleet', () => {
  const stack = new Stack(fleet('ks', 3, { memoryMb: 4608 }));
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it('fills every slot exactly once and fails the rest typed, nothing leaked', async () => {
    const t0 = Date.now();
    const first = await startBuilds(stack, 4, 'ks');
    await stack.worker('scheduler').signal('SIGKILL');
    const rest = await startBuilds(stack, BUILDS - 4, 'ks');
    await delay(3_000);
    await stack.startWorker('scheduler');
    const results = await outcomes([...first, ...rest]);
    await stack.waitAllTerminal(90_000);
    await figures(stack, '2 kill -9 scheduler mid-burst (6 slots, 9 builds)', results, t0);
    const ok = results.filter((r) => r.result === 'ok');
    expect(ok).toHaveLength(SLOTS);
    for (const r of results.filter((b) => b.result !== 'ok'))
      expect(['NoValidHost', 'MaxRetriesExceeded'], r.workflowId).toContain(r.result);
    await assertConsistent(stack);
  });
});
