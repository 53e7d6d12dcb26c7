/**
 * Compute activities of a rebuild and an evacuation, on `compute-<host>`: Nova's compute-side
 * rebuild_instance, one activity per task state so the Web UI shows each step.
 *
 * - `rebuildPrepare` (rebuild_block_device_mapping): checks the image fits the flavor's root disk, removes
 *   the old guest (a same-host rebuild; an evacuation's destination has none), keeps or plugs the port,
 *   lays out the root disk from the image.
 * - `rebuildSpawn` (rebuild_spawning): boots the new guest, heartbeating `{ percent }` and honouring
 *   cancellation; `powerOn: false` powers it off again at once, so a stopped instance stays stopped.
 *   NOTE(nova): _do_rebuild_instance spawns, then a STOPPED instance gets an immediate (non-clean)
 *   power-off.
 *
 * Failures (the class name is the Temporal failure type): there is no reschedule for a rebuild or an
 * evacuation (Nova: "never retried elsewhere"), so every driver failure is `BuildAborted` (non-retryable;
 * Nova wraps rebuild failures on the destination in BuildAbortException). `HypervisorBusy` stays transient
 * (retried on the same host by the compute retry policy); `InstanceNotFound` and cancellation pass through.
 * A failed or cancelled spawn has already torn down its half-made guest (the driver does).
 *
 * Both are idempotent, keyed by instance id: a retried prepare finds no guest and lays out the same disk;
 * a retried spawn whose guest completed returns it (powered off again when `powerOn` is false), and one
 * whose previous attempt died half-way takes the half-made guest over.
 */
import { Context } from '@temporalio/activity';

import type { BlockDeviceInfo, GuestFlavor, GuestImage, NetworkInfo, VirtDriver } from '../../compute/driver';
import { FlavorDiskSmallerThanImage, ImageUnacceptable } from '../../compute/driver';
import { BuildAborted, DomainError } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import { guestSecrets } from '../../domain/schemas';

export interface RebuildPrepareInput {
  instanceId: string;
  flavor: GuestFlavor;
  image: GuestImage;
}

export interface RebuildPrepareResult {
  host: string;
  /** An old guest was removed (a same-host rebuild); false on an evacuation's destination. */
  removedGuest: boolean;
  network: NetworkInfo;
  blockDevices: BlockDeviceInfo;
}

export interface RebuildSpawnInput {
  instanceId: string;
  name: string;
  flavor: GuestFlavor;
  image: GuestImage;
  /** False for an instance that was stopped: the new guest is powered off once it has booted. */
  powerOn: boolean;
  /** Nova's adminPass and user_data for the rebuilt guest: handed to the driver only. */
  adminPassword?: string;
  userData?: string;
}

export interface RebuildSpawnResult {
  host: string;
  powerState: PowerState;
}

/** Heartbeat details of a rebuild spawn in progress. */
export interface RebuildSpawnProgress {
  percent: number;
}

export function createRebuildActivities({ host, driver }: { host: string; driver: VirtDriver }) {
  if (driver.host !== host) throw new Error(`rebuild activities for ${host} given the driver of ${driver.host}`);

  return {
    /** Nova's rebuild_block_device_mapping on this host; an image larger than the flavor's disk aborts. */
    rebuildPrepare: async ({ instanceId, flavor, image }: RebuildPrepareInput): Promise<RebuildPrepareResult> => {
      try {
        return { host, ...(await driver.prepareRebuild({ instanceId, flavor, image })) };
      } catch (err) {
        if (err instanceof FlavorDiskSmallerThanImage) throw new BuildAborted(instanceId, err.message);
        throw asDomainError(err, (reason) => new BuildAborted(instanceId, `Failure prepping block device: ${reason}`));
      }
    },

    /** Nova's rebuild_spawning on this host: boots the guest with the image, heartbeating; keeps it off if asked. */
    rebuildSpawn: async ({
      instanceId,
      name,
      flavor,
      image,
      powerOn,
      ...secrets
    }: RebuildSpawnInput): Promise<RebuildSpawnResult> => {
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      try {
        await driver.spawn(
          { instanceId, name, flavor, image, ...guestSecrets(secrets) },
          { signal, onProgress: (percent) => ctx.heartbeat({ percent } satisfies RebuildSpawnProgress) }
        );
      } catch (err) {
        // Cancellation (workflow cancelled, heartbeat timeout, worker shutdown) goes out unchanged.
        if (signal.aborted) throw err;
        throw classifyRebuildFailure(err, instanceId, host);
      }
      if (powerOn) return { host, powerState: PowerState.Running };
      // NOTE(nova): a rebuilt STOPPED instance is powered off at once, without a clean shutdown.
      return { host, powerState: await driver.powerOff({ instanceId }) };
    },
  };
}

export type RebuildActivities = ReturnType<typeof createRebuildActivities>;

/** Maps a rebuild spawn failure: no reschedule exists, so a driver failure aborts the rebuild. */
export function classifyRebuildFailure(err: unknown, instanceId: string, host: string): DomainError {
  if (err instanceof FlavorDiskSmallerThanImage || err instanceof ImageUnacceptable) {
    return new BuildAborted(instanceId, err.message);
  }
  // HypervisorBusy (transient), InstanceNotFound: already classified.
  return asDomainError(err, (reason) => new BuildAborted(instanceId, `Rebuild on ${host} failed: ${reason}`));
}

/** Domain errors pass through; anything else becomes `fallback(message)`. */
function asDomainError(err: unknown, fallback: (reason: string) => DomainError): DomainError {
  if (err instanceof DomainError) return err;
  return fallback(err instanceof Error ? err.message : String(err));
}
