/**
 * resizeMigrate: Nova's resize (a new flavor) and cold migration (the same flavor, optionally to a
 * requested host), made durable: ComputeTaskManager.migrate_server's MigrationTask plus the compute's
 * prep_resize, resize_instance, finish_resize, then confirm_resize or revert_resize.
 *
 * 1. The operation lock (resize_prep, from active or stopped; action `resize` or `migrate`), then the
 *    migration record (pre-migrating) and the instance's source allocation moved to the migration as
 *    consumer (Nova's replace_allocation_with_migration).
 * 2. selectDestinations with the new flavor, never the current host unless `allowSameHost`; the scheduler
 *    claims the destination for the instance. Each prep on a destination is one run of the `resizeAttempt`
 *    child workflow whose RetryPolicy.maximumAttempts is the reschedule budget (as for builds): run N uses
 *    host N, claims it when it is an alternate, and a reschedulable failure releases that claim and fails
 *    the run retryable. A requested host is never rescheduled elsewhere.
 * 3. On the source: clean power-off and the disk transfer (one heartbeating activity; resize_migrating →
 *    resize_migrated, the instance's host is now the destination). On the destination: the guest with the
 *    new flavor (resize_finish), running only if the instance was. The instance is then `resized`
 *    (VERIFY_RESIZE) and the migration `finished`.
 * 4. The workflow waits, on a durable timer, for the `confirmResize` or `revertResize` Update; nobody
 *    deciding within `confirmWindowSeconds` confirms it (0: wait indefinitely). Confirm (action
 *    `confirmResize`) deletes the source guest and frees the migration's allocation; revert (action
 *    `revertResize`) destroys the destination guest, moves the migration's allocation back to the
 *    instance and puts it back on its source with its old flavor, running if it was.
 *
 * Failures: a scheduling failure (NoValidHost, MaxRetriesExceeded when every destination failed its prep;
 * a destination whose late server-group check fails is rescheduled as one whose prep failed), a move the
 * driver refuses before touching the guest, a host that does not answer, or any failure of the
 * conductor's own writes before VERIFY_RESIZE rolls back to the source in a non-cancellable scope: the
 * destination guest destroyed, the allocation moved back (which also drops the destination's claim), the
 * source guest back in place and powered on if it was; the instance is as it was, with a fault, the
 * migration `error`. As Nova's, a failed disk transfer on the source ends the instance in ERROR there
 * (its guest back in place, off), and a failed finish on the destination ends it in ERROR there with no
 * rollback (the migration's allocation and the source's moved-aside guest deleted). Only when the source
 * itself cannot take the instance back does a rollback end `error`, and then with no allocation at all
 * (what the placement audit expects of an instance in error).
 *
 * A user's confirm while the source host is down is refused (typed, nothing changed), as Nova's API does.
 *
 * Cancelling before VERIFY_RESIZE rolls back the same way; cancelling while the resize awaits its
 * confirmation reverts it (the workflow then ends cancelled); a confirm or revert under way completes.
 *
 * On the frame (lib/staged-operation.ts): the move (resize/move.ts) is one staged operation whose success
 * write leaves the instance `resized`; the confirm and the revert (resize/decision.ts) are each another.
 * The frame takes each lock, pushes each step's undo, unwinds them and writes the failure once.
 */
import {
  allHandlersFinished,
  CancellationScope,
  CancelledFailure,
  condition,
  isCancellation,
} from '@temporalio/workflow';

import { FailureType } from '../domain/errors';
import type { MigrationPlan } from '../domain/migration';
import type { ResizeMigrateInput, ResizeMigrateRequest } from '../domain/schemas';
import { ResizeMigrateInputSchema } from '../domain/schemas';
import type { OperationProgress, ResizeMigrateResult, ResizeOutcome } from '../shared/messages';
import { resizeResult } from '../shared/messages';
import { parseInput, refusalFailure } from './lib/failures';
import { preliminaryProgress } from './lib/progress';
import { conductor } from './lib/proxies';
import { checkSourceUp, confirmMove, revertMove } from './resize/decision';
import type { Moved } from './resize/move';
import { moveResize } from './resize/move';
import type { Verification } from './resize/verification';
import { decide, handleResizeDecisions, openDecision, settleDecision } from './resize/verification';

