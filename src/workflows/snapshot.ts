/**
 * snapshot: Nova's API `createImage` plus the compute's snapshot_instance, made durable. The image's name
 * is checked first (a taken one changes nothing); the operation lock (`image_snapshot`, from active,
 * stopped, paused or suspended); the image record created `queued`; then on the instance's host
 * `image_pending_upload` and `image_uploading` while the driver copies the guest's disk into the image
 * store (a running guest paused for the copy: consistent, as Nova's live snapshot); the image `active`
 * with its size; the instance back to its state. A failure or a cancellation deletes the image (its
 * record `deleted`, its bytes removed) and leaves the instance as it was, with a fault.
 */
import { CancellationScope, isCancellation, uuid4 } from '@temporalio/workflow';

import { FailureType } from '../domain/errors';
import type { SnapshotInput } from '../domain/images';
import { ImageStatus, SnapshotInputSchema } from '../domain/images';
import type { InstanceRecord, TaskState } from '../domain/instance';
import { TaskState as Task } from '../domain/instance';
import type { ComputeTimeouts } from '../shared/activity-options';
import { noHost, parseInput, refusalFailure } from './lib/failures';
import type { KernelOperation } from './lib/kernel';
import { runStep } from './lib/kernel';
import { advance } from './lib/operation';
import { runStagedOperation } from './lib/staged-operation';
import { computeOn, conductor } from './lib/proxies';
import { hostFailure } from './lib/ending';

/** The event of the compute step, as Nova names it (wrap_instance_event on snapshot_instance). */
export const SNAPSHOT_EVENT = 'compute_snapshot_instance';

/** The task states an image save moves through: a snapshot's, or a shelve's own. */
export interface SaveTaskStates {
  pending: TaskState;
  uploading: TaskState;
}

/** A name for an image that is free, or InvalidRequest (nothing written). */
export async function checkImageName(name: string): Promise<void> {
  await conductor.checkImageName({ name }).catch((err: unknown) => {
    if (isCancellation(err)) throw err;
    throw refusalFailure(err, FailureType.InvalidRequest);
  });
}

/**
 * Saves the instance's disk as the image `name` (id `imageId`) on `host`: the record `queued`, then
 * `saving` while the host copies, then `active`. Pushes the image's deletion onto the operation's
 * compensations first, so a rollback deletes a half-made image (its record and any bytes).
 */
export async function saveInstanceImage(
  op: KernelOperation,
  host: string,
  image: { imageId: string; name: string },
  states: SaveTaskStates,
  timeouts: ComputeTimeouts
): Promise<{ sizeGb: number }> {
  const { instanceId } = op;
  const compute = computeOn(host, timeouts);
  op.compensations.push('delete the image', async () => {
    if (op.journal.reachedHost(host))
      await compute.cleanup.deleteImageData({ imageName: image.name }).catch(() => undefined);
    await conductor.updateImage({ imageId: image.imageId, status: ImageStatus.Deleted });
  });
  await conductor.createSnapshotImage({ imageId: image.imageId, name: image.name, instanceId });
  await advance(op, states.pending, `image ${image.name} queued`);
  await conductor.updateImage({ imageId: image.imageId, status: ImageStatus.Saving });
  const saved = await runStep(op, {
    event: SNAPSHOT_EVENT,
    label: `saving the guest's disk as image ${image.name} on ${host}`,
    taskState: states.uploading,
    host,
    compute: host,
    run: () => compute.long.snapshotInstance({ instanceId, imageName: image.name }),
    details: (r) => `image ${image.name}: ${r.sizeGb} GB`,
  });
  await conductor.updateImage({ imageId: image.imageId, status: ImageStatus.Active, sizeGb: saved.sizeGb });
  return saved;
}

/**
 * Snapshots one instance into a new image and returns its record (in the state it was). Fails typed,
 * changing nothing: InvalidRequest (a bad or taken name), InstanceNotFound, InstanceInvalidState (its
 * state does not allow it, another operation holds it, no host); after the lock: ComputeHostUnavailable,
 * OperationFailed (the copy failed), each with the image deleted and the instance as it was, with a fault.
 */
export async function snapshot(input: SnapshotInput): Promise<InstanceRecord> {
  const req = parseInput(SnapshotInputSchema, input);
  const { instanceId } = req;
  await checkImageName(req.name);
  return runStagedOperation({
    begin: { instanceId, transition: 'snapshot', operation: 'snapshot' },
    steps: async (op) => {
      const host = op.before.host;
      const imageId = uuid4();
      if (host === null) throw noHost(op.before, 'snapshot');
      await CancellationScope.nonCancellable(() =>
        saveInstanceImage(
          op,
          host,
          { imageId, name: req.name },
          { pending: Task.ImagePendingUpload, uploading: Task.ImageUploading },
          req.timeouts
        )
      );
      // A cancellation requested while the image was saved: the image is deleted by its undo.
      if (CancellationScope.current().consideredCancelled) await CancellationScope.current().cancelRequested;
    },
    commit: () => Promise.resolve({ done: {}, result: (record) => record }),
    // The instance is left as it was; the image's undo deleted the image.
    failure: (err, op) => hostFailure(err, op.before.host),
  });
}
