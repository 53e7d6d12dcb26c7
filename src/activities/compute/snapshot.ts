/**
 * Compute activities of a snapshot, on `compute-<host>`: Nova's compute-side snapshot_instance (the
 * driver copies the guest's disk into the image store) and the removal of an image's bytes (a failed
 * snapshot's, an unshelved instance's shelved image). Both idempotent (the driver's are). A driver
 * failure of the copy is not retried (the copy would fail the same): it fails `OperationFailed`.
 */
import { ApplicationFailure } from '@temporalio/common';

import type { VirtDriver } from '../../compute/driver';
import { DriverError } from '../../compute/driver';
import { FailureType } from '../../domain/errors';

export function createSnapshotActivities({ driver }: { host: string; driver: VirtDriver }) {
  return {
    /** Copies the guest's disk into the image `imageName` (consistent: a running guest paused for the copy). */
    async snapshotInstance(input: { instanceId: string; imageName: string }): Promise<{ sizeGb: number }> {
      try {
        return { sizeGb: (await driver.snapshot(input)).sizeGb };
      } catch (err) {
        if (!(err instanceof DriverError)) throw err;
        throw ApplicationFailure.create({
          type: FailureType.OperationFailed,
          message: err.message,
          nonRetryable: true,
        });
      }
    },
    /** Removes the image's bytes from the image store; `deleted: false` when there were none. */
    async deleteImageData({ imageName }: { imageName: string }): Promise<{ deleted: boolean }> {
      return { deleted: await driver.deleteImage({ imageName }) };
    },
  };
}
