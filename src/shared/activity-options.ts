/**
 * The only place with activity timeouts and retry policies. Workflows build their proxies from these
 * presets (src/workflows/lib/proxies.ts); anything a caller may shorten (tests, impatient operators)
 * comes in through the workflow input as `ComputeTimeouts`.
 */
import { ActivityCancellationType } from '@temporalio/common';
import type { ActivityOptions, LocalActivityOptions, RetryPolicy } from '@temporalio/common';

import { FailureType } from '../domain/errors';
import type { ComputeTimeoutsInput } from '../domain/schemas';

/** Errors no retry can fix: they fail the activity at once and the workflow decides. */
export const NON_RETRYABLE_ERROR_TYPES: readonly string[] = [
  FailureType.InvalidRequest,
  FailureType.NoValidHost,
  FailureType.MaxRetriesExceeded,
  FailureType.InstanceInvalidState,
  FailureType.InstanceNotFound,
  FailureType.Rescheduled,
  FailureType.BuildAborted,
  FailureType.ClaimFailed,
  FailureType.MigrationError,
  FailureType.MigrationPreCheckError,
  FailureType.LiveMigrationAborted,
  FailureType.GroupAffinityViolation,
  FailureType.ServerGroupNotFound,
  FailureType.ServerGroupInUse,
];

/** Conductor (store) activities: short, retried until the store answers. */
export const CONDUCTOR_DB: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '500 milliseconds',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  },
};

/**
 * Conductor writes run as local activities on the workflow's own worker (the conductor worker holds the
 * store): a step's bookkeeping costs no server round trip, only a marker in the history. Each is one
 * short transaction, idempotent per call (its write key), retried the same way as CONDUCTOR_DB.
 */
export const CONDUCTOR_LOCAL_DB: LocalActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: CONDUCTOR_DB.retry,
};

/**
 * Scheduler calls (selectDestinations, claims): the conductor waits on them like Nova's RPC call. Sized to
 * the real work (a selection with its claim takes milliseconds at 10,000 hosts, seconds under heavy claim
 * contention), so a call lost with a killed scheduler process is retried in seconds, not after a minute.
 */
export const SCHEDULER_CALL: ActivityOptions = {
  startToCloseTimeout: '15 seconds',
  retry: {
    initialInterval: '500 milliseconds',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    maximumAttempts: 10,
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  },
};

/**
 * The reschedule budget: the RetryPolicy of a placement-attempt child workflow (placementAttempt;
 * resizeAttempt for resizes started before it), one run per host of the scheduler's list, so the server drives Nova's reschedules and
 * their backoff. `abortTypes` end the attempts at once: no other host can fix them.
 */
export function placementAttemptRetry(hosts: number, abortTypes: readonly string[]): RetryPolicy {
  return {
    maximumAttempts: hosts,
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    nonRetryableErrorTypes: [...abortTypes],
  };
}

/**
 * Timeouts of activities on a compute host's queue. Seconds; workflow inputs may override them, and
 * their defaults are DEFAULT_COMPUTE_TIMEOUTS (src/domain/schemas/common.ts).
 */
export type ComputeTimeouts = ComputeTimeoutsInput;

/**
 * A busy hypervisor is retried on the same host (the only transient compute fault); everything else is
 * decided by the workflow. Attempts stay few: retries land on the same host.
 */
const COMPUTE_RETRY: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '10 seconds',
  maximumAttempts: 3,
  nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
};

/**
 * Long compute steps (spawn, disk transfer): heartbeating, and a schedule-to-start timeout because a
 * task on a host queue can only ever be taken by that host's worker.
 */
export function computeLongStep(t: ComputeTimeouts): ActivityOptions {
  return {
    scheduleToStartTimeout: `${t.scheduleToStartSeconds} seconds`,
    startToCloseTimeout: `${t.longStepSeconds} seconds`,
    heartbeatTimeout: `${t.heartbeatSeconds} seconds`,
    retry: COMPUTE_RETRY,
    // A cancelled long step is waited for, so compensation never races a spawn or a disk transfer
    // still running on the host (the half-made guest is gone before the rollback starts).
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
}

/**
 * The heartbeat timeout of a short compute step, at most: the compute worker heartbeats every step that
 * does not heartbeat itself about once a second while it runs (src/workers/interceptors.ts), so a silent
 * step means a frozen or dead worker, known in seconds rather than at the start-to-close timeout.
 */
export const SHORT_STEP_HEARTBEAT_SECONDS = 3;

/**
 * The retry-policy type of a heartbeat timeout (the server's `TemporalTimeout:` prefix and the timeout
 * type's name): listed as non-retryable, a step whose worker went silent is not retried on that host.
 */
export const HEARTBEAT_TIMEOUT_RETRY_TYPE = 'TemporalTimeout:Heartbeat';

/**
 * The timeouts of a best-effort clean-up on a host that has just gone silent (a step's heartbeat timed
 * out there): it is not going to answer soon, so the clean-up gives up in seconds rather than hold up a
 * reschedule; what it leaves, the host cleans up when it reconciles.
 */
export const SILENT_HOST_CLEANUP_SECONDS = 2;

/**
 * A clean-up on a host that may be down: a short step given up on when no worker of the host takes it
 * within 10 s; what it leaves, the host cleans up when it reconciles.
 */
export function computeCleanupStep(t: ComputeTimeouts): ActivityOptions {
  return computeShortStep({ ...t, scheduleToStartSeconds: Math.min(t.scheduleToStartSeconds, 10) });
}

/**
 * A clean-up the instance's end depends on (the source's guest after a live migration's switch-over):
 * as computeCleanupStep, but a task its worker died holding (handed to it as it was killed: the
 * heartbeat stops) gets one more try, which the host's restarted worker takes when it is back by then.
 */
export function computeCleanupRetriedOnce(t: ComputeTimeouts): ActivityOptions {
  return { ...computeCleanupStep(t), retry: { ...COMPUTE_RETRY, maximumAttempts: 2 } };
}

/**
 * Short compute steps (networks, block devices, power, destroy). A task handed to a worker that then
 * froze (SIGSTOP, a hung process: its open long polls still take tasks) fails on its heartbeat timeout
 * and is not retried on the same host: the workflow decides at once (a placement attempt reschedules, a
 * stop or start fails ComputeHostUnavailable).
 */
export function computeShortStep(t: ComputeTimeouts): ActivityOptions {
  return {
    scheduleToStartTimeout: `${t.scheduleToStartSeconds} seconds`,
    startToCloseTimeout: `${Math.max(t.heartbeatSeconds, 60)} seconds`,
    heartbeatTimeout: `${Math.min(t.heartbeatSeconds, SHORT_STEP_HEARTBEAT_SECONDS)} seconds`,
    retry: {
      ...COMPUTE_RETRY,
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES, HEARTBEAT_TIMEOUT_RETRY_TYPE],
    },
  };
}
