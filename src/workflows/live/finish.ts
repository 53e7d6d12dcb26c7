/**
 * The live migration after its switch-over, and how it ends when it fails. After the switch-over (not
 * cancellable, nothing to undo): post_live_migration_at_destination (the guest runs there),
 * post_live_migration on the source (its guest removed), the migration's source allocation freed, the
 * migration completed; the frame then writes the instance `active` on the destination. The source's step
 * and the release run beside the destination's step (the guest can no longer go back to the source; each
 * is idempotent), not after it.
 *
 * Failure, abort or cancellation before the switch-over: the frame has undone the steps (the destination's
 * guest and port removed, the source guest resumed, the allocation back on the source only); the instance
 * stays `active` on the source, with a fault; the migration `error` (or `cancelled` when aborted). A failure
 * after it leaves the instance `error` on the destination, holding its allocation there only, with no
 * guest running anywhere: never two running guests.
 */
import { isCancellation, log } from '@temporalio/workflow';

import { FailureType } from '../../domain/errors';
import type { InstancePatch, InstanceRecord } from '../../domain/instance';
import { PowerState, VmState } from '../../domain/instance';
import type { MigrationRecord } from '../../domain/migration';
import type { LiveMigrateResult, LiveMigrationOutcome } from '../../shared/messages';
import { failureMessage, failureSaying, isFailureOfType } from '../lib/failures';
import type { KernelOperation } from '../lib/kernel';
import { runStep } from '../lib/kernel';
import { settleEvents } from '../lib/operation';
import { computeOn, conductorLocal, scheduler } from '../lib/proxies';
import type { LiveControl } from './control';
import type { CopyResult } from './copy';
import type { Destination } from './move';
import { pauseAgain, setStatus } from './move';
import { LIVE_EVENTS } from './names';

/** After the switch-over: the guest started on the destination, the source cleaned, the migration completed. */
export async function finishLive(
  live: LiveControl,
  op: KernelOperation,
  { to, copy }: { to: Destination; copy: CopyResult }
): Promise<{ done: InstancePatch; result: (record: InstanceRecord) => LiveMigrateResult }> {
  const { req, migrationId } = live;
  const { instanceId } = req;
  const { dest, attempt } = to;
  const released = () => scheduler.releaseAllocations({ consumerId: migrationId });
  /** The source cleaned and its allocation freed beside the destination's step. */
  let cleaning: Promise<unknown> | undefined;
  try {
    await setStatus(live, 'post-migrating', ['running']);
    // NOTE(nova): Nova's _post_live_migration calls post_live_migration_at_destination and cleans the
    // source one after the other; here the source's cleanup and the release of the migration's source
    // allocation run beside the destination's step (the guest has switched over and cannot go back;
    // each step is idempotent, and a failure of the destination's still finds the source cleaned).
    cleaning = Promise.all([removeSourceGuest(live, op, to), released()]);
    cleaning.catch(() => undefined); // awaited below, on both paths
    let { powerState } = await runStep(op, {
      event: LIVE_EVENTS.postDest,
      label: `starting the guest on ${dest}`,
      host: dest,
      compute: dest,
      attempt,
      run: () => computeOn(dest, req.timeouts).short.postLiveMigrationAtDestination({ instanceId, migrationId }),
    });
    const paused = op.before.vmState === VmState.Paused;
    if (paused) ({ powerState } = await pauseAgain(live, op, dest, attempt));
    await cleaning;
    // The post steps' events written beside it.
    const [migration] = await Promise.all([
      conductorLocal.updateMigration({
        migrationId,
        status: 'completed',
        expectStatus: ['post-migrating'],
        method: 'liveMigrate',
        downtimeMs: copy.downtimeMs,
      }),
      settleEvents(op),
    ]);
    return {
      done: {
        vmState: paused ? VmState.Paused : VmState.Active,
        powerState,
        host: dest,
        availabilityZone: to.hostZones[dest] ?? op.before.availabilityZone,
      },
      result: (instance) => ({ ...instance, liveMigration: outcome(migration, copy) }),
    };
  } catch (err) {
    if (cleaning) await cleaning.catch(() => undefined);
    // The post-migrating write failed before the cleanup started: the source's guest still goes.
    else await removeSourceGuest(live, op, to);
    throw afterSwitch(err, dest);
  }
}

/** A failure after the switch-over, typed, saying where the instance is left. */
function afterSwitch(err: unknown, dest: string): unknown {
  if (isCancellation(err)) return err;
  return failureSaying(
    err,
    `${failureMessage(err)} (after the switch-over: the instance is in error on ${dest})`,
    FailureType.MigrationError
  );
}

/**
 * post_live_migration on the source (idempotent), tried once more when the source's worker died holding
 * it (a worker killed just after the switch-over, then restarted, removes the guest on the retry); a host
 * that does not answer reconciles it later.
 */
async function removeSourceGuest(live: LiveControl, op: KernelOperation, { source, attempt }: Destination) {
  const { req, migrationId } = live;
  await runStep(op, {
    event: LIVE_EVENTS.postSource,
    label: `removing the guest from ${source}`,
    host: source,
    compute: source,
    attempt,
    run: () =>
      computeOn(source, req.timeouts).cleanupRetriedOnce.postLiveMigration({ instanceId: req.instanceId, migrationId }),
  }).catch((err: unknown) =>
    // The guest is paused there; the host's reconciliation removes it (the instance lives elsewhere).
    log.warn('could not remove the source guest', { host: source, error: failureMessage(err) })
  );
}

/**
 * The instance's stable state after a failure: before the switch-over, on its source as it was (the
 * undos ran), the migration `cancelled` when aborted or cancelled, else `error`; after it, `error` on the
 * destination with its allocation there only (the migration's on the source freed).
 */
export async function liveStableState(
  live: LiveControl,
  op: KernelOperation,
  err: unknown,
  switched?: { to: Destination }
): Promise<InstancePatch> {
  if (switched) {
    log.error('live migration failed after the switch-over', {
      instanceId: live.req.instanceId,
      error: failureMessage(err),
    });
    await scheduler.releaseAllocations({ consumerId: live.migrationId });
    await markMigration(live, 'error');
    return { vmState: VmState.Error, powerState: PowerState.NoState, host: switched.to.dest };
  }
  const cancelled = live.aborted || isCancellation(err) || isFailureOfType(err, FailureType.LiveMigrationAborted);
  await markMigration(live, cancelled ? 'cancelled' : 'error');
  const { before } = op;
  return {
    vmState: before.vmState,
    powerState: before.powerState,
    host: before.host,
    availabilityZone: before.availabilityZone,
  };
}

async function markMigration(live: LiveControl, status: 'error' | 'cancelled'): Promise<void> {
  // The undos' events written beside it, before the fault.
  const events = settleEvents(live.op).catch((err: unknown) =>
    log.warn('could not record an event', { error: failureMessage(err) })
  );
  if (live.phase === 'checking') return events;
  await Promise.all([
    conductorLocal
      .updateMigration({ migrationId: live.migrationId, status, method: 'liveMigrate' })
      .catch((err: unknown) => log.warn('could not mark the migration', { status, error: failureMessage(err) })),
    events,
  ]);
}

function outcome(migration: MigrationRecord, copy: CopyResult): LiveMigrationOutcome {
  return { migration, downtimeMs: copy.downtimeMs, rounds: copy.rounds, copiedMb: copy.copiedMb, forced: copy.forced };
}
