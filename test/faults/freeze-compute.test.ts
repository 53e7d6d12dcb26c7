/** Fault 5: SIGSTOP the best-ranked compute worker for 60 s while builds are started, then SIGCONT. */
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { assertConsistent, figures, fleet, type Outcome, outcomes, Stack, type Started, startBuilds } from './harness';

const FREEZE_MS = 60_000;
/** When builds are started, in ms after the freeze: two each time. */
const STARTS_MS = [500, 3_000, 8_000, 15_000, 30_000, 45_000];
/**
 * The target for a build started during the freeze, with 3 s spawns. Measured before the fix: ~72 s for
 * builds started in the first 30 s: their first step (allocateNetworks on fz-1) was handed to the frozen
 * worker's outstanding long polls, so it was neither backlogged (liveness did not call fz-1 sick) nor
 * timed out before its 60 s start-to-close. Now a short compute step has a heartbeat timeout of a few
 * seconds, the compute worker heartbeats it while it runs, and a heartbeat timeout is not retried on the
 * same host: the attempt reschedules in seconds. Measured ~11.5 s (3 s heartbeat timeout, 2 s clean-up
 * try on fz-1, 1 s reschedule backoff, ~5 s build on fz-2); a build on a healthy host takes ~4.5 s. On a
 * machine loaded far past its cores (load average 7-10 on 2) every step slows and it took 17-20 s.
 */
const TARGET_SECONDS = 15;

describe('fault: a compute worker frozen (SIGSTOP) for 60 s', () => {
  // fz-1 ranks best (most free RAM and vCPUs): it is the one frozen.
  const stack = new Stack([...fleet('fz', 1, { vcpus: 32, memoryMb: 65536 }), ...fleet('fz', 3).slice(1)]);
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it('builds started during the freeze complete on the other hosts; nothing leaked after SIGCONT', async () => {
    const frozen = stack.worker('compute', 'fz-1');
    const t0 = Date.now();
    await frozen.signal('SIGSTOP');
    const started: Started[] = [];
    for (const at of STARTS_MS) {
      await delay(Math.max(0, t0 + at - Date.now()));
      started.push(...(await startBuilds(stack, 2, `fz${at}`)));
    }
    const during: Outcome[] = await outcomes(started);
    await delay(Math.max(0, t0 + FREEZE_MS - Date.now()));
    await frozen.signal('SIGCONT');
    await stack.waitAllTerminal(90_000);
    await figures(stack, '5 compute fz-1 SIGSTOPped 60 s', during, t0);
    const seconds = during.map(
      (o, i) => `+${STARTS_MS[Math.floor(i / 2)]! / 1000}s:${o.seconds.toFixed(1)}s@${o.host ?? o.result}`
    );
    const met = during.every((o) => o.result === 'ok' && o.seconds < TARGET_SECONDS && o.host !== 'fz-1');
    console.log(
      `[faults] 5 per-build seconds (started at +t during the freeze: took@host): ${seconds.join(' ')}; ` +
        `max ${Math.max(...during.map((o) => o.seconds)).toFixed(1)} s; target < ${TARGET_SECONDS} s ${met ? 'met' : 'NOT met'}`
    );
    expect(during.map((o) => o.result)).toEqual(during.map(() => 'ok'));
    // Each build started during the freeze completed elsewhere within the target.
    expect(during.filter((o) => o.host === 'fz-1')).toEqual([]);
    expect(during.filter((o) => o.seconds >= TARGET_SECONDS)).toEqual([]);
    await assertConsistent(stack);
  });
});
