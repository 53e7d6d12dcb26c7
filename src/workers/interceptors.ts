import type { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next, WorkerOptions } from '@temporalio/worker';

import { SELF_HEARTBEATING } from '../activities/compute';
import { DomainError } from '../domain/errors';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/activity-options';
import { applicationFailureOf } from '../shared/wire-failure';

/**
 * Sends domain errors across the wire as typed ApplicationFailures with their structured details
 * (the field of an InvalidRequest, the hosts tried …), non-retryable where no retry can help. The
 * translation is the one the workflows' interceptor uses (src/shared/wire-failure.ts).
 */
export class DomainErrorInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      if (err instanceof DomainError) {
        throw applicationFailureOf(err, NON_RETRYABLE_ERROR_TYPES.includes(err.name));
      }
      throw err;
    }
  }
}

/** How often, at most, the automatic heartbeat beats (and the compute worker sends heartbeats on). */
export const AUTO_HEARTBEAT_MS = 1_000;

/**
 * Heartbeats an activity that has a heartbeat timeout and does not heartbeat itself, every second (four times per timeout when that is under four seconds) until it ends. A live worker
 * so keeps its short steps alive however long the host takes; a frozen or dead one stops beating and
 * its step times out in seconds. Activities `leaveAlone` names heartbeat their own progress details
 * and are not touched.
 */
export class AutoHeartbeatInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly leaveAlone: (activityType: string) => boolean
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const { activityType, heartbeatTimeoutMs } = this.ctx.info;
    if (!heartbeatTimeoutMs || this.leaveAlone(activityType)) return next(input);
    const every = Math.max(100, Math.min(AUTO_HEARTBEAT_MS, heartbeatTimeoutMs / 4));
    // No beat at once: a step that ends within `every` (most do) sends none, which the server need not
    // record; the first beat, `every` in, is still four within the heartbeat timeout.
    const timer = setInterval(() => this.ctx.heartbeat(), every);
    try {
      return await next(input);
    } finally {
      clearInterval(timer);
    }
  }
}

export const activityInterceptors = { activity: [() => ({ inbound: new DomainErrorInterceptor() })] };

/**
 * What a compute worker adds to its options: typed domain errors and the automatic heartbeat of every
 * step but those that heartbeat themselves (`leaveAlone`, by default SELF_HEARTBEATING), with heartbeats
 * sent on every beat (not held back to 0.8 × the heartbeat timeout), so a heartbeat timeout of a few
 * seconds has margin.
 */
export function computeWorkerOptions(
  leaveAlone: (activityType: string) => boolean = (type) => SELF_HEARTBEATING.has(type)
): Pick<WorkerOptions, 'interceptors' | 'maxHeartbeatThrottleInterval'> {
  return {
    interceptors: {
      activity: [
        () => ({ inbound: new DomainErrorInterceptor() }),
        (ctx) => ({ inbound: new AutoHeartbeatInterceptor(ctx, leaveAlone) }),
      ],
    },
    maxHeartbeatThrottleInterval: AUTO_HEARTBEAT_MS,
  };
}
