import { ActivityFailure, ApplicationFailure, RetryState, TimeoutFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';

import { ComputeHostUnavailable } from '../../../src/domain/errors';
import { StopInputSchema } from '../../../src/domain/schemas';
import { toWireFailure } from '../../../src/workflows/lib/failures';
import {
  describePowerOff,
  hostFailure,
  MAX_SHUTDOWN_POLLS,
  MAX_SHUTDOWN_ROUNDS,
  resolveShutdownTimeout,
  shutdownPolls,
  shutdownWaits,
} from '../../../src/workflows/stop';

describe('stop: the shutdown timeout', () => {
  it("is 60 s by default, the image's os_shutdown_timeout over that, the input over both", () => {
    expect(resolveShutdownTimeout({})).toEqual({ seconds: 60, source: 'default' });
    expect(resolveShutdownTimeout({ imageOsShutdownTimeoutSeconds: 300 })).toEqual({ seconds: 300, source: 'image' });
    expect(resolveShutdownTimeout({ imageOsShutdownTimeoutSeconds: 300, shutdownTimeoutSeconds: 5 })).toEqual({
      seconds: 5,
      source: 'request',
    });
    // 0 is a value, not an absence: an image or a request of 0 means a forced power-off at once.
    expect(resolveShutdownTimeout({ imageOsShutdownTimeoutSeconds: 0 })).toEqual({ seconds: 0, source: 'image' });
    expect(resolveShutdownTimeout({ imageOsShutdownTimeoutSeconds: 30, shutdownTimeoutSeconds: 0 })).toEqual({
      seconds: 0,
      source: 'request',
    });
  });

  it('is waited out in retry intervals, the last one cut short', () => {
    expect(shutdownWaits(60, 10)).toEqual([10, 10, 10, 10, 10, 10]);
    expect(shutdownWaits(25, 10)).toEqual([10, 10, 5]);
    expect(shutdownWaits(5, 10)).toEqual([5]);
    expect(shutdownWaits(0, 10)).toEqual([]);
  });

  it('never takes more than MAX_SHUTDOWN_ROUNDS rounds: a long timeout stretches the interval', () => {
    const waits = shutdownWaits(3600, 1);
    expect(waits.length).toBeLessThanOrEqual(MAX_SHUTDOWN_ROUNDS);
    expect(waits.reduce((a, b) => a + b, 0)).toBe(3600);
  });

  it("reads the guest's power state each second between requests, less often for a long timeout", () => {
    expect(shutdownPolls(10, 60)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(shutdownPolls(5, 25)).toEqual([1, 1, 1, 1, 1]);
    // 3600 s: every 10 s, so the whole stop reads at most MAX_SHUTDOWN_POLLS times.
    const polls = shutdownWaits(3600, 10).flatMap((wait) => shutdownPolls(wait, 3600));
    expect(polls.length).toBeLessThanOrEqual(MAX_SHUTDOWN_POLLS);
    expect(polls.reduce((a, b) => a + b, 0)).toBe(3600);
  });

  it('is named in the event, with how the guest went off', () => {
    const timeout = { seconds: 30, source: 'image' as const };
    expect(describePowerOff({ how: 'already-off', requests: 0, waitedSeconds: 0 }, timeout)).toBe(
      'guest already off: nothing to do'
    );
    expect(describePowerOff({ how: 'graceful', requests: 2, waitedSeconds: 20 }, timeout)).toBe(
      'graceful shutdown: the guest powered off within 20 s of 2 ACPI request(s)'
    );
    expect(describePowerOff({ how: 'forced', requests: 3, waitedSeconds: 30 }, timeout)).toBe(
      "forced power-off: the guest was still on after 3 ACPI request(s) and the shutdown timeout of 30 s (the image's os_shutdown_timeout)"
    );
    expect(describePowerOff({ how: 'crashed', requests: 0, waitedSeconds: 0 }, timeout)).toBe(
      'guest had crashed: forced power-off, no graceful shutdown'
    );
    expect(describePowerOff({ how: 'forced', requests: 0, waitedSeconds: 0 }, { seconds: 0, source: 'request' })).toBe(
      'forced power-off: shutdown timeout 0 s (the request), no graceful shutdown'
    );
  });
});

describe('stop: input', () => {
  it('defaults the retry interval to 10 s and the compute timeouts, leaving the timeout to be resolved', () => {
    const parsed = StopInputSchema.parse({ instanceId: '0b0d6a43-3c4e-4d7c-9a51-1f0f7c6f0c11' });
    expect(parsed).toEqual({
      instanceId: '0b0d6a43-3c4e-4d7c-9a51-1f0f7c6f0c11',
      shutdownRetryIntervalSeconds: 10,
      timeouts: { scheduleToStartSeconds: 60, heartbeatSeconds: 30, longStepSeconds: 1800 },
    });
    expect(resolveShutdownTimeout(parsed)).toEqual({ seconds: 60, source: 'default' });
  });
});

describe('stop: a compute host that does not answer', () => {
  it('is ComputeHostUnavailable, naming the host and the timeout; other failures pass through', () => {
    const timedOut = new ActivityFailure(
      'activity timed out',
      'getPowerState',
      '1',
      RetryState.TIMEOUT,
      'conductor',
      new TimeoutFailure('timed out', undefined, 'SCHEDULE_TO_START')
    );
    // A domain error, typed on the wire by the one translation (the frame's, the workflow interceptor's).
    const mapped = hostFailure(timedOut, 'node-1');
    expect(mapped).toBeInstanceOf(ComputeHostUnavailable);
    const message = 'Compute host node-1 is unavailable: it did not answer (SCHEDULE_TO_START timeout)';
    expect(mapped).toMatchObject({ name: 'ComputeHostUnavailable', message });
    const wire = toWireFailure(mapped);
    expect(wire).toBeInstanceOf(ApplicationFailure);
    expect(wire).toMatchObject({ type: 'ComputeHostUnavailable', nonRetryable: true, message });
    const notFound = ApplicationFailure.create({ type: 'InstanceNotFound', message: 'gone' });
    expect(hostFailure(notFound, 'node-1')).toBe(notFound);
  });
});
