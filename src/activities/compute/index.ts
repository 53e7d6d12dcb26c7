/**
 * Compute activities: what a compute worker for one host runs on task queue `compute-<host>`. They are
 * Nova's compute-manager RPCs and build steps, one activity per step so the Web UI shows each of them.
 * The compute process holds no database credentials: it reports results, the conductor records them.
 *
 * How failures leave these activities (the class name becomes the Temporal failure type):
 *
 * - Reschedulable, `Rescheduled` (non-retryable here; the placement-attempt workflow moves to the next
 *   alternate host): any unexpected error while spawning (the fake's DriverError, an injected
 *   `spawn.kind: 'reschedule'` failure).
 *   NOTE(nova): _build_and_run_instance turns any unexpected spawn exception into RescheduledException.
 * - Abort, `BuildAborted` (non-retryable; no other host can fix it): a flavor disk smaller than the image
 *   (prepareBlockDevices or spawn), an image the hypervisor refuses (injected `spawn.kind: 'abort'`), any
 *   failure to allocate networks or to prepare block devices.
 *   NOTE(nova): FlavorDiskTooSmall / ImageUnacceptable and network or BDM set-up failures raise
 *   BuildAbortException ("not rescheduling").
 * - Transient, `HypervisorBusy` (retryable; the compute retry policy retries it on the same host): an
 *   injected `busyNext`. Nothing was made, so nothing is torn down.
 * - Propagated as they are: `InstanceNotFound` (a power operation on a guest this host does not have, or
 *   a guest destroyed while it was spawning) and cancellation (the activity's CancelledFailure, after the
 *   half-made guest was torn down).
 *   NOTE(nova): the virt driver raises InstanceNotFound for a missing domain, and a build whose instance
 *   was deleted meanwhile ends with InstanceNotFound, not a reschedule.
 *
 * On a reschedulable or abort failure and on cancellation, the driver has already torn down the half-made
 * guest with its networks and block devices (Nova's _shutdown_instance + _cleanup_allocated_networks), so
 * the next host starts clean and this one leaks nothing.
 */
import { Context } from '@temporalio/activity';

import { BuildAborted, DomainError, Rescheduled } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import { guestSecrets } from '../../domain/schemas';
import type { BlockDeviceInfo, Guest, GuestFlavor, GuestImage, NetworkInfo, VirtDriver } from '../../compute/driver';
import { FlavorDiskSmallerThanImage, ImageUnacceptable } from '../../compute/driver';
import { createRebuildActivities } from './rebuild';
import { createLiveMigrationActivities } from './live-migration';
import { createPauseActivities } from './pause';
import { createSnapshotActivities } from './snapshot';
import { createResizeActivities } from './resize';
import { createHostSlots, type HostSlots } from './host-limits';

export { createHostSlots, DEFAULT_HOST_LIMITS, type HostLimits, type HostSlots, Slots } from './host-limits';

export interface InstanceRef {
  instanceId: string;
}

export interface PrepareBlockDevicesInput {
  instanceId: string;
  flavor: GuestFlavor;
  image: GuestImage;
}

export interface SpawnInstanceInput {
  instanceId: string;
  name: string;
  flavor: GuestFlavor;
  image: GuestImage;
  /** Nova's adminPass and user_data: handed to the driver only (never logged, never returned). */
  adminPassword?: string;
  userData?: string;
  /** The root disk a copy of the image, not an overlay on it (an unshelve: its image is deleted after). */
  ownDisk?: boolean;
}

export interface SpawnInstanceResult {
  host: string;
  powerState: typeof PowerState.Running;
}

export interface PowerStateResult {
  powerState: PowerState;
}

export interface ConsoleOutputInput {
  instanceId: string;
  /** Only the last N lines; all of them when absent. */
  lines?: number;
}

export interface ConsoleOutputResult {
  host: string;
  /** The console's text, one newline-terminated line each. */
  output: string;
}

export interface ListGuestsResult {
  host: string;
  guests: Guest[];
}

/** Heartbeat details of a spawn in progress. */
export interface SpawnProgress {
  percent: number;
}

