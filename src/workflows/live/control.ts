/**
 * What the live migration's Updates see of it, and the Updates themselves (Nova's live_migration_abort
 * and live_migration_force_complete, REST 2.24 and 2.22). The migration's phase follows its status:
 * `abortLiveMigration` is accepted while it is `preparing` or `running` (Nova's API at 2.65 and later),
 * `forceComplete` while it is `running`; anything else is refused with InvalidMigrationState (400), as
 * Nova refuses it. An abort while `preparing` is taken once pre_live_migration answered (Nova's
 * _do_live_migration finds the migration popped and rolls back, `cancelled`); one while `running` cancels
 * the copy.
 */
import type { CancellationScope } from '@temporalio/workflow';
import { condition, setHandler } from '@temporalio/workflow';

import type { HostUpResult } from '../../activities/scheduler';
import { InvalidMigrationState, LiveMigrationAborted, MigrationError } from '../../domain/errors';
import type { LiveMigrateRequest } from '../../domain/schemas';
import { abortLiveMigrationUpdate, forceCompleteUpdate } from '../../shared/messages';
import type { KernelOperation } from '../lib/kernel';
import { recordStep } from '../lib/operation';
import { computeOn } from '../lib/proxies';
import { LIVE_EVENTS } from './names';

/**
 * Where the migration is: `checking` before its record exists (the checks after the lock), then its
 * status (`accepted` while the destinations are tried), `switched` after the switch-over and `failed`
 * once the copy failed or was aborted.
 */
export type LivePhase = 'checking' | 'accepted' | 'preparing' | 'running' | 'switched' | 'failed';

/** The copy under way: its scope (an abort cancels it) and how it ended. */
export interface CopyControl {
  scope: CancellationScope;
  ended?: 'switched' | 'failed';
}

/** One live migration as its Updates see it: one plain record per run, written by the steps. */
export interface LiveControl {
  readonly req: LiveMigrateRequest;
  readonly migrationId: string;
  phase: LivePhase;
  /** The operation, once the lock is held; the source, once read from it. */
  op?: KernelOperation;
  source?: string;
  /** An operator's abort was accepted. */
  aborted: boolean;
  /** The source's liveness, asked beside the lock. */
  sourceUp?: { host: string; up: Promise<HostUpResult> };
  copy?: CopyControl;
}

/** The migration's status as Nova would name it in a refusal. */
const STATUS_OF: Record<LivePhase, string> = {
  checking: 'accepted',
  accepted: 'accepted',
  preparing: 'preparing',
  running: 'running',
  switched: 'post-migrating',
  failed: 'error',
};

/** Registers the two Updates of a live migration, each with its validator (refusals write nothing). */
export function handleLiveUpdates(live: LiveControl): void {
  setHandler(forceCompleteUpdate, () => forceComplete(live), {
    validator: () => requirePhase(live, 'forceComplete', ['running']),
  });
  setHandler(abortLiveMigrationUpdate, () => abort(live), {
    validator: () => requirePhase(live, 'abortLiveMigration', ['preparing', 'running']),
  });
}

/** The Updates' validator: Nova's InvalidMigrationState (400) outside the phases that allow the method. */
function requirePhase(live: LiveControl, method: string, allowed: LivePhase[]): void {
  if (allowed.includes(live.phase) && !live.aborted) return;
  const status = live.aborted ? 'cancelled' : STATUS_OF[live.phase];
  throw new InvalidMigrationState(live.migrationId, live.req.instanceId, status, method);
}

/** The operation (the validators admit no Update before the migration exists, so it is there). */
function operationOf(live: LiveControl): { op: KernelOperation; source: string } {
  if (!live.op || live.source === undefined) throw MigrationError.saying('the live migration has not started');
  return { op: live.op, source: live.source };
}

async function forceComplete(live: LiveControl): Promise<{ forced: boolean }> {
  const { op, source } = operationOf(live);
  const call = () =>
    computeOn(source, live.req.timeouts).short.liveMigrationForceComplete({ instanceId: live.req.instanceId });
  const forced = await recordStep(op, LIVE_EVENTS.forceComplete, call, {
    host: source,
    details: (f) =>
      f.forced
        ? 'the guest paused so that the copy converges'
        : 'no live migration under way on the source (its copy not yet called, or over)',
  });
  if (forced.forced) op.progress.step = `force-completing: the guest is paused on ${source}`;
  return forced;
}

async function abort(live: LiveControl): Promise<{ aborted: boolean }> {
  const { op, source } = operationOf(live);
  return recordStep(op, LIVE_EVENTS.abort, () => abortCopy(live), {
    host: source,
    details: (a) =>
      a.aborted
        ? live.copy
          ? 'the copy cancelled'
          : 'the migration cancelled once its destination is prepared'
        : 'not aborted: the copy had switched over',
  });
}

async function abortCopy(live: LiveControl): Promise<{ aborted: boolean }> {
  live.aborted = true;
  const copy = live.copy;
  // Preparing: the steps stop once pre_live_migration answered (abortIfAsked), and roll back.
  if (!copy) return { aborted: true };
  copy.scope.cancel();
  // What really happened: a copy that switched over before the cancel reached it is not aborted; the
  // workflow then finishes the migration. NOTE(nova): Nova refuses such an abort (InvalidMigrationState,
  // 400) when it sees the migration past `running`; here the race is answered `aborted: false`.
  await condition(() => copy.ended !== undefined);
  return { aborted: copy.ended !== 'switched' };
}

/** The failure of a migration the operator aborted (the copy cancelled, or stopped before it began). */
export function abortedByOperator(instanceId: string): LiveMigrationAborted {
  return new LiveMigrationAborted(instanceId, 'by the operator (abortLiveMigration)');
}

/** Stops the steps before the copy when an abort was accepted while the destination was prepared. */
export function abortIfAsked(live: LiveControl): void {
  if (live.aborted) throw abortedByOperator(live.req.instanceId);
}
