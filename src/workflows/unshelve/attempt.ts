/**
 * One placement attempt of an unshelve on one host (a run of the placementAttempt child, `kind:
 * 'unshelve'`): Nova's compute unshelve_instance on the host the scheduler chose. The first host was
 * claimed by the scheduler; an alternate is claimed here. Then on the host (task `spawning`, event
 * `compute_unshelve_instance`): the port, the root disk and the guest spawned from the shelved image. A
 * reschedulable failure (the spawn failed, an alternate full, the host silent) destroys what it made
 * there and releases the claim, and fails the run as retryable `Rescheduled`, so the server starts the
 * next run on the next alternate; an abort (a bad image …) fails it non-retryable.
 */
import { log } from '@temporalio/workflow';

import type { Flavor, Image } from '../../domain/catalogue';
import { FailureType } from '../../domain/errors';
import { TaskState as Task, VmState } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import type { ComputeTimeoutsInput } from '../../domain/schemas';
import { failureMessage, timeoutType } from '../lib/failures';
import { hostAttempt } from '../lib/placement-attempt';
import { computeOn } from '../lib/proxies';

/** Failure types that end an unshelve's search at once: no other host can fix them. */
export const UNSHELVE_ABORT_TYPES = [
  FailureType.BuildAborted,
  FailureType.InvalidRequest,
  FailureType.InstanceNotFound,
  FailureType.InstanceInvalidState,
];

/** The event of the compute step, as Nova names it (wrap_instance_event on unshelve_instance). */
export const UNSHELVE_EVENT = 'compute_unshelve_instance';

export interface UnshelveAttemptInput {
  instanceId: string;
  name: string;
  actionId: string;
  /** The chosen host then the alternates; run N uses hosts[N-1]. */
  hosts: string[];
  flavor: Flavor;
  /** The shelved image the guest is spawned from. */
  image: Image;
  resources: Resources;
  timeouts: ComputeTimeoutsInput;
}

/** One unshelve attempt on one host; returns the host and the run's attempt number. */
export async function unshelveOnHost(input: UnshelveAttemptInput): Promise<{ host: string; attempt: number }> {
  const { instanceId, image } = input;
  // The run before may have left the task state at `spawning`.
  const expect = { taskState: [Task.Unshelving, Task.Spawning], vmState: VmState.ShelvedOffloaded };
  return hostAttempt({
    instanceId,
    actionId: input.actionId,
    selection: { hosts: input.hosts, resources: input.resources, hostZones: {} },
    task: `unshelving instance ${instanceId}`,
    operation: 'unshelve',
    vmState: VmState.ShelvedOffloaded,
    taskState: Task.Unshelving,
    release: 'release the claim on the host',
    writes: () => ({ taskState: Task.Unshelving, expect }),
    ending: { operation: 'Unshelve', abortTypes: UNSHELVE_ABORT_TYPES, abortDefault: FailureType.BuildAborted },
    steps: async (placement, op) => {
      const { host, attempt } = placement;
      const compute = computeOn(host, input.timeouts);
      await placement.step(op, Task.Spawning, {
        event: UNSHELVE_EVENT,
        taskState: Task.Spawning,
        // As Nova's unshelve_instance: the instance's host is the compute's before it spawns.
        patch: { host },
        expect,
        host,
        compute: host,
        undo: async (failure) => {
          // A host that never picked the task up has nothing to destroy; a silent one gets a short try.
          const timeout = timeoutType(failure);
          if (!op.journal.reachedHost(host) || timeout === 'SCHEDULE_TO_START') return;
          const cleanup = timeout === 'HEARTBEAT' ? compute.cleanupSilent : compute.cleanup;
          await cleanup.destroyInstance({ instanceId }).catch((e: unknown) =>
            log.warn('could not destroy the guest; the host cleans up when it reconciles', {
              host,
              error: failureMessage(e),
            })
          );
        },
        run: async () => {
          await compute.short.allocateNetworks({ instanceId });
          await compute.short.prepareBlockDevices({ instanceId, flavor: input.flavor, image });
          // The disk owns its bytes: the shelved image is deleted once the unshelve is done.
          return compute.long.spawnInstance({
            instanceId,
            name: input.name,
            flavor: input.flavor,
            image,
            ownDisk: true,
          });
        },
      });
      return { host, attempt };
    },
  });
}