export function createComputeActivities({
  host,
  driver,
  slots = createHostSlots(),
}: {
  host: string;
  driver: VirtDriver;
  /** The host's build and live-migration semaphores (./host-limits.ts); Nova's defaults when absent. */
  slots?: HostSlots;
}) {
  if (driver.host !== host) throw new Error(`compute activities for ${host} given the driver of ${driver.host}`);

  return {
    // Rebuild and evacuate: rebuildPrepare, rebuildSpawn (./rebuild.ts).
    ...createRebuildActivities({ host, driver }),
    // Resize and cold migration: prepResize, resizeInstance, finishResize, confirmResize, revertResize,
    // finishRevertResize (./resize.ts).
    ...createResizeActivities({ host, driver }),
    ...createLiveMigrationActivities({ host, driver, slots }),
    // pauseInstance, unpauseInstance, suspendInstance, resumeInstance (./pause.ts).
    ...createPauseActivities({ host, driver }),
    ...createSnapshotActivities({ host, driver }),
    /** Plugs the instance's port on this host; the same port info on every retry. */
    allocateNetworks: async ({ instanceId }: InstanceRef): Promise<NetworkInfo> => {
      try {
        return await driver.allocateNetworks({ instanceId });
      } catch (err) {
        // NOTE(nova): a failed network allocation aborts the build ("not rescheduling").
        throw asDomainError(
          err,
          (reason) => new BuildAborted(instanceId, `Failed to allocate the network(s): ${reason}`)
        );
      }
    },

    /** Prepares the root disk; a flavor disk smaller than the image aborts the build. */
    prepareBlockDevices: async ({ instanceId, flavor, image }: PrepareBlockDevicesInput): Promise<BlockDeviceInfo> => {
      try {
        return await driver.prepareBlockDevices({ instanceId, flavor, image });
      } catch (err) {
        if (err instanceof FlavorDiskSmallerThanImage) throw new BuildAborted(instanceId, err.message);
        // NOTE(nova): a failure to prepare block devices is a BuildAbortException too.
        throw asDomainError(err, (reason) => new BuildAborted(instanceId, `Failure prepping block device: ${reason}`));
      }
    },

    /**
     * Boots the guest, heartbeating `{ percent }` while it runs and honouring cancellation. Idempotent: a
     * retried spawn of an instance whose guest already exists succeeds without making a second guest.
     */
    spawnInstance: async ({
      instanceId,
      name,
      flavor,
      image,
      ownDisk,
      ...secrets
    }: SpawnInstanceInput): Promise<SpawnInstanceResult> => {
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      // A retry whose previous attempt had made progress and then went silent (heartbeat timeout): this
      // host is unreliable. Remove the half-made guest and reschedule, rather than retry here. A busy
      // hypervisor fails before any progress, so its retries (no progress recorded) spawn normally.
      const previous = ctx.info.heartbeatDetails as SpawnProgress | undefined;
      if (ctx.info.attempt > 1 && previous && previous.percent > 0) {
        await driver.destroy({ instanceId });
        throw new Rescheduled(
          instanceId,
          host,
          `the previous spawn attempt on ${host} stopped heartbeating at ${previous.percent}%`
        );
      }
      try {
        // Nova's max_concurrent_builds: the spawn waits for one of the host's build slots, heartbeating
        // 0 % (no progress) meanwhile; only spawns wait, every other step of the host runs on.
        await slots.builds.run(
          () =>
            driver.spawn(
              { instanceId, name, flavor, image, ...guestSecrets(secrets), ...(ownDisk ? { ownDisk } : {}) },
              {
                signal,
                // Only real progress is recorded: it is what tells a retry that a spawn was under way.
                onProgress: (percent) => percent > 0 && ctx.heartbeat({ percent } satisfies SpawnProgress),
              }
            ),
          { signal, onWait: () => ctx.heartbeat({ percent: 0 } satisfies SpawnProgress) }
        );
      } catch (err) {
        // Cancellation (workflow cancelled, heartbeat timeout, worker shutdown) goes out unchanged.
        if (signal.aborted) throw err;
        throw classifySpawnFailure(err, instanceId, host);
      }
      return { host, powerState: PowerState.Running };
    },

    /** Removes the guest, its networks and block devices. Idempotent: `destroyed` is false when absent. */
    destroyInstance: async ({ instanceId }: InstanceRef): Promise<{ destroyed: boolean }> => {
      return { destroyed: await driver.destroy({ instanceId }) };
    },

    /**
     * Sends one ACPI shutdown request and returns the power state right after, without waiting: the stop
     * workflow re-sends it every retry interval on a durable timer and forces a power-off at the timeout.
     */
    requestShutdown: async ({ instanceId }: InstanceRef): Promise<PowerStateResult> => {
      return { powerState: await driver.requestShutdown({ instanceId }) };
    },

    getPowerState: async ({ instanceId }: InstanceRef): Promise<PowerStateResult> => {
      return { powerState: await driver.getPowerState({ instanceId }) };
    },

    /** Forced, immediate power-off. Idempotent. */
    powerOffInstance: async ({ instanceId }: InstanceRef): Promise<PowerStateResult> => {
      return { powerState: await driver.powerOff({ instanceId }) };
    },

    /** Powers the guest on. Idempotent. */
    powerOnInstance: async ({ instanceId }: InstanceRef): Promise<{ powerState: typeof PowerState.Running }> => {
      await driver.powerOn({ instanceId });
      return { powerState: PowerState.Running };
    },

    /** Every guest this host has, for reconciliation (e.g. cleaning up evacuated guests). */
    listGuests: async (): Promise<ListGuestsResult> => {
      return { host, guests: await driver.listGuests() };
    },

    /** The power state of every guest on this host, by instance id (the reconciler's power-state sync). */
    getPowerStates: async (): Promise<{ host: string; states: Record<string, PowerState> }> => {
      return { host, states: await driver.getPowerStates() };
    },

    /**
     * The guest's console log (Nova's get_console_output), its last `lines` lines when given. Read-only;
     * InstanceNotFound when this host has no guest of the instance.
     */
    getConsoleOutput: async ({ instanceId, lines }: ConsoleOutputInput): Promise<ConsoleOutputResult> => {
      return { host, output: await driver.getConsoleOutput({ instanceId, ...(lines === undefined ? {} : { lines }) }) };
    },
  };
}

