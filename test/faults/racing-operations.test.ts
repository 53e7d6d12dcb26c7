/** Fault 7: stop and rebuild started together on one instance: exactly one wins. */
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
} from './harness';

describe('fault: two operations racing on one instance', () => {
  const stack = new Stack(fleet('rc', 2));
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it('one of stop and rebuild wins, the other fails InstanceInvalidState', async () => {
    const t0 = Date.now();
    const built = await outcomes(await startBuilds(stack, 3, 'rc'));
    expect(built.map((b) => b.result)).toEqual(['ok', 'ok', 'ok']);
    const winners: string[] = [];
    for (const { instanceId } of built) {
      const [stop, rebuild] = await Promise.all([
        startOperation(stack, 'stop', `stop-${instanceId}-race`, {
          instanceId,
          shutdownTimeoutSeconds: 5,
          timeouts: FAST_TIMEOUTS,
        }),
        startOperation(stack, 'rebuild', `rebuild-${instanceId}-race`, {
          instanceId,
          image: 'ubuntu-24.04',
          timeouts: FAST_TIMEOUTS,
        }),
      ]);
      const results = await outcomes([stop, rebuild]);
      expect(results.map((r) => r.result).sort(), instanceId).toEqual(['InstanceInvalidState', 'ok']);
      winners.push(results[0]!.result === 'ok' ? 'stop' : 'rebuild');
    }
    await stack.waitAllTerminal(60_000);
    const line = await figures(stack, '7 stop and rebuild racing x3', built, t0);
    console.log(`[faults] ${line.replace('[faults] ', '')}; race winners ${winners.join(', ')}`);
    await assertConsistent(stack);
  });
});
