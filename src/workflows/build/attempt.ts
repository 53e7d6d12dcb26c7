/** One placement attempt of a build on one host (a run of the child workflow): Nova's build_and_run_instance. */
import { isCancellation, log, patched } from '@temporalio/workflow';

import type { Flavor, Image } from '../../domain/catalogue';
import { FailureType, MaxRetriesExceeded } from '../../domain/errors';
import type { TaskState } from '../../domain/instance';
import { TaskState as Task, VmState } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import { type ComputeTimeoutsInput, guestSecrets } from '../../domain/schemas';
import { BUILD_TASK_STATES } from '../../domain/transitions';
import { failureMessage, timeoutType } from '../lib/failures';
import { once } from '../lib/kernel';
import { attemptFailure, placementAttempt } from '../lib/placement-attempt';
import { computeOn, conductor, scheduler } from '../lib/proxies';

/** Failure types that end a build at once: no other host can fix them. */
export const ABORT_TYPES = [
  FailureType.BuildAborted,
  FailureType.InvalidRequest,
  FailureType.InstanceNotFound,
  FailureType.InstanceInvalidState,
];

/** The event of an alternate's claim (a reschedule's first step). */
export const CLAIM_EVENT = 'conductor_claim_alternate';

/** The patch id of the alternate claim that is in flight before it is issued and never touches the host. */
export const PATCH_ALTERNATE_CLAIM_OFF_HOST = 'alternate-claim-off-host';

/** The patch id of the late server-group check before an instance of a group is built on its host. */
export const PATCH_LATE_GROUP_CHECK = 'late-group-check';

/** The event of the late server-group check (Nova's _validate_instance_group_policy). */
export const GROUP_CHECK_EVENT = 'compute_validate_instance_group_policy';

export interface BuildAttemptInput {
  instanceId: string;
  name: string;
  actionId: string;
  /** The chosen host then the alternates; run N of this workflow uses hosts[N-1]. */
  hosts: string[];
  flavor: Flavor;
  image: Image;
  resources: Resources;
  timeouts: ComputeTimeoutsInput;
  /** The instance's server group, when it has one: its policy is checked again on the host. */
  serverGroup?: string;
  /** Nova's adminPass and user_data, for the spawn only (never stored, never in progress or events). */
  adminPassword?: string;
  userData?: string;
}

/**
 * One placement attempt on one host (Nova's build_and_run_instance on that compute). The first host
 * was claimed by the scheduler; an alternate is claimed here. A reschedulable failure releases this
 * host's claim and fails the run as retryable `Rescheduled`, so the server starts the next run on the
 * next alternate; an abort fails it as non-retryable `BuildAborted`.
 */
export async function buildAttempt(input: BuildAttemptInput): Promise<{ host: string }> {
  const placement = placementAttempt(
    input.instanceId,
    input.hosts,
    () => new MaxRetriesExceeded(input.instanceId, input.hosts).message
  );
  const { attempt, host } = placement;
  const compute = computeOn(host, input.timeouts);
  const { instanceId, actionId } = input;
  // Versioned (runs recorded before it replay the old way): an alternate's claim is in flight before it
  // is issued, so a claim whose answer was lost is released; a claim is not a step on the host, so an
  // alternate found full is skipped without a destroy call and without a failed build counted there.
  const claimOffHost = patched(PATCH_ALTERNATE_CLAIM_OFF_HOST);
  const op = placement.operation({
    actionId,
    operation: 'buildInstance',
    vmState: VmState.Building,
    taskState: Task.Scheduling,
  });

  /** Whether this attempt may have left something on the host: a step sent there, other than a claim that held. */
  const touched = () =>
    op.journal.entries.some((e) => e.compute === host && !(e.event === CLAIM_EVENT && e.status === 'done'));
  // Undone last first: the guest destroyed, then the claim released, then the failed build counted.
  op.compensations.push('count a failed build on the host', async (failure) => {
    // A cancelled attempt is not the host's fault.
    if (!isCancellation(failure) && touched()) await scheduler.recordBuildResult({ host, success: false });
  });
  const releaseClaim = () =>
    op.compensations.push('release the claim on the host', async () => {
      await scheduler.releaseAllocations({ consumerId: instanceId, host });
    });
  const destroyGuest = once(async (failure) => {
    // A host that never picked the task up has nothing to destroy.
    const timeout = timeoutType(failure);
    if (!touched() || timeout === 'SCHEDULE_TO_START') return;
    // A host that went silent mid-step (frozen, hung) gets a try of seconds: the reschedule does not wait on it.
    const cleanup = timeout === 'HEARTBEAT' ? compute.cleanupSilent : compute.cleanup;
    await cleanup.destroyInstance({ instanceId }).catch((e: unknown) =>
      log.warn('could not destroy the guest; the host cleans up when it reconciles', {
        host,
        error: failureMessage(e),
      })
    );
  });

  /** One build step: the task state and host written, the parent told, the step run, its event recorded. */
  const step = <T>(taskState: TaskState, event: string, run: () => Promise<T>, onHost = true): Promise<T> =>
    placement.step(op, taskState, {
      event,
      taskState,
      patch: { host },
      expect: { taskState: BUILD_TASK_STATES, vmState: VmState.Building },
      host,
      ...(onHost ? { compute: host } : {}),
      run,
    });

  try {
    if (attempt === 1) releaseClaim();
    else {
      if (claimOffHost) releaseClaim();
      else op.compensations.push('destroy the guest', destroyGuest);
      await step(
        Task.Scheduling,
        CLAIM_EVENT,
        () => scheduler.claimResources({ consumerId: instanceId, host, resources: input.resources }),
        !claimOffHost
      );
      if (!claimOffHost) releaseClaim();
    }
    // Versioned, and only for an instance in a group: the late check (Nova's
    // _validate_instance_group_policy) against the group's members as they are now, which a concurrent
    // build may have moved since the scheduler chose. A violation reschedules; it is no step on the host,
    // so the host is not counted as failing (Nova's RescheduledByPolicyException).
    if (input.serverGroup !== undefined && patched(PATCH_LATE_GROUP_CHECK))
      await step(
        Task.Scheduling,
        GROUP_CHECK_EVENT,
        () => conductor.checkServerGroupPolicy({ instanceId, host }),
        false
      );
    op.compensations.push('destroy the guest', destroyGuest);
    await step(Task.Networking, 'compute_allocate_networks', () => compute.short.allocateNetworks({ instanceId }));
    await step(Task.BlockDeviceMapping, 'compute_prepare_block_devices', () =>
      compute.short.prepareBlockDevices({ instanceId, flavor: input.flavor, image: input.image })
    );
    await step(Task.Spawning, 'compute_spawn', () =>
      compute.long.spawnInstance({
        instanceId,
        name: input.name,
        flavor: input.flavor,
        image: input.image,
        ...guestSecrets(input),
      })
    );
    return { host };
  } catch (err) {
    await op.compensations.rollBack(err);
    throw attemptFailure(
      err,
      { operation: 'Build', instanceId, host, attempt, hosts: input.hosts.length },
      ABORT_TYPES,
      FailureType.BuildAborted
    );
  }
}
