/** One placement attempt of a resize or cold migration on one destination (a run of the child workflow). */
import {
  ApplicationFailure,
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  workflowInfo,
} from '@temporalio/workflow';

import type { Flavor, Image } from '../../domain/catalogue';
import { FailureType } from '../../domain/errors';
import { TaskState as Task } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import type { ComputeTimeoutsInput } from '../../domain/schemas';
import { placementProgressSignal } from '../../shared/messages';
import { failureMessage, failureType, isFailureOfType, timeoutType, typedFailure } from '../lib/failures';
import { tagInstance } from '../lib/instance-attributes';
import { computeOn, conductor, scheduler } from '../lib/proxies';

/** Failure types that end a placement attempt at once: no other host can fix them. */
export const ABORT_TYPES = [
  FailureType.MigrationError,
  FailureType.InvalidRequest,
  FailureType.InstanceNotFound,
  FailureType.InstanceInvalidState,
];

export interface ResizeAttemptInput {
  instanceId: string;
  migrationId: string;
  actionId: string;
  /** The chosen host then the alternates; run N of this workflow uses hosts[N-1]. */
  hosts: string[];
  sourceHost: string;
  oldFlavor: Flavor;
  newFlavor: Flavor;
  image: Image;
  /** What the instance claims on a destination (the new flavor's resources). */
  resources: Resources;
  timeouts: ComputeTimeoutsInput;
}

/**
 * One placement attempt of a resize on one destination (Nova's prep_resize there). The first host was
 * claimed by the scheduler; an alternate is claimed here. A reschedulable failure (prep failed, alternate
 * full, host silent) releases this host's claim and fails the run as retryable `Rescheduled`, so the
 * server starts the next run on the next alternate; an abort (MigrationError …) fails it non-retryable.
 */
export async function resizeAttempt(input: ResizeAttemptInput): Promise<{ host: string; attempt: number }> {
  const { attempt, parent } = workflowInfo();
  const { instanceId, migrationId, actionId } = input;
  const assigned = input.hosts[attempt - 1];
  if (!assigned)
    throw typedFailure(
      FailureType.MaxRetriesExceeded,
      `Exceeded maximum number of retries. Exhausted all hosts available for retrying resize failures for instance ${instanceId}. Hosts tried: ${input.hosts.join(', ')}.`
    );
  const host: string = assigned;
  tagInstance({ instanceId, host });
  const parentHandle = parent ? getExternalWorkflowHandle(parent.workflowId, parent.runId) : undefined;
  const compute = computeOn(host, input.timeouts);
  let claimed = attempt === 1;

  /** One step of this attempt: tell the parent, run it, record its event for this attempt. */
  async function step(event: string, run: () => Promise<unknown>): Promise<void> {
    const startedAt = new Date().toISOString();
    await parentHandle?.signal(placementProgressSignal, {
      attempt,
      host,
      taskState: Task.ResizePrep,
      step: `${event} on ${host}`,
    });
    const base = { actionId, event, attempt, host, startedAt };
    try {
      await run();
      await conductor.recordEvent({ ...base, result: 'Success', finishedAt: new Date().toISOString() });
    } catch (err) {
      const details = failureMessage(err);
      await CancellationScope.nonCancellable(() =>
        conductor.recordEvent({ ...base, result: 'Error', details, finishedAt: new Date().toISOString() })
      );
      throw err;
    }
  }

  try {
    if (!claimed) {
      // Set first: a claim that applied but reported a failure is released below all the same.
      claimed = true;
      await step('conductor_claim_alternate', () =>
        scheduler.claimResources({ consumerId: instanceId, host, resources: input.resources })
      );
    }
    await step('compute_prep_resize', () =>
      compute.short.prepResize({
        instanceId,
        migrationId,
        sourceHost: input.sourceHost,
        oldFlavor: input.oldFlavor,
        newFlavor: input.newFlavor,
        image: input.image,
      })
    );
    return { host, attempt };
  } catch (err) {
    // NOTE(nova): prep_resize reverts the allocation before it reschedules.
    await CancellationScope.nonCancellable(async () => {
      if (claimed) await scheduler.releaseAllocations({ consumerId: instanceId, host });
    });
    if (isCancellation(err)) throw err;
    const message = failureMessage(err);
    if (isFailureOfType(err, ...ABORT_TYPES))
      throw typedFailure(failureType(err) ?? FailureType.MigrationError, message);
    const timeout = timeoutType(err);
    const reason = timeout ? `compute host ${host} did not respond (${timeout} timeout)` : message;
    throw ApplicationFailure.create({
      type: FailureType.Rescheduled,
      message: `Resize of instance ${instanceId} on ${host} failed (attempt ${attempt} of ${input.hosts.length}): ${reason}`,
      nonRetryable: false,
      details: [{ host, attempt }],
    });
  }
}
