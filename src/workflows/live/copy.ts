/**
 * The copy (Nova's live_migration on the source, its monitor, and the destination's incoming side): the
 * source copies the memory in rounds (one heartbeating activity, its progress in its heartbeat details)
 * while the destination receives (a heartbeating activity too, so a destination that dies mid-copy is a
 * heartbeat timeout). Whichever ends first decides: the copy switching over ends the receiving; the
 * destination going silent stops the copy; an abort or a cancellation stops both.
 */
import { CancellationScope, isCancellation, proxyActivities } from '@temporalio/workflow';

import type { ComputeActivities } from '../../activities/compute';
import { MigrationError } from '../../domain/errors';
import type { LiveMigrateRequest } from '../../domain/schemas';
import { computeLongStep } from '../../shared/activity-options';
import { computeTaskQueue } from '../../shared/task-queues';
import { failureMessage, timeoutType } from '../lib/failures';
import { computeOn } from '../lib/proxies';
import type { CopyControl, LiveControl } from './control';
import { abortedByOperator } from './control';

/** What the copy did: its rounds, the memory copied, the switch-over's pause, whether it was forced. */
export interface CopyResult {
  rounds: number;
  copiedMb: number;
  downtimeMs: number;
  forced: boolean;
}

/** The copy from `source` to `dest`; ends switched over, or throws (the caller's undos roll it back). */
export async function copyMemory(live: LiveControl, source: string, dest: string): Promise<CopyResult> {
  const { req, migrationId } = live;
  const { instanceId } = req;
  const receiveScope = new CancellationScope();
  const scope = new CancellationScope();
  const receiving = receiveScope.run(() =>
    receiverOn(dest, req.timeouts).receiveLiveMigration({ instanceId, migrationId })
  );
  const copy: CopyControl = { scope };
  live.copy = copy;
  const copied = scope.run(() =>
    computeOn(source, req.timeouts).longAwaitingCancel.liveMigration({
      instanceId,
      migrationId,
      maxDowntimeMs: req.maxDowntimeMs,
      downtimeSteps: req.downtimeSteps,
      completionTimeoutSecondsPerGb: req.completionTimeoutSecondsPerGb,
    })
  );
  const lost = receiving.then(
    () => new Error('the destination stopped receiving'),
    (err: unknown) => err
  );
  try {
    const first = await Promise.race([copied.then((r) => ({ copied: r })), lost.then((err) => ({ lost: err }))]);
    if ('copied' in first) {
      copy.ended = 'switched';
      return first.copied;
    }
    // The destination went away (or failed) mid-copy: stop the copy, wait for it, roll back.
    scope.cancel();
    await copied.catch(() => undefined);
    const timedOut = timeoutType(first.lost);
    throw new MigrationError(
      timedOut
        ? `destination ${dest} stopped answering during the copy (${timedOut} timeout)`
        : `destination ${dest} failed during the copy: ${failureMessage(first.lost)}`
    );
  } catch (err) {
    if (live.aborted && isCancellation(err)) throw abortedByOperator(instanceId);
    throw err;
  } finally {
    copy.ended ??= 'failed';
    live.phase = copy.ended;
    receiveScope.cancel();
    // Its failure is handled (`lost`); a switched-over copy does not wait for the cancel to land.
    if (copy.ended !== 'switched') await receiving.catch(() => undefined);
  }
}

/**
 * The destination's receiving, tried once: a destination that went silent mid-copy has lost the copy,
 * and a retry there would only wait on a dead host.
 */
function receiverOn(host: string, timeouts: LiveMigrateRequest['timeouts']) {
  return proxyActivities<ComputeActivities>({
    taskQueue: computeTaskQueue(host),
    ...computeLongStep(timeouts),
    retry: { maximumAttempts: 1 },
  });
}
