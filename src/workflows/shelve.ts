/**
 * shelve and shelveOffload: Nova's API `shelve` and `shelveOffload` plus the compute's shelve_instance
 * and shelve_offload_instance, made durable.
 *
 * shelve (from active, stopped, paused or suspended; task `shelving`): the guest powered off (a graceful
 * shutdown with the stop's timeout, then forced), its disk saved as the image `shelved-<instance id>`
 * (`shelving_image_pending_upload`, `shelving_image_uploading`), the instance `shelved` (off, still on its
 * host with its claim). Then, as Nova's `shelved_offload_time`: 0 offloads it at once (the default), N
 * starts a `shelveOffload` that waits N seconds, -1 never.
 *
 * shelveOffload (from shelved; task `shelving_offloading`): the guest destroyed on its host and its
 * claim released: `shelved_offloaded`, no host; only its image is left, for unshelve.
 *
 * A failure or a cancellation of a shelve deletes the image and powers a guest that was on back on; an
 * offload's destroy and release are not cut half-way (a cancellation lands before them or not at all).
 */
import { CancellationScope, ParentClosePolicy, sleep, startChild, uuid4, workflowInfo } from '@temporalio/workflow';

import type { InstancePatch, InstanceRecord } from '../domain/instance';
import { PowerState, TaskState, VmState } from '../domain/instance';
import { DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS } from '../domain/schemas';
import type { ShelveInput, ShelveOffloadInput } from '../domain/shelve';
import { ShelveInputSchema, ShelveOffloadInputSchema, shelvedImageName } from '../domain/shelve';
import type { ComputeTimeouts } from '../shared/activity-options';
import { workflowIds } from '../shared/task-queues';
import { noHost, parseInput } from './lib/failures';
import { runStep } from './lib/kernel';
import { runStagedOperation } from './lib/staged-operation';
import { computeOn, scheduler } from './lib/proxies';
import { checkImageName, saveInstanceImage } from './snapshot';
import {
  describePowerOff,
  hostFailure,
  imageShutdownTimeout,
  powerOffGuest,
  resolveShutdownTimeout,
  shutdownPolls,
} from './stop';

/** The events of the compute steps, as Nova names them (wrap_instance_event). */
export const SHELVE_EVENT = 'compute_shelve_instance';
export const SHELVE_OFFLOAD_EVENT = 'compute_shelve_offload_instance';

/**
 * The instance after a failed shelve whose guest was powered off: a guest that was running or paused is
 * booted again (active); a suspended one lost its saved memory (stopped).
 */
function afterUndo(before: InstanceRecord): InstancePatch {
  if (before.vmState === VmState.Active || before.vmState === VmState.Paused)
    return { vmState: VmState.Active, powerState: PowerState.Running };
  if (before.vmState === VmState.Suspended) return { vmState: VmState.Stopped, powerState: PowerState.Shutdown };
  return { vmState: before.vmState, powerState: before.powerState };
}

/**
 * Shelves one instance; returns its record: `shelved_offloaded` when offloaded at once (the default),
 * else `shelved`. Fails typed, changing nothing before the lock: InvalidRequest, InstanceNotFound,
 * InstanceInvalidState; after it, ComputeHostUnavailable or OperationFailed, with the image deleted.
 */