export { resizeAttempt } from './resize/attempt';
export type { ResizeAttemptInput } from './resize/attempt';

/**
 * Resizes or cold-migrates one instance and returns its instance record, with how the resize ended under
 * `resize`: confirmed (by an Update or automatically after the confirm window) or reverted, and the
 * migration record. The Updates answer with the same outcome. Fails with a typed
 * failure and the instance as it was (with a fault), or in ERROR where Nova's would be: InvalidRequest,
 * InstanceInvalidState, InstanceNotFound, NoValidHost, MaxRetriesExceeded, MigrationError.
 */
export async function resizeMigrate(input: ResizeMigrateInput): Promise<ResizeMigrateResult> {
  const req = parseInput(ResizeMigrateInputSchema, input);
  // getProgress answers from the first workflow task on; the lock then installs the live progress.
  const checking = preliminaryProgress(req.instanceId, 'resizeMigrate', 'checking the request');
  const verification = handleResizeDecisions(req.instanceId);

  const planned = await planBeforeLock(req, checking, verification);
  const moved = await moveResize(req, planned, verification);
  // A user's confirm first checks the source is up (Nova's API does).
  openDecision(verification, () => checkSourceUp(moved.move));
  const cancelled = await awaitDecision(req, moved, verification);
  return CancellationScope.nonCancellable(() => settle(moved, verification, cancelled));
}

/** The move's plan, read before anything is written: the flavor checked (a bad request writes nothing). */
async function planBeforeLock(
  req: ResizeMigrateRequest,
  checking: OperationProgress,
  verification: Verification
): Promise<MigrationPlan> {
  const { instanceId } = req;
  // NOTE(nova): the API checks the flavor before it changes anything: a bad request writes nothing.
  const planned = await conductor.planMigration({ instanceId, flavor: req.flavor }).catch((err: unknown) => {
    if (isCancellation(err)) throw err; // nothing was changed yet
    throw refusalFailure(err, FailureType.InvalidRequest);
  });
  Object.assign(checking, {
    vmState: planned.instance.vmState,
    taskState: planned.instance.taskState,
    powerState: planned.instance.powerState,
    host: planned.instance.host,
    step: 'taking the operation lock',
  });
  verification.progress = checking;
  return planned;
}

/**
 * VERIFY_RESIZE: waits for a decision, or decides by itself when the confirm window ends. Returns the
 * cancellation when the workflow was cancelled meanwhile (the resize is then reverted).
 */
async function awaitDecision(
  req: ResizeMigrateRequest,
  { move }: Moved,
  verification: Verification
): Promise<Error | undefined> {
  const windowSeconds = req.confirmWindowSeconds;
  move.op.progress.step =
    windowSeconds > 0
      ? `awaiting confirmResize or revertResize (confirmed automatically after ${windowSeconds} s)`
      : 'awaiting confirmResize or revertResize';
  try {
    if (windowSeconds > 0) {
      const decided = await condition(() => verification.decision !== undefined, windowSeconds * 1000);
      // NOTE(nova): _poll_unconfirmed_resizes confirms resizes left unconfirmed past resize_confirm_window.
      if (!decided) decide(verification, 'confirmed', true);
    } else {
      await condition(() => verification.decision !== undefined);
    }
    return undefined;
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelling a resize that awaits its confirmation undoes it: the instance goes back as it was.
    decide(verification, 'reverted', false);
    return err instanceof Error ? err : new CancelledFailure('resizeMigrate cancelled');
  }
}

/** Once decided, the confirm or revert runs to its end whatever happens to the workflow (non-cancellable). */
async function settle(
  moved: Moved,
  verification: Verification,
  cancelled: Error | undefined
): Promise<ResizeMigrateResult> {
  const decision = verification.decision ?? { decision: 'confirmed' as const, automatic: true };
  let outcome: ResizeOutcome;
  try {
    outcome =
      decision.decision === 'confirmed'
        ? await confirmMove(moved, decision.automatic)
        : await revertMove(moved, decision.automatic);
  } catch (err) {
    settleDecision(verification, { error: err });
    await condition(allHandlersFinished);
    throw err;
  }
  settleDecision(verification, { outcome });
  await condition(allHandlersFinished);
  if (cancelled) throw cancelled;
  return resizeResult(outcome);
}
