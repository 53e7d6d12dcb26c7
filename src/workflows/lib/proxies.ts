/**
 * Activity proxies, one per destination: the conductor's own queue (store), the scheduler queue (an
 * awaited call, like Nova's select_destinations), and a per-call proxy on `compute-<host>` (Nova's cast
 * to the host's topic). Options come from the one module that holds timeouts and retry policies.
 */
import { ActivityCancellationType, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

import type { ComputeActivities } from '../../activities/compute';
import type { ConductorActivities } from '../../activities/conductor';
import type { SchedulerActivities } from '../../activities/scheduler';
import type { ComputeTimeouts } from '../../shared/activity-options';
import {
  CONDUCTOR_DB,
  CONDUCTOR_LOCAL_DB,
  computeLongStep,
  computeCleanupRetriedOnce,
  computeCleanupStep,
  computeShortStep,
  SCHEDULER_CALL,
  SILENT_HOST_CLEANUP_SECONDS,
} from '../../shared/activity-options';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../../shared/task-queues';

export const conductor = proxyActivities<ConductorActivities>({ taskQueue: CONDUCTOR_TASK_QUEUE, ...CONDUCTOR_DB });

/** The same conductor writes as local activities: the build's bookkeeping, batched per step (kernel.ts). */
export const conductorLocal = proxyLocalActivities<ConductorActivities>(CONDUCTOR_LOCAL_DB);

export const scheduler = proxyActivities<SchedulerActivities>({ taskQueue: SCHEDULER_TASK_QUEUE, ...SCHEDULER_CALL });

/** The summary the next compute activity is scheduled with (Temporal's user metadata), while a step starts. */
let stepSummary: string | undefined;

/**
 * Runs `start` with `summary` as the summary of the compute activities it schedules before its first
 * await (a step's call): the Web UI's timeline shows "spawn on node-2, attempt 2", not only the type.
 */
export function withActivitySummary<T>(summary: string, start: () => Promise<T>): Promise<T> {
  stepSummary = summary;
  try {
    return start();
  } finally {
    stepSummary = undefined;
  }
}

/**
 * A compute proxy's options: the SDK reads them (spreads them) at each call, so the summary is the one
 * of the step scheduling it. Metadata only: the commands are the same, so histories replay unchanged.
 */
function withSummary<O extends object>(options: O): O & { readonly summary: string | undefined } {
  return {
    ...options,
    get summary() {
      return stepSummary;
    },
  };
}

/** Activities on one host's queue: `short` for quick steps, `long` for heartbeating ones (spawn, disk moves). */
export function computeOn(host: string, timeouts: ComputeTimeouts) {
  const taskQueue = computeTaskQueue(host);
  return {
    short: proxyActivities<ComputeActivities>(withSummary({ taskQueue, ...computeShortStep(timeouts) })),
    long: proxyActivities<ComputeActivities>(withSummary({ taskQueue, ...computeLongStep(timeouts) })),
    /** A long step whose cancellation waits for the activity's own answer (it may complete regardless). */
    longAwaitingCancel: proxyActivities<ComputeActivities>(
      withSummary({
        taskQueue,
        ...computeLongStep(timeouts),
        cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      })
    ),
    /** Clean-up on a host that may be down: give up quickly, the host reconciles when it returns. */
    cleanup: proxyActivities<ComputeActivities>(
      withSummary({
        taskQueue,
        ...computeCleanupStep(timeouts),
      })
    ),
    /** Clean-up the instance's end depends on: one more try when the worker died holding the task. */
    cleanupRetriedOnce: proxyActivities<ComputeActivities>(
      withSummary({ taskQueue, ...computeCleanupRetriedOnce(timeouts) })
    ),
    /** Clean-up on a host that has just gone silent (a heartbeat timed out there): a try of seconds. */
    cleanupSilent: proxyActivities<ComputeActivities>(
      withSummary({
        taskQueue,
        ...computeShortStep({
          ...timeouts,
          scheduleToStartSeconds: Math.min(timeouts.scheduleToStartSeconds, SILENT_HOST_CLEANUP_SECONDS),
          heartbeatSeconds: Math.min(timeouts.heartbeatSeconds, SILENT_HOST_CLEANUP_SECONDS),
        }),
      })
    ),
  };
}
