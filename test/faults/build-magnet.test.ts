/** Fault 6: the best-ranked host fails every spawn (a build magnet); builds must end active elsewhere. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { assertConsistent, figures, fleet, outcomes, Stack, startBuilds } from './harness';

describe('fault: a build magnet (the best host fails every spawn)', () => {
  const stack = new Stack([...fleet('mg', 1, { vcpus: 32, memoryMb: 65536 }), ...fleet('mg', 3).slice(1)]);
  beforeAll(async () => {
    stack.writeFaults('mg-1', { spawn: { failNext: 1000 } });
    await stack.startAll();
  }, 180_000);
  afterAll(() => stack.dispose());

  it('every build ends active on another host; the magnet holds nothing', async () => {
    const t0 = Date.now();
    const results = await outcomes(await startBuilds(stack, 8, 'mg'));
    await stack.waitAllTerminal(60_000);
    await figures(stack, '6 build magnet mg-1 (spawn.failNext 1000)', results, t0);
    expect(results.map((r) => r.result)).toEqual(results.map(() => 'ok'));
    expect(results.filter((r) => r.host === 'mg-1')).toEqual([]);
    expect(stack.guests('mg-1')).toEqual([]);
    await assertConsistent(stack);
  });
});
