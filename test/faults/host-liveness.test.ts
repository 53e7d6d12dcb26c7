/**
 * Fault 10: host liveness with hysteresis, on real processes. The scheduler's liveness view
 * (TaskQueuePollerLiveness, HOST_DOWN_AFTER_SECONDS after the last poll) watched once a second while
 * (1) the dev server is killed and restarted on its data (a poller gap of a few seconds: no host reads
 * down), then (2) one compute worker is SIGSTOPped (it reads down within the bound: the window plus the
 * dev server's long poll, during which the server still records the frozen worker's last poll) and
 * SIGCONTed (up again). The `hosts` command agrees.
 */
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TaskQueuePollerLiveness } from '../../src/activities/scheduler/liveness';
import { DEV_SERVER_LONG_POLL_SECONDS } from '../../src/workers/dev-server';
import { ROOT, runCli } from '../helpers/cli';
import { assertConsistent, fleet, Stack, until } from './harness';

const DOWN_AFTER_SECONDS = 20;
/** The frozen worker reads down within this of its SIGSTOP (the window, one long poll, the 1 s refresh). */
const BOUND_SECONDS = DOWN_AFTER_SECONDS + DEV_SERVER_LONG_POLL_SECONDS + 2;

describe('fault: host liveness through a server restart and a frozen worker', () => {
  const stack = new Stack(fleet('lv', 2));
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it('a few seconds without pollers take no host down; a SIGSTOPped worker reads down within the bound', async () => {
    const hosts = stack.hosts.map((h) => h.name);
    const liveness = new TaskQueuePollerLiveness(
      stack.connection!,
      'default',
      () => Promise.resolve(hosts),
      DOWN_AFTER_SECONDS * 1000
    );
    /** Every refresh: when, and which hosts read down. */
    const seen: Array<{ at: number; down: string[] }> = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        await liveness.refresh().catch(() => undefined); // the server is away for a while: keep the last view
        seen.push({ at: Date.now(), down: hosts.filter((h) => !liveness.isUp(h)) });
        await delay(1_000);
      }
    })();
    const downBetween = (from: number, to: number) => [
      ...new Set(seen.filter((s) => s.at >= from && s.at <= to).flatMap((s) => s.down)),
    ];
    try {
      await until('a first view of both hosts, up', 30_000, () =>
        Promise.resolve(seen.some((s) => s.down.length === 0) ? true : undefined)
      );

      // (1) The server killed and restarted on its data: it has forgotten its pollers until they poll again.
      const restartAt = Date.now();
      await stack.server.signal('SIGKILL');
      await delay(3_000);
      await stack.startServer();
      await stack.waitForPollers();
      const gapSeconds = (Date.now() - restartAt) / 1000;
      await delay((DOWN_AFTER_SECONDS + 5) * 1000);
      expect(downBetween(restartAt, Date.now())).toEqual([]);

      // (2) lv-1 frozen: down within the bound, lv-2 up throughout; back up after SIGCONT.
      const frozen = stack.worker('compute', 'lv-1');
      const stopAt = Date.now();
      await frozen.signal('SIGSTOP');
      const downAt = await until('lv-1 to read down', (BOUND_SECONDS + 10) * 1000, () =>
        Promise.resolve(seen.find((s) => s.at > stopAt && s.down.includes('lv-1'))?.at)
      );
      const downSeconds = (downAt - stopAt) / 1000;
      const hostsRun = await runCli(path.join(ROOT, 'src', 'cli', 'conductor.ts'), ['hosts', '--json'], {
        DATA_DIR: stack.dataDir,
        DATABASE_URL: undefined,
        TEMPORAL_ADDRESS: stack.address,
        HOST_DOWN_AFTER_SECONDS: String(DOWN_AFTER_SECONDS),
      });
      const states = (JSON.parse(hostsRun.stdout) as Array<{ host: string; state: string }>).map((r) => [
        r.host,
        r.state,
      ]);
      await frozen.signal('SIGCONT');
      const contAt = Date.now();
      const upAt = await until('lv-1 to read up again', 30_000, () =>
        Promise.resolve(seen.find((s) => s.at > contAt && !s.down.includes('lv-1'))?.at)
      );
      console.log(
        `[faults] 10 liveness (down after ${DOWN_AFTER_SECONDS} s, long poll ${DEV_SERVER_LONG_POLL_SECONDS} s): ` +
          `server restart gap ${gapSeconds.toFixed(1)} s, no host down; SIGSTOPped lv-1 down after ` +
          `${downSeconds.toFixed(1)} s (bound ${BOUND_SECONDS} s); up ${((upAt - contAt) / 1000).toFixed(1)} s after SIGCONT`
      );
      expect(downSeconds).toBeLessThanOrEqual(BOUND_SECONDS);
      // Not before the window: the frozen worker's last poll is at most one long poll older than the freeze.
      expect(downSeconds).toBeGreaterThanOrEqual(DOWN_AFTER_SECONDS - DEV_SERVER_LONG_POLL_SECONDS);
      expect(downBetween(stopAt, Date.now()).filter((h) => h !== 'lv-1')).toEqual([]);
      expect(states).toEqual([
        ['lv-1', 'down'],
        ['lv-2', 'up'],
      ]);
    } finally {
      watching = false;
      await watcher;
    }
    await assertConsistent(stack);
  });
});
