/**
 * liveMigrate: Nova's live migration (ComputeTaskManager.live_migrate_instance's LiveMigrationTask plus
 * the computes' pre_live_migration, live_migration, post_live_migration and their rollback), made
 * durable, run by the frame as a staged operation (lib/staged-operation.ts: its switch-over is the point
 * of no return). From `active` (the guest running, or paused) only.
 *
 * 1. Checks that write nothing: the instance exists and can move, a requested host is not its own. Then
 *    the operation lock (task state `migrating`, action `live-migration`).
 * 2. The steps (live/move.ts): the instance has a host whose guest runs; the migration record
 *    (`live-migration`, accepted) and the source allocation moved to it (a local activity);
 *    selectDestinations (the source excluded; a requested host filtered unless `force`), awaited with
 *    the source's liveness answer (asked beside the lock: a source found down ends the migration
 *    `error`, as Nova's), then each candidate in turn, in this workflow (live/attempt.ts): claim an
 *    alternate, the pre-checks on the source (the first one started beside the selection), the server
 *    group's policy on the destination, the destination's checks. A failed one moves to the next
 *    alternate, at most `migrateMaxRetries` times (-1, the default: until the hosts run out); running out
 *    fails MigrationPreCheckError. Then pre_live_migration on the destination (preparing) and the copy
 *    (running, live/copy.ts). Updates (live/control.ts): `forceComplete` pauses the guest so the copy
 *    converges; `abortLiveMigration` stops the migration while preparing or copying.
 * 3. After the switch-over (live/finish.ts, not cancellable): post_live_migration_at_destination, beside
 *    it post_live_migration on the source and the migration's source allocation freed, the migration
 *    completed, the instance `active` on the destination.
 *
 * The migration's writes and its steps' events are local activities (each event written beside the
 * migration's next write); the plan, the lock and the end too.
 *
 * Failure, abort or cancellation before the switch-over rolls back to the source (the frame runs the
 * steps' undos); a failure after it leaves the instance `error` on the destination (live/finish.ts).
 */
import { isCancellation, log, uuid4 } from '@temporalio/workflow';

import { FailureType, InvalidRequest } from '../domain/errors';
import type { LiveMigrateInput } from '../domain/schemas';
import { LiveMigrateInputSchema } from '../domain/schemas';
import type { LiveMigrateResult } from '../shared/messages';
import { failureMessage, parseInput, refusalFailure } from './lib/failures';
import { settleEvents } from './lib/operation';
import { preliminaryProgress } from './lib/progress';
import { conductorLocal, scheduler } from './lib/proxies';
import { runStagedOperation } from './lib/staged-operation';
import type { LiveControl } from './live/control';
import { handleLiveUpdates } from './live/control';
import { finishLive, liveStableState } from './live/finish';
import { moveLive } from './live/move';

export { LIVE_EVENTS } from './live/names';

/**
 * Live-migrates one instance and returns its record on the destination, with `liveMigration`: the
 * migration, the downtime, the copy's rounds. Fails typed: InvalidRequest, InstanceNotFound,
 * InstanceInvalidState (not active, another operation holds it, no guest running), ComputeHostUnavailable
 * (the source is down), NoValidHost, MigrationPreCheckError (every destination failed its checks),
 * LiveMigrationAborted (aborted, or not converged in time), MigrationError.
 */
export async function liveMigrate(input: LiveMigrateInput): Promise<LiveMigrateResult> {
  const req = parseInput(LiveMigrateInputSchema, input);
  const { instanceId } = req;
  preliminaryProgress(instanceId, 'liveMigrate', 'checking the request');
  const live: LiveControl = { req, migrationId: uuid4(), phase: 'checking', aborted: false };
  handleLiveUpdates(live);

  // Checks that write nothing: a request that can only fail is refused before the lock.
  const planned = await conductorLocal.planMigration({ instanceId }).catch((err: unknown) => {
    if (isCancellation(err)) throw err;
    throw refusalFailure(err, FailureType.InvalidRequest);
  });
  const current = planned.instance;
  if (current.host !== null && req.host === current.host)
    throw new InvalidRequest(
      'host',
      `${req.host} is the current host of instance ${instanceId} (UnableToMigrateToSelf)`
    );

  // The source's liveness asked beside the lock (its answer awaited with the selection, after it).
  if (current.host !== null) {
    const up = scheduler.isHostUp({ host: current.host });
    up.catch(() => undefined); // awaited (and its failure thrown) by checkSource
    live.sourceUp = { host: current.host, up };
  }
  try {
    return await runStagedOperation({
      begin: {
        instanceId,
        transition: 'liveMigrate',
        operation: 'liveMigrate',
        local: true,
      },
      steps: (op) => moveLive(live, planned, op),
      commit: (op, switched) => finishLive(live, op, switched),
      stableState: (op, err, switched) => liveStableState(live, op, err, switched),
    });
  } finally {
    // No event write left running when the workflow closes (the writes above have waited for them; this
    // catches an ending that wrote nothing after its last step).
    await settleEvents(live.op).catch((err: unknown) =>
      log.warn('could not record an event', { instanceId, error: failureMessage(err) })
    );
  }
}
