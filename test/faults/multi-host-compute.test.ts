/**
 * One compute process serving three hosts (COMPUTE_HOSTS=all: one Worker per host queue on one
 * connection): a build lands on each host, each guest in its own host's guest files; a fault in one
 * host's faults.json fails only that host's build; the scheduler's liveness sees the three hosts up from
 * worker heartbeats (one ListWorkers call, no DescribeTaskQueue); and the process is one failure domain:
 * frozen (SIGSTOP), all three hosts read down, resumed, all three up again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TaskQueuePollerLiveness } from '../../src/activities/scheduler/liveness';
import { assertConsistent, FAST_TIMEOUTS, fleet, outcomes, Stack, startOperation, until } from './harness';

const HOSTS = fleet('mh', 3);
const NAMES = HOSTS.map((h) => h.name);
let seq = 0;

/** One build per named host, pinned there (`host`: never rescheduled elsewhere). */
async function buildOn(stack: Stack, hosts: readonly string[]) {
  const started = [];
  for (const host of hosts) {
    const name = `mh-vm-${++seq}`;
    started.push(
      await startOperation(stack, 'buildInstance', `build-${name}`, {
        name,
        flavor: 'm1.small',
        image: 'cirros',
        host,
        timeouts: FAST_TIMEOUTS,
      })
    );
  }
  return outcomes(started);
}

describe('one compute process serving several hosts', () => {
  const stack = new Stack(HOSTS, 1);
  stack.workerExtraEnv = { COMPUTE_HOSTS: 'all' };

  beforeAll(async () => {
    await stack.startServer();
    await Promise.all([stack.startWorker('conductor'), stack.startWorker('scheduler')]);
    await stack.worker('compute').start().waitFor('registered all hosts', 120_000);
    await stack.waitForPollers();
  }, 180_000);
  afterAll(() => stack.dispose());

  it("serves every host: a build lands on each, its guest in that host's own guest files", async () => {
    const results = await buildOn(stack, NAMES);
    expect(results.map((r) => [r.result, r.host])).toEqual(NAMES.map((h) => ['ok', h]));
    for (const r of results) expect(stack.guests(r.host!)).toContain(r.instanceId);
    // One process, one registration line per host, and the one summary line.
    expect(stack.worker('compute').output).toMatch(/"registered all hosts","hosts":3/);
  });

  it("a fault in one host's faults.json fails that host's build only", async () => {
    const before = new Map(NAMES.map((h) => [h, stack.guests(h).length]));
    stack.writeFaults('mh-2', { spawn: { failNext: 1 } });
    const results = await buildOn(stack, NAMES);
    expect(results.map((r) => r.result === 'ok')).toEqual([true, false, true]);
    expect(NAMES.map((h) => stack.guests(h).length - before.get(h)!)).toEqual([1, 0, 1]);
    // The fault was that host's: once spent, mh-2 builds again.
    const [again] = await buildOn(stack, ['mh-2']);
    expect([again!.result, again!.host]).toEqual(['ok', 'mh-2']);
  });

  it('liveness sees every host up from worker heartbeats, with no DescribeTaskQueue call', async () => {
    const liveness = new TaskQueuePollerLiveness(stack.connection!, 'default', () => Promise.resolve(NAMES));
    await liveness.refresh();
    expect(liveness.lastRefresh).toMatchObject({ path: 'bulk', hosts: 3, describeCalls: 0 });
    expect(NAMES.map((h) => liveness.isUp(h))).toEqual([true, true, true]);
  });

  it('is one failure domain: frozen, all its hosts read down; resumed, all up again', async () => {
    const downAfterMs = 5_000;
    const liveness = new TaskQueuePollerLiveness(
      stack.connection!,
      'default',
      () => Promise.resolve(NAMES),
      downAfterMs
    );
    const upHosts = async () => {
      await liveness.refresh();
      return NAMES.filter((h) => liveness.isUp(h));
    };
    expect(await upHosts()).toEqual(NAMES);
    await stack.worker('compute').signal('SIGSTOP');
    try {
      // Down within the window plus one long poll (10 s on this server), with margin for a loaded machine.
      await until('every host of the frozen process down', 60_000, async () =>
        (await upHosts()).length === 0 ? true : undefined
      );
    } finally {
      await stack.worker('compute').signal('SIGCONT');
    }
    await until('every host up again', 30_000, async () => ((await upHosts()).length === 3 ? true : undefined));
    await assertConsistent(stack);
  });
});
