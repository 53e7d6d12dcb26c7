/**
 * Compute activities of a resize or a cold migration, on `compute-<host>`: Nova's compute-manager RPCs of
 * the move, by their Nova names, one activity per step so the Web UI shows each of them.
 *
 * - `prepResize` (destination): can this host take the instance? The scheduler has claimed it already.
 * - `resizeInstance` (source): clean power-off, then the disk transfer, heartbeating `{ phase, percent }`
 *   and honouring cancellation; the guest is then kept aside (powered off) until confirm or revert.
 * - `finishResize` (destination): the guest from the transferred disk, with the new flavor; running only
 *   when the instance was (a stopped instance stays stopped).
 * - `confirmResize` (source): deletes the guest kept aside. `revertResize` (destination): destroys the
 *   guest the move made. `finishRevertResize` (source): puts the kept guest back, powered on when asked.
 *
 * Every step is idempotent, keyed by instance and migration id (Temporal delivers at least once), and
 * safe when the forward step never ran, so the workflow uses revertResize + finishRevertResize as the
 * compensation of a move that failed half-way.
 *
 * Failures (the class name is the Temporal failure type):
 * - `prepResize`: a driver failure on this host is `Rescheduled` (non-retryable here; the placement-attempt
 *   workflow moves to the next alternate). NOTE(nova): prep_resize reschedules on any exception but
 *   BuildAbortException, including UnableToMigrateToSelf. An image larger than the new flavor's root disk
 *   is `MigrationError` (no other host helps).
 * - `resizeInstance`, `finishResize`: `MigrationError`; the instance ends in ERROR as Nova's does, except
 *   for a move the driver refused before touching the guest (ResizeRefused: "Unable to resize disk down",
 *   libvirt's ResizeError raised before the power-off), whose details say `rollback: true` (Nova's
 *   InstanceFaultRollback): the workflow puts the instance back as it was.
 * - `HypervisorBusy` stays transient (the compute retry policy retries it on the same host);
 *   `InstanceNotFound` (no such guest here) and cancellation pass through.
 */
import { Context } from '@temporalio/activity';

import type { GuestFlavor, GuestImage, MigrateDiskPhase, VirtDriver } from '../../compute/driver';
import { FlavorDiskSmallerThanImage, ResizeRefused } from '../../compute/driver';
import { DomainError, MigrationError, Rescheduled } from '../../domain/errors';
import type { PowerState } from '../../domain/instance';
import { DEFAULT_SHUTDOWN_TIMEOUT_SECONDS } from '../../domain/schemas';

export interface MigrationRef {
  instanceId: string;
  migrationId: string;
}

export interface PrepResizeInput extends MigrationRef {
  /** The instance's current host: a same-host move must change the flavor. */
  sourceHost: string;
  oldFlavor: GuestFlavor;
  newFlavor: GuestFlavor;
  image: GuestImage;
}

export interface ResizeInstanceInput extends MigrationRef {
  newFlavor: GuestFlavor;
  /** Clean-shutdown timeout before a forced power-off (the image's os_shutdown_timeout, else 60 s); 0 forces. */
  shutdownTimeoutSeconds?: number;
}

export interface ResizeInstanceResult {
  host: string;
  /** False when the disk had been transferred already (a retried activity). */
  transferred: boolean;
  /** The root disk that was transferred, in GB (the old flavor's). */
  diskGb: number;
}

/** Heartbeat details of `resizeInstance`. */
export interface ResizeProgress {
  phase: MigrateDiskPhase;
  percent: number;
}

export interface FinishResizeInput extends MigrationRef {
  name: string;
  newFlavor: GuestFlavor;
  image: GuestImage;
  /** False for a stopped instance: its guest is created powered off. */
  powerOn: boolean;
}

export interface FinishResizeResult {
  host: string;
  powerState: PowerState;
  /** False when this migration's guest existed already (a retried activity). */
  created: boolean;
}

export interface FinishRevertResizeInput extends MigrationRef {
  /** Power the guest back on (it was running before the move). */
  powerOn: boolean;
}