export type ComputeActivities = ReturnType<typeof createComputeActivities>;

/**
 * The compute activities that heartbeat their own progress, whose details a retry reads (a spawn that
 * went silent part-way reschedules): the compute worker's automatic heartbeat leaves them alone, so it
 * never overwrites their details. Every other compute activity is heartbeated by the worker while it runs.
 */
export const SELF_HEARTBEATING: ReadonlySet<string> = new Set<keyof ComputeActivities>([
  'spawnInstance',
  'rebuildSpawn',
  'resizeInstance',
  // A live migration's copy reports its progress; the destination's receiving beats only while it is
  // alive (its silence is how a destination that died mid-copy shows).
  'liveMigration',
  'receiveLiveMigration',
]);

/** Maps a spawn failure to reschedule / abort / transient, as Nova's _build_and_run_instance does. */
export function classifySpawnFailure(err: unknown, instanceId: string, host: string): DomainError {
  // NOTE(nova): FlavorDiskTooSmall and ImageUnacceptable are BuildAbortException: no other host helps.
  if (err instanceof FlavorDiskSmallerThanImage || err instanceof ImageUnacceptable) {
    return new BuildAborted(instanceId, err.message);
  }
  // HypervisorBusy (transient), BuildAborted, Rescheduled, InstanceNotFound: already classified.
  // NOTE(nova): anything else from the driver is a RescheduledException.
  return asDomainError(err, (reason) => new Rescheduled(instanceId, host, reason));
}

/** Domain errors pass through; anything else becomes `fallback(message)`. */
function asDomainError(err: unknown, fallback: (reason: string) => DomainError): DomainError {
  if (err instanceof DomainError) return err;
  return fallback(err instanceof Error ? err.message : String(err));
}
