/**
 * Fault 9: the system as `npm start` runs it (the launcher), and one compute worker that keeps crashing:
 * killed six times in a row, each restart killed as it comes up. The launcher restarts it with backoff,
 * then leaves it down; the server and every other worker keep their pids and keep serving builds, which
 * complete on the other hosts; `hosts` shows the host down; SIGTERM stops the launcher quietly.
 */
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ROOT, runCli } from '../helpers/cli';
import { assertConsistent, figures, fleet, type Outcome, outcomes, type Started, startBuilds, until } from './harness';
import { isAlive, LauncherStack } from './launcher-stack';

const KILLS = 6;
const HOST_DOWN_AFTER_SECONDS = 15;
/** Lines of a shutdown that floods the log: connection errors from workers whose server went first. */
const CONNECTION_ERRORS =
  /ECONNREFUSED|connection refused|transport error|Connection (closed|reset)|UNAVAILABLE|tcp connect error/i;

describe('fault: a compute worker that keeps crashing under the launcher', () => {
  // cl-1 ranks best (most free RAM and vCPUs): the scheduler tries it first until it reads down.
  const stack = new LauncherStack([...fleet('cl', 1, { vcpus: 32, memoryMb: 65536 }), ...fleet('cl', 3).slice(1)], 1);
  beforeAll(
    () =>
      stack.startLauncher({
        LAUNCHER_BACKOFF_SECONDS: '0.5',
        HOST_DOWN_AFTER_SECONDS: String(HOST_DOWN_AFTER_SECONDS),
      }),
    200_000
  );
  afterAll(() => stack.dispose());

  it('is restarted with backoff, then left down; the rest keeps serving builds on the other hosts', async () => {
    const t0 = Date.now();
    const others = ['temporal', 'conductor', 'scheduler', 'cl-2', 'cl-3'];
    const pidsBefore = Object.fromEntries(others.map((name) => [name, stack.pidOf(name)]));
    expect(Object.values(pidsBefore).every((pid) => pid !== undefined && isAlive(pid))).toBe(true);

    const started: Started[] = [];
    let last: number | undefined;
    for (let kill = 1; kill <= KILLS; kill++) {
      // Each restart is killed as soon as the launcher has started it (it never gets to poll again).
      const pid = await until(`cl-1 started for the ${kill}. time`, 60_000, () => {
        const now = stack.pidOf('cl-1');
        return Promise.resolve(now !== undefined && now !== last ? now : undefined);
      });
      process.kill(pid, 'SIGKILL');
      last = pid;
      started.push(...(await startBuilds(stack, 2, `cl-k${kill}`)));
    }
    await stack.launcher!.waitFor(`cl-1 exited (SIGKILL) after ${KILLS} crashes in a row; left down`, 30_000);
    const log = stack.launcher!.output;
    for (let crash = 1; crash < KILLS; crash++) expect(log).toContain(`(crash ${crash} in a row)`);
    // Backoff: 0.5 s doubled per crash in a row.
    expect(log).toContain('restarting in 0.5 s (crash 1 in a row)');
    expect(log).toContain('restarting in 8.0 s (crash 5 in a row)');

    const after = await startBuilds(stack, 4, 'cl-after');
    const results: Outcome[] = await outcomes([...started, ...after]);
    expect(results.map((o) => o.result)).toEqual(results.map(() => 'ok'));
    expect(results.filter((o) => o.host === 'cl-1')).toEqual([]);

    // Left down: not started again, and `hosts` shows it down once its poller is gone.
    expect(stack.pidOf('cl-1')).toBe(last);
    const hostsRun = () =>
      runCli(path.join(ROOT, 'src', 'cli', 'conductor.ts'), ['hosts', '--json'], {
        DATA_DIR: stack.dataDir,
        DATABASE_URL: undefined,
        TEMPORAL_ADDRESS: stack.address,
        HOST_DOWN_AFTER_SECONDS: String(HOST_DOWN_AFTER_SECONDS),
      });
    const states = await until('hosts to show cl-1 down', 90_000, async () => {
      const run = await hostsRun();
      const rows = JSON.parse(run.stdout) as Array<{ host: string; state: string }>;
      return rows.find((r) => r.host === 'cl-1')?.state.startsWith('down') ? rows : undefined;
    });
    expect(states.map((r) => [r.host, r.state])).toEqual([
      ['cl-1', expect.stringMatching(/^down/) as unknown],
      ['cl-2', 'up'],
      ['cl-3', 'up'],
    ]);
    // The server and every other worker kept running, never restarted.
    expect(Object.fromEntries(others.map((name) => [name, stack.pidOf(name)]))).toEqual(pidsBefore);
    expect(Object.values(pidsBefore).every((pid) => isAlive(pid!))).toBe(true);

    await figures(stack, `9 compute cl-1 killed ${KILLS} times in a row under the launcher, left down`, results, t0);
    await assertConsistent(stack);

    // Shutdown: workers first, the server last, no flood of connection errors, exit 0.
    const before = stack.launcher!.output.length;
    await stack.launcher!.signal('SIGTERM');
    const shutdownLog = stack.launcher!.output.slice(before);
    expect(stack.launcher!.child?.exitCode).toBe(0);
    expect(shutdownLog).toContain('stopping workers');
    expect(shutdownLog.split('\n').filter((l) => CONNECTION_ERRORS.test(l))).toEqual([]);
    expect(stack.allPids().filter(isAlive)).toEqual([]);
  });
});
