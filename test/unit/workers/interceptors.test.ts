import type { Context } from '@temporalio/activity';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { createComputeActivities, SELF_HEARTBEATING } from '../../../src/activities/compute';
import { FakeDriver } from '../../../src/compute/fake';
import { AutoHeartbeatInterceptor } from '../../../src/workers/interceptors';

/** A context with what the interceptor reads, and the heartbeats it sends. */
function fakeContext(activityType: string, heartbeatTimeoutMs: number | undefined) {
  const heartbeat = vi.fn();
  const ctx = { info: { activityType, heartbeatTimeoutMs }, heartbeat } as unknown as Context;
  return { ctx, heartbeat };
}

/** Runs one activity through the interceptor; it ends when `finish` is called. */
function runThrough(interceptor: AutoHeartbeatInterceptor) {
  let finish = (_value: unknown) => undefined as void;
  const body = new Promise<unknown>((resolve) => (finish = resolve));
  const result = interceptor.execute({ args: [], headers: {} }, () => body);
  return { finish, result };
}

const leaveAlone = (type: string) => SELF_HEARTBEATING.has(type);

describe('AutoHeartbeatInterceptor', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('heartbeats a step every second while it runs (none at once), and stops when it ends', async () => {
    const { ctx, heartbeat } = fakeContext('finishResize', 30_000);
    const { finish, result } = runThrough(new AutoHeartbeatInterceptor(ctx, leaveAlone));
    expect(heartbeat).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(heartbeat).toHaveBeenCalledTimes(5);
    finish({ ok: true });
    await expect(result).resolves.toEqual({ ok: true });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(heartbeat).toHaveBeenCalledTimes(5);
    // No details: a short step's retry reads none.
    expect(heartbeat.mock.calls.every((call) => call.length === 0)).toBe(true);
  });

  it('beats four times per heartbeat timeout when that is shorter than four seconds', async () => {
    const { ctx, heartbeat } = fakeContext('allocateNetworks', 3_000);
    const { finish, result } = runThrough(new AutoHeartbeatInterceptor(ctx, leaveAlone));
    await vi.advanceTimersByTimeAsync(3_000);
    expect(heartbeat).toHaveBeenCalledTimes(4);
    finish(undefined);
    await result;
  });

  it('sends no heartbeat for a step that ends before the first beat, and lets its error through', async () => {
    const { ctx, heartbeat } = fakeContext('prepareBlockDevices', 3_000);
    const interceptor = new AutoHeartbeatInterceptor(ctx, leaveAlone);
    await expect(
      interceptor.execute({ args: [], headers: {} }, () => Promise.reject(new Error('disk on fire')))
    ).rejects.toThrow('disk on fire');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(heartbeat).not.toHaveBeenCalled();
  });

  it.each(['spawnInstance', 'rebuildSpawn', 'resizeInstance'])(
    'leaves %s alone: it heartbeats its own progress details, which a retry reads',
    async (activityType) => {
      const { ctx, heartbeat } = fakeContext(activityType, 30_000);
      const { finish, result } = runThrough(new AutoHeartbeatInterceptor(ctx, leaveAlone));
      await vi.advanceTimersByTimeAsync(5_000);
      finish(undefined);
      await result;
      expect(heartbeat).not.toHaveBeenCalled();
    }
  );

  it('leaves an activity with no heartbeat timeout alone', async () => {
    const { ctx, heartbeat } = fakeContext('listGuests', undefined);
    const { finish, result } = runThrough(new AutoHeartbeatInterceptor(ctx, leaveAlone));
    await vi.advanceTimersByTimeAsync(5_000);
    finish(undefined);
    await result;
    expect(heartbeat).not.toHaveBeenCalled();
  });
});

describe('SELF_HEARTBEATING', () => {
  it('names only compute activities that exist as heartbeating themselves', () => {
    vi.useRealTimers();
    const names = Object.keys(
      createComputeActivities({ host: 'h', driver: new FakeDriver({ host: 'h', stateDir: '/nonexistent' }) })
    );
    expect([...SELF_HEARTBEATING].filter((name) => !names.includes(name))).toEqual([]);
  });
});
