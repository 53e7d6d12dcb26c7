/**
 * The fake hypervisor's snapshot (Nova's driver.snapshot) and image removal, on the host's snapshots file: a
 * snapshot is recorded under the image's name (whose disk, at how many boots), as a real host would
 * write the image's bytes. A running guest is "paused" for the copy and runs on (its console says so).
 */
import { PowerState } from '../../domain/instance';
import type { ImageRequest, SnapshotRequest, SnapshotResult } from '../driver';
import { DriverError } from '../driver';
import type { FakeHost } from './build';
import { logConsole, requireGuest } from './guest-store';
import { delay } from './spawn-clock';

/** Records the snapshot; idempotent on the image name. Fails DriverError on `snapshot.failNext`. */
export async function snapshot(h: FakeHost, { instanceId, imageName }: SnapshotRequest): Promise<SnapshotResult> {
  const wait = (await h.faults.get()).slow?.snapshot ?? 0;
  if (wait > 0) await delay(wait * 1000, undefined);
  const failing = await h.faults.consumeResizeFault('snapshot');
  // The image's record and the guest's console line are in two files: the record is written once the
  // console line is (a crash between them leaves a console line of a snapshot retried, never a record
  // without its guest's line). The snapshots' lock is held throughout, so a repeat waits and finds it.
  return h.guests.mutateSnapshots(async (snapshots) => {
    requireGuest(await h.guests.readInstance(instanceId), instanceId);
    const done = snapshots[imageName];
    if (done) return { imageName, sizeGb: done.sizeGb };
    const taken = await h.guests.mutate(instanceId, (state, at) => {
      const guest = requireGuest(state, instanceId);
      if (failing) throw new DriverError(`injected fault (snapshot.failNext): snapshot of ${instanceId} on ${h.host}`);
      if (guest.status !== 'active')
        throw new DriverError(
          `cannot snapshot the guest of instance ${instanceId} on ${h.host}: it is ${guest.status}`
        );
      const paused = guest.powerState === PowerState.Running ? ' (paused for the copy, then continued)' : '';
      logConsole(guest, at, `snapshot: disk saved as image ${imageName}${paused}`);
      return { instanceId, boots: guest.boots, at, sizeGb: guest.image.sizeGb };
    });
    snapshots[imageName] = taken;
    return { imageName, sizeGb: taken.sizeGb };
  });
}

/** Forgets an image's recorded snapshot; false when there was none. */
export function deleteImage(h: FakeHost, { imageName }: ImageRequest): Promise<boolean> {
  return h.guests.mutateSnapshots((snapshots) => {
    if (!snapshots[imageName]) return false;
    delete snapshots[imageName];
    return true;
  });
}