export function createResizeActivities({ host, driver }: { host: string; driver: VirtDriver }) {
  if (driver.host !== host) throw new Error(`resize activities for ${host} given the driver of ${driver.host}`);

  return {
    /** Destination: checks this host can take the instance (idempotent, writes nothing). */
    prepResize: async (input: PrepResizeInput): Promise<{ host: string }> => {
      // NOTE(nova): prep_resize raises UnableToMigrateToSelf (a reschedule) for a same-host move when the
      // driver lacks the supports_migrate_to_same_host capability.
      if (input.sourceHost === host && !driver.capabilities.supportsMigrateToSameHost)
        throw rescheduled(
          input.instanceId,
          host,
          `Unable to migrate instance (${input.instanceId}) to current host (${host}): its driver cannot resize in place`
        );
      try {
        await driver.prepareResize(input);
      } catch (err) {
        if (err instanceof FlavorDiskSmallerThanImage)
          throw new MigrationError(err.message, { instanceId: input.instanceId, host });
        throw asDomainError(err, (reason) => rescheduled(input.instanceId, host, reason));
      }
      return { host };
    },

    /**
     * Source: powers the guest off (clean, then forced after the timeout) and transfers its disk,
     * heartbeating `ResizeProgress`; cancellation stops it with the guest off and still in place.
     */
    resizeInstance: async (input: ResizeInstanceInput): Promise<ResizeInstanceResult> => {
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      try {
        const result = await driver.migrateDiskAndPowerOff(input, {
          signal,
          shutdownTimeoutSeconds: input.shutdownTimeoutSeconds ?? DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
          onProgress: (phase, percent) => ctx.heartbeat({ phase, percent } satisfies ResizeProgress),
        });
        return { host, ...result };
      } catch (err) {
        // Cancellation (workflow cancelled, heartbeat timeout, worker shutdown) goes out unchanged.
        if (signal.aborted) throw err;
        // NOTE(nova): InstanceFaultRollback: the instance goes back to its old state, not ERROR.
        if (err instanceof ResizeRefused)
          throw new MigrationError(err.message, { ...migrationRef(input, host), rollback: true });
        throw asDomainError(
          err,
          (reason) => new MigrationError(reason, { instanceId: input.instanceId, migrationId: input.migrationId, host })
        );
      }
    },

    /** Destination: creates the guest with the new flavor from the transferred disk. Idempotent by migration id. */
    finishResize: async (input: FinishResizeInput): Promise<FinishResizeResult> => {
      try {
        const { guest, created } = await driver.finishMigration({
          instanceId: input.instanceId,
          migrationId: input.migrationId,
          name: input.name,
          flavor: input.newFlavor,
          image: input.image,
          powerOn: input.powerOn,
        });
        return { host, powerState: guest.powerState, created };
      } catch (err) {
        throw asDomainError(
          err,
          (reason) => new MigrationError(reason, { instanceId: input.instanceId, migrationId: input.migrationId, host })
        );
      }
    },

    /** Source: deletes the guest kept aside for the move. Idempotent: `destroyed` is false when absent. */
    confirmResize: async ({ instanceId }: MigrationRef): Promise<{ destroyed: boolean }> => {
      return { destroyed: await driver.confirmMigration({ instanceId }) };
    },

    /** Destination: destroys the guest this migration made here. Idempotent; a no-op when it never ran. */
    revertResize: async ({ instanceId, migrationId }: MigrationRef): Promise<{ destroyed: boolean }> => {
      return { destroyed: await driver.destroyMigrationTarget({ instanceId, migrationId }) };
    },

    /** Source: puts the kept guest back (powered on when asked) and returns its power state. Idempotent. */
    finishRevertResize: async ({
      instanceId,
      migrationId,
      powerOn,
    }: FinishRevertResizeInput): Promise<{ host: string; powerState: PowerState }> => {
      try {
        return { host, powerState: await driver.finishRevertMigration({ instanceId, migrationId, powerOn }) };
      } catch (err) {
        throw asDomainError(err, (reason) => new MigrationError(reason, { instanceId, migrationId, host }));
      }
    },
  };
}

export type ResizeActivities = ReturnType<typeof createResizeActivities>;

/** The details of a move's failure on `host`. */
function migrationRef({ instanceId, migrationId }: MigrationRef, host: string): Record<string, unknown> {
  return { instanceId, migrationId, host };
}

/** A reschedulable resize failure on one host, worded for a resize (the class words it for a build). */
function rescheduled(instanceId: string, host: string, reason: string): Rescheduled {
  const err = new Rescheduled(instanceId, host, reason);
  err.message = `Resize of instance ${instanceId} on ${host} was re-scheduled: ${reason}`;
  return err;
}

/** Domain errors pass through; anything else becomes `fallback(message)`. */
function asDomainError(err: unknown, fallback: (reason: string) => DomainError): DomainError {
  if (err instanceof DomainError) return err;
  return fallback(err instanceof Error ? err.message : String(err));
}
