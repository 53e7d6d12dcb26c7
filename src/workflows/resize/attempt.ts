/** One placement attempt of a resize or cold migration on one destination (a run of the child workflow). */
import { patched } from '@temporalio/workflow';

import type { Flavor, Image } from '../../domain/catalogue';
import { FailureType } from '../../domain/errors';
import { TaskState as Task, VmState } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import type { ComputeTimeoutsInput } from '../../domain/schemas';

import { hostAttempt } from '../lib/placement-attempt';
import { computeOn } from '../lib/proxies';

/** The patch id of the late server-group check on a resize's destination (Nova's prep_resize). */
export const PATCH_RESIZE_GROUP_CHECK = 'resize-late-group-check';

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
  /** The instance's server group, when it has one: its policy is checked again on the destination. */
  serverGroup?: string;
}

/**
 * One placement attempt of a resize on one destination (Nova's prep_resize there). The first host was
 * claimed by the scheduler; an alternate is claimed here. A reschedulable failure (prep failed, alternate
 * full, host silent) releases this host's claim and fails the run as retryable `Rescheduled`, so the
 * server starts the next run on the next alternate; an abort (MigrationError …) fails it non-retryable.
 */
export async function prepResizeOnHost(input: ResizeAttemptInput): Promise<{ host: string; attempt: number }> {
  const { instanceId, migrationId } = input;
  return hostAttempt({
    instanceId,
    actionId: input.actionId,
    selection: { hosts: input.hosts, resources: input.resources, hostZones: {} },
    task: `retrying resize failures for instance ${instanceId}`,
    operation: 'resizeMigrate',
    vmState: VmState.Active,
    taskState: Task.ResizePrep,
    release: 'release the claim on the destination',
    // Versioned, and only for an instance in a group: Nova's prep_resize checks the group's policy on the
    // destination against the members as they are now (_validate_instance_group_policy), which a move or
    // a build since the scheduler chose may have changed. A violation reschedules to the next alternate.
    ...(input.serverGroup !== undefined ? { serverGroup: input.serverGroup } : {}),
    checkGroup: () => patched(PATCH_RESIZE_GROUP_CHECK),
    ending: { operation: 'Resize', abortTypes: ABORT_TYPES, abortDefault: FailureType.MigrationError },
    steps: async (placement, op) => {
      const { host, attempt } = placement;
      await placement.step(op, Task.ResizePrep, {
        event: 'compute_prep_resize',
        host,
        compute: host,
        run: () =>
          computeOn(host, input.timeouts).short.prepResize({
            instanceId,
            migrationId,
            sourceHost: input.sourceHost,
            oldFlavor: input.oldFlavor,
            newFlavor: input.newFlavor,
            image: input.image,
          }),
      });
      return { host, attempt };
    },
  });
}

/**
 * The `resizeAttempt` workflow type: kept registered for parents started before the patch
 * `one-placement-attempt` (docs/versioning.md); one run is prepResizeOnHost on its host.
 */
export async function resizeAttempt(input: ResizeAttemptInput): Promise<{ host: string; attempt: number }> {
  return prepResizeOnHost(input);
}
