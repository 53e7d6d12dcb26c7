import type { Connection } from '@temporalio/client';
import { describe, expect, it } from 'vitest';

import {
  BULK_RETRY_REFRESHES,
  TaskQueuePollerLiveness,
  WORKER_HEARTBEAT_MS,
} from '../../../src/activities/scheduler/liveness';

/** Protobuf decodes int64 seconds as a Long; only its toString matters here. */
const long = (n: number) => ({ toString: () => String(n) });
const ts = (ms: number) => ({ seconds: long(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });

interface Beat {
  queue: string;
  heartbeatMs: number;
  status?: number;
  freeSlots?: number;
  lastPollMs?: number;
}

/**
 * A server that answers ListWorkers from a table of worker heartbeats (paged `pageSize` at a time, or
 * refusing with a gRPC code), and DescribeTaskQueue from tables of pollers and backlogs, counting calls.
 */
function fakeServer(opts: {
  beats: Beat[];
  pollers?: Record<string, number[]>;
  backlogs?: Record<string, { count: number; ageMs: number }>;
  listWorkersCode?: number;
  pageSize?: number;
}) {
  const calls = { listWorkers: 0, describe: [] as string[] };
  const pageSize = opts.pageSize ?? 1000;
  const connection = {
    workflowService: {
      listWorkers: ({ nextPageToken }: { nextPageToken?: Uint8Array }) => {
        calls.listWorkers++;
        if (opts.listWorkersCode !== undefined)
          return Promise.reject(Object.assign(new Error('refused'), { code: opts.listWorkersCode }));
        const from = nextPageToken && nextPageToken.length > 0 ? Number(new TextDecoder().decode(nextPageToken)) : 0;
        const page = opts.beats.slice(from, from + pageSize);
        const next = new TextEncoder().encode(from + pageSize < opts.beats.length ? String(from + pageSize) : '');
        return Promise.resolve({
          workersInfo: page.map((b) => ({
            workerHeartbeat: {
              taskQueue: b.queue,
              status: b.status ?? 1,
              heartbeatTime: ts(b.heartbeatMs),
              activityTaskSlotsInfo: { currentAvailableSlots: b.freeSlots ?? 10 },
              activityPollerInfo: b.lastPollMs === undefined ? {} : { lastSuccessfulPollTime: ts(b.lastPollMs) },
            },
          })),
          nextPageToken: next,
        });
      },
      describeTaskQueue: ({ taskQueue }: { taskQueue: { name: string } }) => {
        calls.describe.push(taskQueue.name);
        const backlog = opts.backlogs?.[taskQueue.name];
        return Promise.resolve({
          pollers: (opts.pollers?.[taskQueue.name] ?? []).map((ms) => ({ lastAccessTime: ts(ms) })),
          stats: backlog && {
            approximateBacklogCount: long(backlog.count),
            approximateBacklogAge: ts(backlog.ageMs),
          },
        });
      },
    },
  } as unknown as Connection;
  return { connection, calls };
}

const now = 1_800_000_000_000;
const names = (n: number) => Array.from({ length: n }, (_, i) => `node-${i + 1}`);

describe('TaskQueuePollerLiveness, bulk path (worker heartbeats)', () => {
  it('sees 1,000 heartbeating hosts up with one ListWorkers page chain and no DescribeTaskQueue', async () => {
    const hosts = names(1000);
    // The scheduler's and conductor's own workers are listed too, and ignored.
    const beats: Beat[] = [
      ...hosts.map((h) => ({ queue: `compute-${h}`, heartbeatMs: now - WORKER_HEARTBEAT_MS })),
      { queue: 'scheduler', heartbeatMs: now - 1_000 },
      { queue: 'conductor', heartbeatMs: now - 1_000 },
    ];
    const { connection, calls } = fakeServer({ beats, pageSize: 400 });
    const liveness = new TaskQueuePollerLiveness(
      connection,
      'default',
      () => Promise.resolve(hosts),
      60_000,
      () => now
    );
    await liveness.refresh();
    expect(hosts.every((h) => liveness.isUp(h))).toBe(true);
    expect(calls.listWorkers).toBe(3);
    expect(calls.describe).toEqual([]);
    expect(liveness.lastRefresh).toEqual({ path: 'bulk', hosts: 1000, listWorkersCalls: 3, describeCalls: 0 });
  });

  it('describes only the suspects: a stale heartbeat, a saturated worker, a host not listed', async () => {
    const { connection, calls } = fakeServer({
      beats: [
        { queue: 'compute-fresh', heartbeatMs: now - 1_000 },
        { queue: 'compute-stale', heartbeatMs: now - 8_000 },
        { queue: 'compute-full', heartbeatMs: now - 1_000, freeSlots: 0, lastPollMs: now - 30_000 },
        { queue: 'compute-busy', heartbeatMs: now - 1_000, freeSlots: 0, lastPollMs: now - 2_000 },
      ],
      pollers: { 'compute-stale': [now - 7_000], 'compute-full': [now - 30_000], 'compute-unlisted': [now - 3_000] },
      backlogs: { 'compute-full': { count: 4, ageMs: 9_000 } },
    });
    const hosts = ['fresh', 'stale', 'full', 'busy', 'unlisted'];
    const liveness = new TaskQueuePollerLiveness(
      connection,
      'default',
      () => Promise.resolve(hosts),
      60_000,
      () => now
    );
    await liveness.refresh();
    expect(calls.describe.sort()).toEqual(['compute-full', 'compute-stale', 'compute-unlisted']);
    // Stale heartbeat but polled 7 s ago: within the window, up. Full: tasks wait 9 s, no poll for them: sick.
    expect(hosts.map((h) => liveness.isUp(h))).toEqual([true, true, false, true, true]);
    expect(liveness.reason('full')).toBe('sick');
  });

  it('takes a frozen host (heartbeats stopped, tasks waiting) out as sick, then down past the window, and up again on its next heartbeat', async () => {
    let clock = now;
    const beats: Beat[] = [{ queue: 'compute-a', heartbeatMs: now - 1_000 }];
    const pollers: Record<string, number[]> = { 'compute-a': [now - 1_000] };
    const backlogs: Record<string, { count: number; ageMs: number }> = {};
    const { connection, calls } = fakeServer({ beats, pollers, backlogs });
    const liveness = new TaskQueuePollerLiveness(
      connection,
      'default',
      () => Promise.resolve(['a']),
      20_000,
      () => clock
    );
    await liveness.refresh();
    expect(liveness.isUp('a')).toBe(true);
    // SIGSTOP: no heartbeat since now - 1 s; its long poll still shows until it expires (10 s).
    pollers['compute-a'] = [now + 9_000];
    backlogs['compute-a'] = { count: 1, ageMs: 6_000 };
    clock = now + 16_000;
    await liveness.refresh();
    expect(liveness.reason('a')).toBe('sick');
    backlogs['compute-a'] = { count: 0, ageMs: 0 };
    clock = now + 9_000 + 20_001;
    await liveness.refresh();
    expect(liveness.reason('a')).toBe('down');
    // Down and not heartbeating: no more describes for it.
    const described = calls.describe.length;
    clock += 5_000;
    await liveness.refresh();
    expect(calls.describe.length).toBe(described);
    expect(liveness.isUp('a')).toBe(false);
    // SIGCONT: the next heartbeat brings it back at once.
    beats[0] = { queue: 'compute-a', heartbeatMs: clock - 500 };
    await liveness.refresh();
    expect(liveness.isUp('a')).toBe(true);
  });

  it('does not count a worker that is shutting down or shut down', async () => {
    const { connection } = fakeServer({
      beats: [
        { queue: 'compute-a', heartbeatMs: now - 1_000, status: 3 },
        { queue: 'compute-b', heartbeatMs: now - 1_000, status: 2 },
      ],
    });
    const liveness = new TaskQueuePollerLiveness(
      connection,
      'default',
      () => Promise.resolve(['a', 'b']),
      60_000,
      () => now
    );
    await liveness.refresh();
    expect([liveness.isUp('a'), liveness.isUp('b')]).toEqual([false, false]);
  });

  it('falls back to one DescribeTaskQueue per host when the server refuses ListWorkers, and asks again later', async () => {
    const server = fakeServer({ beats: [], pollers: { 'compute-a': [now - 1_000] }, listWorkersCode: 12 });
    const liveness = new TaskQueuePollerLiveness(
      server.connection,
      'default',
      () => Promise.resolve(['a', 'b']),
      60_000,
      () => now
    );
    await liveness.refresh();
    expect(liveness.lastRefresh?.path).toBe('per-host');
    expect([liveness.isUp('a'), liveness.isUp('b')]).toEqual([true, false]);
    for (let i = 0; i < BULK_RETRY_REFRESHES; i++) await liveness.refresh();
    expect(server.calls.listWorkers).toBe(1);
    await liveness.refresh();
    expect(server.calls.listWorkers).toBe(2);
  });

  it('looks per host when ListWorkers lists no heartbeat at all (a server just restarted, or without heartbeats)', async () => {
    const { connection, calls } = fakeServer({ beats: [], pollers: { 'compute-a': [now - 1_000] } });
    const liveness = new TaskQueuePollerLiveness(
      connection,
      'default',
      () => Promise.resolve(['a']),
      60_000,
      () => now
    );
    await liveness.refresh();
    expect(liveness.lastRefresh?.path).toBe('per-host');
    expect(calls.describe).toEqual(['compute-a']);
    expect(liveness.isUp('a')).toBe(true);
  });
});
