import type { Connection } from '@temporalio/client';
import { describe, expect, it } from 'vitest';

import {
  DEFAULT_DOWN_AFTER_MS,
  StaticLiveness,
  TaskQueuePollerLiveness,
  timestampMs,
} from '../../../src/activities/scheduler/liveness';
import { EnvSchema } from '../../../src/workers/config';

/** Protobuf decodes int64 seconds as a Long; only its toString matters here. */
const long = (n: number) => ({ toString: () => String(n) });

/**
 * A connection whose describeTaskQueue answers from a table of queue -> poller last-access times (ms),
 * and a table of queue -> backlog (tasks waiting, age of the oldest in ms).
 */
function fakeConnection(
  pollers: Record<string, number[]>,
  backlogs: Record<string, { count: number; ageMs: number }> = {}
): Connection {
  return {
    workflowService: {
      describeTaskQueue: ({ taskQueue }: { taskQueue: { name: string } }) => {
        const backlog = backlogs[taskQueue.name];
        return Promise.resolve({
          pollers: (pollers[taskQueue.name] ?? []).map((ms) => ({
            lastAccessTime: { seconds: long(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 },
          })),
          stats: backlog && {
            approximateBacklogCount: long(backlog.count),
            approximateBacklogAge: {
              seconds: long(Math.floor(backlog.ageMs / 1000)),
              nanos: (backlog.ageMs % 1000) * 1e6,
            },
          },
        });
      },
    },
  } as unknown as Connection;
}

describe('TaskQueuePollerLiveness', () => {
  const now = 1_800_000_000_000;

  it('reports a host up while its queue has a recent poller, with Long protobuf timestamps', async () => {
    const liveness = new TaskQueuePollerLiveness(
      fakeConnection({ 'compute-a': [now - 5_000], 'compute-b': [now - 200_000], 'compute-c': [] }),
      'default',
      () => Promise.resolve(['a', 'b', 'c']),
      90_000,
      () => now
    );
    await liveness.refresh();
    expect(['a', 'b', 'c'].map((h) => liveness.isUp(h))).toEqual([true, false, false]);
  });

  it('takes a sick host out at once: tasks waiting past the sick bound and no poll for them', async () => {
    const liveness = new TaskQueuePollerLiveness(
      fakeConnection(
        { 'compute-frozen': [now - 8_000], 'compute-busy': [now - 500], 'compute-idle': [now - 60_000] },
        {
          'compute-frozen': { count: 2, ageMs: 7_000 },
          'compute-busy': { count: 3, ageMs: 7_000 },
          'compute-idle': { count: 0, ageMs: 0 },
        }
      ),
      'default',
      () => Promise.resolve(['frozen', 'busy', 'idle']),
      90_000,
      () => now,
      5_000
    );
    await liveness.refresh();
    // Frozen: within the liveness window, but its tasks wait and nobody polls. Busy: polled just now.
    // Idle: no poll for a minute (a long poll in flight), nothing waiting.
    expect(['frozen', 'busy', 'idle'].map((h) => liveness.isUp(h))).toEqual([false, true, true]);
    expect(liveness.reason('frozen')).toBe('sick');
  });

  it('looks at a sick host again on recheck: up at once once its restarted worker polls, still sick while nobody does', async () => {
    let clock = now;
    const pollers: Record<string, number[]> = { 'compute-a': [now - 8_000], 'compute-b': [now - 8_000] };
    const backlogs = { 'compute-a': { count: 1, ageMs: 7_000 }, 'compute-b': { count: 1, ageMs: 7_000 } };
    const liveness = new TaskQueuePollerLiveness(
      fakeConnection(pollers, backlogs),
      'default',
      () => Promise.resolve(['a', 'b']),
      60_000,
      () => clock,
      5_000
    );
    await liveness.refresh();
    expect([liveness.isUp('a'), liveness.isUp('b')]).toEqual([false, false]);
    // Two seconds later (before the next refresh): a's worker was restarted and took its task; b is silent.
    clock = now + 2_000;
    pollers['compute-a'] = [clock - 100];
    backlogs['compute-a'] = { count: 0, ageMs: 0 };
    await liveness.recheck('a');
    await liveness.recheck('b');
    expect([liveness.isUp('a'), liveness.isUp('b')]).toEqual([true, false]);
    expect(liveness.reason('b')).toBe('sick');
  });

  it('keeps a host up through one empty poller list (hysteresis), and down once the window passes', async () => {
    let clock = now;
    const pollers: Record<string, number[]> = { 'compute-a': [now - 1_000] };
    const liveness = new TaskQueuePollerLiveness(
      fakeConnection(pollers),
      'default',
      () => Promise.resolve(['a']),
      60_000,
      () => clock
    );
    await liveness.refresh();
    expect(liveness.isUp('a')).toBe(true);
    // The server restarted and forgot its pollers: one empty list is no reason to take the host down.
    pollers['compute-a'] = [];
    clock = now + 10_000;
    await liveness.refresh();
    expect(liveness.isUp('a')).toBe(true);
    clock = now + 61_000;
    await liveness.refresh();
    expect(liveness.isUp('a')).toBe(false);
    expect(liveness.reason('a')).toBe('down');
  });

  it('is down after 60 s without a poll by default (HOST_DOWN_AFTER_SECONDS), and that is configurable', async () => {
    expect(DEFAULT_DOWN_AFTER_MS).toBe(60_000);
    expect(EnvSchema.parse({}).HOST_DOWN_AFTER_SECONDS).toBe(60);
    expect(EnvSchema.parse({ HOST_DOWN_AFTER_SECONDS: '15' }).HOST_DOWN_AFTER_SECONDS).toBe(15);
    expect(EnvSchema.safeParse({ HOST_DOWN_AFTER_SECONDS: 'soon' }).success).toBe(false);
    expect(EnvSchema.safeParse({ HOST_DOWN_AFTER_SECONDS: '0' }).success).toBe(false);
    const hosts = () => Promise.resolve(['fresh', 'stale']);
    const connection = fakeConnection({ 'compute-fresh': [now - 59_000], 'compute-stale': [now - 61_000] });
    const byDefault = new TaskQueuePollerLiveness(connection, 'default', hosts, undefined, () => now);
    await byDefault.refresh();
    expect([byDefault.isUp('fresh'), byDefault.isUp('stale')]).toEqual([true, false]);
    const patient = new TaskQueuePollerLiveness(connection, 'default', hosts, 120_000, () => now);
    await patient.refresh();
    expect([patient.isUp('fresh'), patient.isUp('stale')]).toEqual([true, true]);
  });

  it('stays up through a server restart: refreshes that fail, then an empty poller list, for a few seconds', async () => {
    let clock = now;
    let serverUp = true;
    const pollers: Record<string, number[]> = { 'compute-a': [now - 2_000] };
    const answering = fakeConnection(pollers);
    const connection = {
      workflowService: {
        describeTaskQueue: (req: { taskQueue: { name: string } }) =>
          serverUp
            ? answering.workflowService.describeTaskQueue(req)
            : Promise.reject(new Error('14 UNAVAILABLE: No connection established')),
      },
    } as unknown as Connection;
    const liveness = new TaskQueuePollerLiveness(
      connection,
      'default',
      () => Promise.resolve(['a']),
      20_000,
      () => clock
    );
    await liveness.refresh();
    serverUp = false;
    for (const t of [5_000, 10_000]) {
      clock = now + t;
      await expect(liveness.refresh()).rejects.toThrow(/UNAVAILABLE/);
      expect(liveness.isUp('a')).toBe(true);
    }
    // Back, with its pollers forgotten until the worker polls again.
    serverUp = true;
    pollers['compute-a'] = [];
    clock = now + 15_000;
    await liveness.refresh();
    expect(liveness.isUp('a')).toBe(true);
    pollers['compute-a'] = [now + 16_000];
    clock = now + 30_000;
    await liveness.refresh();
    expect(liveness.isUp('a')).toBe(true);
    // No poll since then for longer than the window: down.
    clock = now + 16_000 + 20_001;
    pollers['compute-a'] = [];
    await liveness.refresh();
    expect(liveness.reason('a')).toBe('down');
  });

  it('treats a host it has not looked at yet as up, so a newly registered host is schedulable', () => {
    const liveness = new TaskQueuePollerLiveness(fakeConnection({}), 'default', () => Promise.resolve([]));
    expect(liveness.isUp('new-host')).toBe(true);
  });

  it('converts protobuf timestamps whatever the seconds type', () => {
    expect(timestampMs({ seconds: long(12), nanos: 5e8 })).toBe(12_500);
    expect(timestampMs({ seconds: 3, nanos: 0 })).toBe(3_000);
    expect(timestampMs(null)).toBe(0);
  });
});

describe('StaticLiveness', () => {
  it('reports down only the hosts a test marks down', () => {
    const liveness = new StaticLiveness();
    liveness.down.add('x');
    expect([liveness.isUp('x'), liveness.isUp('y')]).toEqual([false, true]);
  });
});
