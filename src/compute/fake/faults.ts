/**
 * Faults a user or a test injects into one fake compute host through `<stateDir>/<host>/faults.json` (the
 * fake driver's own: a real hypervisor has none). The driver re-reads the file at each operation that can
 * fail, so writing it affects a worker that is already running.
 */
import { z } from 'zod';

const count = z.number().int().nonnegative();

/** Unknown keys are rejected (strict), so a misspelt fault is reported instead of silently doing nothing. */
export const FaultsSchema = z.strictObject({
  spawn: z
    .strictObject({
      /** The next N spawns fail (consumed: the file is written back with N - 1). */
      failNext: count.optional(),
      /** Each spawn fails with this probability, drawn from the driver's rng. */
      failRate: z.number().min(0).max(1).optional(),
      /** How a spawn fails: a driver error (reschedule to an alternate) or a bad image (abort the build). */
      kind: z.enum(['reschedule', 'abort']).optional(),
    })
    .optional(),
  /** The next N spawns stop reporting progress halfway and never finish until aborted (a silent host). */
  hangNext: count.optional(),
  /** The next N spawns fail at once with HypervisorBusy (transient: retried on the same host). */
  busyNext: count.optional(),
  /** Guests on this host ignore ACPI shutdown requests; only a forced power-off stops them. */
  ignoreShutdown: z.boolean().optional(),
  /**
   * The guests of these instances power themselves off (their own `poweroff`, behind the conductor's
   * back) when the host's power states are next read (getPowerStates); consumed.
   */
  guestPowersOff: z.array(z.string().min(1)).optional(),
  // ----- resize: the next N of a step fail (consumed like spawn.failNext) -----
  /** Resize prep on this host as destination fails (a reschedule to the next alternate). */
  prepResize: z.strictObject({ failNext: count.optional() }).optional(),
  /** The disk transfer from this host as source fails halfway (the instance ends in ERROR on its source). */
  migrateDisk: z.strictObject({ failNext: count.optional() }).optional(),
  /** Finishing a resize on this host as destination fails (the instance ends in ERROR here). */
  finishResize: z.strictObject({ failNext: count.optional() }).optional(),
  /**
   * Seconds a step waits on this host before it acts (never consumed): the fault suite holds an operation
   * at the step to kill a process there. Short steps: keep it under the operation's activity timeouts.
   */
  slow: z
    .strictObject({
      /** destroy (delete, and every clean-up of a guest). */
      destroy: z.number().nonnegative().max(600).optional(),
      /** post_live_migration_at_destination (just after a live migration's switch-over). */
      postLiveMigrationAtDestination: z.number().nonnegative().max(600).optional(),
      /** post_live_migration (the source's guest removed after a live migration's switch-over). */
      postLiveMigration: z.number().nonnegative().max(600).optional(),
      /** snapshot (a snapshot's or a shelve's disk copy). */
      snapshot: z.number().nonnegative().max(600).optional(),
    })
    .optional(),
  /** A snapshot of a guest on this host fails (the image is deleted, the instance left as it was). */
  snapshot: z.strictObject({ failNext: count.optional() }).optional(),
  // ----- live migration -----
  liveMigration: z
    .strictObject({
      /** Memory copied per second from this host as source (default 2048 MB/s). */
      bandwidthMbPerSecond: z.number().positive().optional(),
      /** Memory the guests of this host dirty per second while they run (default 64 MB/s). */
      dirtyMbPerSecond: z.number().nonnegative().optional(),
      /** The next N destination pre-checks on this host fail (the migration moves to the next alternate). */
      checkDestinationFailNext: count.optional(),
      /** The next N memory copies from this host fail halfway (the migration rolls back). */
      failNext: count.optional(),
      /** The next N receiving steps on this host as destination go silent (a dead destination). */
      receiveHangNext: count.optional(),
      /** The next N post-migration steps on this host as destination fail (after the switch-over). */
      postFailNext: count.optional(),
    })
    .optional(),
});
export type Faults = z.infer<typeof FaultsSchema>;

/** What the next spawn on a host will do, decided (and counters consumed) when it starts. */
export type SpawnFault =
  | { kind: 'none' }
  | { kind: 'busy' }
  | { kind: 'hang' }
  | { kind: 'fail'; failure: 'reschedule' | 'abort'; reason: string };

/**
 * Picks the spawn fault from the current faults and returns the faults to write back. Order: busy (the
 * hypervisor refuses before doing anything), then hang, then a counted failure, then a random one.
 */
export function takeSpawnFault(faults: Faults, rng: () => number): { fault: SpawnFault; next: Faults } {
  const failure = faults.spawn?.kind ?? 'reschedule';
  if ((faults.busyNext ?? 0) > 0) {
    return { fault: { kind: 'busy' }, next: { ...faults, busyNext: (faults.busyNext ?? 0) - 1 } };
  }
  if ((faults.hangNext ?? 0) > 0) {
    return { fault: { kind: 'hang' }, next: { ...faults, hangNext: (faults.hangNext ?? 0) - 1 } };
  }
  const spawn = faults.spawn;
  if (spawn && (spawn.failNext ?? 0) > 0) {
    return {
      fault: { kind: 'fail', failure, reason: 'injected fault (spawn.failNext)' },
      next: { ...faults, spawn: { ...spawn, failNext: (spawn.failNext ?? 0) - 1 } },
    };
  }
  if (spawn?.failRate !== undefined && spawn.failRate > 0 && rng() < spawn.failRate) {
    return {
      fault: { kind: 'fail', failure, reason: `injected fault (spawn.failRate ${spawn.failRate})` },
      next: faults,
    };
  }
  return { fault: { kind: 'none' }, next: faults };
}
