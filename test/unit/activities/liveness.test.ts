import type { Connection } from '@temporalio/client';
import { describe, expect, it } from 'vitest';

import { StaticLiveness, TaskQueuePollerLiveness, timestampMs } from '../../../src/activities/scheduler/liveness';

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
