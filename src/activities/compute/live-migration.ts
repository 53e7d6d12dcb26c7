/**
 * Compute activities of a live migration, on `compute-<host>`, by their Nova names (compute manager
 * RPCs): the pre-checks on both hosts, pre_live_migration on the destination, the copy on the source
 * (heartbeating its progress), the destination receiving meanwhile (heartbeating, so a destination that
 * dies mid-copy shows as a heartbeat timeout), force-complete, the post-migration steps and the rollback.
 * Every step is idempotent, keyed by instance and migration id.
 *
 * Failures (the class name is the Temporal failure type): a pre-check is `MigrationPreCheckError` (the
 * placement attempt moves to the next alternate); the copy `LiveMigrationAborted` (completion timeout) or
 * `MigrationError` (the workflow rolls back to the source); `HypervisorBusy` stays transient;
 * `InstanceNotFound` and cancellation pass through.
 */
import { Context } from '@temporalio/activity';

import type { GuestFlavor, GuestImage, HostCpu, LiveMigrationProgress, VirtDriver } from '../../compute/driver';
import { resolveBlockMigration } from '../../compute/driver';
import { DomainError, MigrationError, MigrationPreCheckError } from '../../domain/errors';
import type { PowerState } from '../../domain/instance';
import { createHostSlots, type HostSlots } from './host-limits';

export interface LiveMigrationRef {
  instanceId: string;
  migrationId: string;
}

export interface CheckDestinationInput {
  instanceId: string;
  sourceHost: string;
  sourceCpu: HostCpu;
  /**
   * As the API took it: `'auto'` lets this host's storage decide (a block migration unless the instance
   * path is shared). Workflows started before `'auto'` was passed through resolved it to true.
   */
  blockMigration: boolean | 'auto';
}

export interface PreLiveMigrationInput extends LiveMigrationRef {
  name: string;
  flavor: GuestFlavor;
  image: GuestImage;
}

export interface LiveMigrationInput extends LiveMigrationRef {
  maxDowntimeMs: number;
  downtimeSteps: number;
  completionTimeoutSecondsPerGb: number;
}

/** Heartbeat details of `liveMigration` (what `describe` shows as the pending activity's progress). */
export type LiveMigrationHeartbeat = LiveMigrationProgress;

/** Heartbeat details of a `liveMigration` waiting for one of its source host's live-migration slots. */
export interface LiveMigrationQueued {
  queued: true;
}

