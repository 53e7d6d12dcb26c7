/**
 * What every placement attempt shares, whatever it places (a build, a resize's destination): one run of
 * a child workflow per host of the scheduler's list, whose RetryPolicy.maximumAttempts is the reschedule
 * budget. Run N takes host N; its steps run on the kernel (the task state, the parent told, the event
 * recorded), its compensations undo what it did on that host, and its failure is either an abort (no
 * other host can fix it: non-retryable) or `Rescheduled` (retryable: the server starts the next run on
 * the next alternate).
 */
import {
  ApplicationFailure,
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  workflowInfo,
} from '@temporalio/workflow';

import { FailureType } from '../../domain/errors';
import type { TaskState, VmState } from '../../domain/instance';
import { PowerState } from '../../domain/instance';
import { placementProgressSignal } from '../../shared/messages';
import { failureMessage, failureType, isFailureOfType, timeoutType, typedFailure } from './failures';
import { tagInstance } from './instance-attributes';
import type { StepRunner, StepSpec } from './kernel';
import type { EventBatch } from './operation';
import { runStep, withKernel } from './kernel';

export interface PlacementAttempt {
  /** 1-based: the run of the child workflow. */
  attempt: number;
  /** The host of this run: hosts[attempt - 1]. */
  host: string;
  /**
   * This run as a kernel operation: its steps' events go on `actionId`, its progress names the host.
   * With `batch`, a batched operation (its events go with its next write, its writes are local).
   */
  operation(what: {
    actionId: string;
    operation: string;
    vmState: VmState;
    taskState: TaskState;
    batch?: EventBatch;
  }): StepRunner;
  /**
   * Runs one step of this attempt on the kernel, telling the parent which host and step it is on. A
   * batched operation tells it only of the steps marked `tellParent` (the long one: the parent shows it
   * while it runs), and does not wait for the signal to land before the step starts.
   */
  /**
   * Waits for the signals a batched attempt sent its parent without waiting (the run must not close
   * with one in flight). They have almost always landed while the step ran.
   */
  told(): Promise<void>;
  step<T>(
    op: StepRunner,
    taskState: TaskState,
    spec: Omit<StepSpec<T>, 'label' | 'onStart' | 'attempt'> & { tellParent?: boolean }
  ): Promise<T>;
}

/**
 * The host of this run, or a MaxRetriesExceeded failure when the list is exhausted (`exhausted` gives the
 * message). Tags the run with its instance and host.
 */
export function attemptOnHost(instanceId: string, hosts: readonly string[], exhausted: () => string): PlacementAttempt {
  const { attempt, parent } = workflowInfo();
  const assigned = hosts[attempt - 1];
  if (assigned === undefined) throw typedFailure(FailureType.MaxRetriesExceeded, exhausted());
  const host = assigned;
  tagInstance({ instanceId, host });
  const parentHandle = parent ? getExternalWorkflowHandle(parent.workflowId, parent.runId) : undefined;
  const telling: Promise<void>[] = [];
  return {
    attempt,
    host,
    told: async () => {
      await CancellationScope.nonCancellable(() => Promise.all(telling));
    },
    operation: ({ actionId, operation, vmState, taskState, batch }) =>
      withKernel({
        instanceId,
        actionId,
        ...(batch ? { batch } : {}),
        progress: {
          instanceId,
          operation,
          vmState,
          taskState,
          powerState: PowerState.NoState,
          host,
          attempt,
          step: `placement attempt ${attempt} on ${host}`,
          hostsTried: [host],
        },
      }),
    step: (op, taskState, { tellParent, ...spec }) => {
      const tell = async () => {
        await parentHandle?.signal(placementProgressSignal, {
          attempt,
          host,
          taskState,
          step: stepLabel(spec.event, host),
        });
      };
      return runStep(op, {
        ...spec,
        label: stepLabel(spec.event, host),
        attempt,
        onStart: async () => {
          if (!op.batch) await tell();
          else if (tellParent)
            // Sent with the step's own command, not waited for here (see `told`); a parent that is gone
            // only misses a progress line.
            telling.push(
              tell().catch((e: unknown) => log.warn('could not tell the parent', { error: failureMessage(e) }))
            );
        },
      });
    },
  };
}

/**
 * How a placement attempt fails, once its compensations ran: a cancellation as it is; an abort type as a
 * non-retryable typed failure (`abortDefault` when untyped); anything else on this host (a step failed,
 * an alternate full, a host dead or silent) as the retryable `Rescheduled`.
 */
export function attemptFailure(
  err: unknown,
  what: { operation: string; instanceId: string; host: string; attempt: number; hosts: number },
  abortTypes: readonly string[],
  abortDefault: string,
  /**
   * A batched build's: what the next run needs (the selection, in the failure's details, which the
   * server hands it as its last failure), and the last host's failure made final (no run after it).
   */
  carry?: { details: Record<string, unknown>; lastHost: boolean }
): unknown {
  if (isCancellation(err)) return err;
  const message = failureMessage(err);
  if (isFailureOfType(err, ...abortTypes)) return typedFailure(failureType(err) ?? abortDefault, message);
  const timeout = timeoutType(err);
  const reason = timeout ? `compute host ${what.host} did not respond (${timeout} timeout)` : message;
  return ApplicationFailure.create({
    type: FailureType.Rescheduled,
    message: `${what.operation} of instance ${what.instanceId} on ${what.host} failed (attempt ${what.attempt} of ${what.hosts}): ${reason}`,
    nonRetryable: carry?.lastHost ?? false,
    details: [{ host: what.host, attempt: what.attempt, ...carry?.details }],
  });
}

/** A compute step in words, for progress and the Web UI: `compute_spawn` on node-2 is "spawn on node-2". */
export function stepLabel(event: string, host: string): string {
  return `${event.replace(/^compute_/, '').replace(/_/g, ' ')} on ${host}`;
}

/** Unwinds a placement attempt's compensations (non-cancellable), then gives its failure as attemptFailure does. */
export async function rollBackAttempt(
  op: StepRunner,
  err: unknown,
  what: Parameters<typeof attemptFailure>[1],
  abortTypes: readonly string[],
  abortDefault: string
): Promise<unknown> {
  await op.compensations.rollBack(err);
  return attemptFailure(err, what, abortTypes, abortDefault);
}