export async function shelve(input: ShelveInput): Promise<InstanceRecord> {
  const req = parseInput(ShelveInputSchema, input);
  const { instanceId } = req;
  const imageName = shelvedImageName(instanceId);
  await checkImageName(imageName);
  const shelved = await runStagedOperation({
    begin: { instanceId, transition: 'shelve', operation: 'shelve' },
    steps: async (op) => {
      const host = op.before.host;
      const timeout = resolveShutdownTimeout({
        ...req,
        imageOsShutdownTimeoutSeconds: await imageShutdownTimeout(op.before.image),
      });
      if (host === null) throw noHost(op.before, 'shelve');
      const compute = computeOn(host, req.timeouts);
      await runStep(op, {
        event: SHELVE_EVENT,
        label: `powering the guest off on ${host}`,
        host,
        compute: host,
        undo: async () => {
          if (!op.journal.reachedHost(host)) return;
          if (afterUndo(op.before).powerState === PowerState.Running)
            await compute.cleanup.powerOnInstance({ instanceId }).catch(() => undefined);
        },
        // The stop's power-off: Nova's shelve_instance powers off as stop_instance does (_power_off_instance).
        run: () =>
          powerOffGuest(op, host, compute, timeout, {
            retryIntervalSeconds: DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS,
            pollsOf: (wait) => shutdownPolls(wait, timeout.seconds),
          }),
        details: (outcome) => describePowerOff(outcome, timeout),
      });
      await CancellationScope.nonCancellable(() =>
        saveInstanceImage(
          op,
          host,
          { imageId: uuid4(), name: imageName },
          { pending: TaskState.ShelvingImagePendingUpload, uploading: TaskState.ShelvingImageUploading },
          req.timeouts
        )
      );
      // A cancellation requested while the image was saved: the undos delete it and power the guest on.
      if (CancellationScope.current().consideredCancelled) await CancellationScope.current().cancelRequested;
    },
    commit: () =>
      Promise.resolve({ done: { vmState: VmState.Shelved, powerState: PowerState.Shutdown }, result: (r) => r }),
    failure: (err, op) => hostFailure(err, op.before.host),
    // A guest the power-off may have reached is powered back on (or left off) by the undo: the record says so.
    stableState: (op) => {
      const host = op.before.host;
      return Promise.resolve(host !== null && op.journal.reachedHost(host) ? afterUndo(op.before) : undefined);
    },
  });
  if (req.shelvedOffloadTimeSeconds === 0) return offload(instanceId, req.timeouts, 'shelve');
  if (req.shelvedOffloadTimeSeconds > 0)
    await startChild(shelveOffload, {
      workflowId: workflowIds.shelveOffload(instanceId, workflowInfo().workflowId),
      args: [{ instanceId, afterSeconds: req.shelvedOffloadTimeSeconds, timeouts: req.timeouts }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
  return shelved;
}

/**
 * Offloads a shelved instance: its guest destroyed, its claim released, no host. Runs whole once begun
 * (a cancellation of shelveOffload lands in its wait, before it).
 */
function offload(instanceId: string, timeouts: ComputeTimeouts, operation: string): Promise<InstanceRecord> {
  return CancellationScope.nonCancellable(() =>
    runStagedOperation({
      begin: { instanceId, transition: 'shelveOffload', operation },
      steps: async (op) => {
        const host = op.before.host;
        if (host === null) return;
        const compute = computeOn(host, timeouts);
        await runStep(op, {
          event: SHELVE_OFFLOAD_EVENT,
          label: `destroying the guest on ${host}`,
          host,
          compute: host,
          run: () => compute.short.destroyInstance({ instanceId }),
        });
        await scheduler.releaseAllocations({ consumerId: instanceId, host });
      },
      commit: () =>
        Promise.resolve({
          done: { vmState: VmState.ShelvedOffloaded, powerState: PowerState.NoState, host: null },
          result: (r) => r,
        }),
      failure: (err, op) => hostFailure(err, op.before.host),
    })
  );
}

/**
 * Offloads one shelved instance (after `afterSeconds`: a shelve's automatic offload); returns its record
 * (`shelved_offloaded`, no host). InstanceInvalidState when it is not shelved (e.g. unshelved meanwhile).
 */
export async function shelveOffload(input: ShelveOffloadInput): Promise<InstanceRecord> {
  const req = parseInput(ShelveOffloadInputSchema, input);
  if (req.afterSeconds > 0) await sleep(req.afterSeconds * 1000);
  return offload(req.instanceId, req.timeouts, 'shelveOffload');
}