export function createLiveMigrationActivities({
  host,
  driver,
  slots = createHostSlots(),
}: {
  host: string;
  driver: VirtDriver;
  slots?: HostSlots;
}) {
  if (driver.host !== host) throw new Error(`live-migration activities for ${host} given the driver of ${driver.host}`);

  const preCheck = (err: unknown, instanceId: string): DomainError =>
    asDomainError(err, (reason) => new MigrationPreCheckError(reason, { instanceId, host }));
  const migrationError = (err: unknown, ref: LiveMigrationRef): DomainError =>
    asDomainError(err, (reason) => new MigrationError(reason, { ...ref, host }));

  return {
    /** Source: the guest is here, running or paused; returns this host's CPU for the destination's check. */
    checkCanLiveMigrateSource: async ({
      instanceId,
    }: {
      instanceId: string;
    }): Promise<{ host: string; cpu: HostCpu }> => {
      try {
        if (!driver.capabilities.supportsLiveMigration)
          throw new MigrationPreCheckError(`the hypervisor of ${host} cannot live-migrate instance ${instanceId}`, {
            instanceId,
            host,
          });
        return { host, cpu: await driver.checkCanLiveMigrateSource({ instanceId }) };
      } catch (err) {
        throw preCheck(err, instanceId);
      }
    },

    /**
     * Destination: live migration supported, the storage mode fits this host's storage (the driver's
     * capabilities, as Nova's check_can_live_migrate_* do), CPU compatible with the source's, no guest of
     * it here. Writes nothing.
     */
    checkCanLiveMigrateDestination: async (input: CheckDestinationInput): Promise<{ host: string }> => {
      try {
        if (!driver.capabilities.supportsLiveMigration)
          throw new MigrationPreCheckError(`the hypervisor of ${host} cannot receive a live migration`, {
            instanceId: input.instanceId,
            host,
          });
        const blockMigration = resolveBlockMigration(input.blockMigration, driver.capabilities, {
          instanceId: input.instanceId,
          host,
          sourceHost: input.sourceHost,
        });
        await driver.checkCanLiveMigrateDestination({ ...input, blockMigration });
        return { host };
      } catch (err) {
        throw preCheck(err, input.instanceId);
      }
    },

    /** Destination: the port plugged, the empty guest ready to receive. Idempotent by migration id. */
    preLiveMigration: async (input: PreLiveMigrationInput): Promise<{ host: string }> => {
      try {
        await driver.preLiveMigration(input);
        return { host };
      } catch (err) {
        throw migrationError(err, input);
      }
    },

    /** Destination, during the copy: heartbeats until cancelled (the copy is over, or rolled back). */
    receiveLiveMigration: async ({ instanceId, migrationId }: LiveMigrationRef): Promise<never> => {
      const ctx = Context.current();
      try {
        return await driver.receiveLiveMigration(
          { instanceId, migrationId },
          {
            signal: ctx.cancellationSignal,
            onProgress: () => ctx.heartbeat(),
          }
        );
      } catch (err) {
        if (ctx.cancellationSignal.aborted) throw err;
        throw migrationError(err, { instanceId, migrationId });
      }
    },

    /** Source: the memory copy and the switch-over, heartbeating `LiveMigrationHeartbeat`. */
    liveMigration: async (input: LiveMigrationInput) => {
      const ctx = Context.current();
      try {
        // Nova's max_concurrent_live_migrations: the copy waits for one of the source host's slots,
        // heartbeating (no progress) meanwhile.
        const result = await slots.liveMigrations.run(
          () =>
            driver.liveMigration(input, {
              signal: ctx.cancellationSignal,
              onProgress: (p) => ctx.heartbeat(p satisfies LiveMigrationHeartbeat),
            }),
          {
            signal: ctx.cancellationSignal,
            onWait: () => ctx.heartbeat({ queued: true } satisfies LiveMigrationQueued),
          }
        );
        return { host, ...result };
      } catch (err) {
        // Cancellation (an abort, a heartbeat timeout, a worker shutdown) goes out unchanged.
        if (ctx.cancellationSignal.aborted) throw err;
        throw migrationError(err, input);
      }
    },

    /** Source: pauses the guest so the copy converges (Nova's live_migration_force_complete). */
    liveMigrationForceComplete: async ({ instanceId }: { instanceId: string }): Promise<{ forced: boolean }> => {
      return { forced: await driver.forceCompleteLiveMigration({ instanceId }) };
    },

    /** Destination: the received guest runs (post_live_migration_at_destination). */
    postLiveMigrationAtDestination: async (
      ref: LiveMigrationRef
    ): Promise<{ host: string; powerState: PowerState }> => {
      try {
        return { host, powerState: await driver.postLiveMigrationAtDestination(ref) };
      } catch (err) {
        throw migrationError(err, ref);
      }
    },

    /** Source: the source guest, its port and disks removed (post_live_migration). Idempotent. */
    postLiveMigration: async (ref: LiveMigrationRef): Promise<{ destroyed: boolean }> => {
      return { destroyed: await driver.postLiveMigration(ref) };
    },

    /** Destination: the half-received guest removed (rollback_live_migration_at_destination). Idempotent. */
    rollbackLiveMigrationAtDestination: async (ref: LiveMigrationRef): Promise<{ destroyed: boolean }> => {
      return { destroyed: await driver.rollbackLiveMigrationAtDestination(ref) };
    },

    /** Source: the guest resumed (_rollback_live_migration). Idempotent. */
    rollbackLiveMigration: async ({ instanceId }: { instanceId: string }): Promise<{ powerState: PowerState }> => {
      return { powerState: await driver.rollbackLiveMigration({ instanceId }) };
    },
  };
}

export type LiveMigrationActivities = ReturnType<typeof createLiveMigrationActivities>;

function asDomainError(err: unknown, fallback: (reason: string) => DomainError): DomainError {
  if (err instanceof DomainError) return err;
  return fallback(err instanceof Error ? err.message : String(err));
}
