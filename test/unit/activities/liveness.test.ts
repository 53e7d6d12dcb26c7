import type { Connection } from '@temporalio/client';
import { describe, expect, it } from 'vitest';

import { StaticLiveness, TaskQueuePollerLiveness, timestampMs } from '../../../src/activities/scheduler/liveness';

/** Protobuf decodes int64 seconds as a Long; only its toString matters here. */
const long = (n: number) => ({ toString: () => String(n) });

/** A connection whose describeTaskQueue answers from a table of queue -> poller last-access times (ms). */
function fakeConnection(pollers: Record<string, number[]>): Connection {
  return {
    workflowService: {
      describeTaskQueue: ({ taskQueue }: { taskQueue: { name: string } }) =>
        Promise.resolve({
          pollers: (pollers[taskQueue.name] ?? []).map((ms) => ({
            lastAccessTime: { seconds: long(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 },
          })),
        }),
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
