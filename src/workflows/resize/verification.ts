/**
 * The decision of a resized instance (VERIFY_RESIZE), as the confirmResize and revertResize Updates and a
 * delete's confirmBeforeDelete signal see it: one plain record per run, and the handlers over it.
 * Validators accept only while the resize awaits its confirmation, or a repeat of the decision already
 * taken (which then returns the same outcome and changes nothing).
 */
import { CancellationScope, condition, isCancellation, setHandler } from '@temporalio/workflow';

import { FailureType, InstanceInvalidState, MigrationError } from '../../domain/errors';
import type { OperationProgress, ResizeOutcome } from '../../shared/messages';
import { confirmBeforeDeleteSignal, confirmResizeUpdate, revertResizeUpdate } from '../../shared/messages';
import { refusalFailure } from '../lib/failures';

export type Decision = ResizeOutcome['decision'];

/** One resize's decision as its Updates see it, written by the workflow as it goes. */
export interface Verification {
  readonly instanceId: string;
  decision?: { decision: Decision; automatic: boolean };
  /** The live progress of the operation, to name the instance's state in a rejection. */
  progress?: OperationProgress;
  /** The resize awaits its decision (VERIFY_RESIZE). */
  awaiting: boolean;
  /** What a user's confirm checks before it is taken (the source host up); a refusal changes nothing. */
  confirmCheck?: () => Promise<void>;
  /** Confirms whose check is under way. */
  checking: number;
  outcome?: ResizeOutcome;
  /** What the Updates fail with when the resize ended without an outcome (typed at the boundary). */
  failure?: Error;
}

/**
 * The record of one run's decision, with its handlers installed: the confirmResize and revertResize
 * Updates, and a delete's request, which confirms first (Nova's _confirm_resize_on_deleting) only while a
 * decision is awaited.
 */
export function handleResizeDecisions(instanceId: string): Verification {
  const v: Verification = { instanceId, awaiting: false, checking: 0 };
  setHandler(confirmResizeUpdate, () => handle(v, 'confirmed'), { validator: () => validate(v, 'confirmed') });
  setHandler(revertResizeUpdate, () => handle(v, 'reverted'), { validator: () => validate(v, 'reverted') });
  setHandler(confirmBeforeDeleteSignal, () => {
    if (v.awaiting) decide(v, 'confirmed', true);
  });
  return v;
}

function validate(v: Verification, kind: Decision): void {
  const method = kind === 'confirmed' ? 'confirmResize' : 'revertResize';
  // A confirm being checked (the source host up) holds the decision: a revert meanwhile is refused.
  const taken = v.decision?.decision ?? (v.checking > 0 ? 'confirmed' : undefined);
  if (taken) {
    if (taken === kind) return;
    const state = v.progress?.vmState ?? null;
    const why = `: its resize was already ${taken}`;
    throw new InstanceInvalidState(v.instanceId, 'vmState', state, method, why);
  }
  if (!v.awaiting) {
    const p = v.progress;
    const where = p ? ` while it is in vmState ${p.vmState} (taskState ${p.taskState ?? 'None'})` : '';
    const why = `${where}: no resize awaits confirmation`;
    throw new InstanceInvalidState(v.instanceId, 'vmState', p?.vmState ?? null, method, why);
  }
}

/**
 * The Update's body: takes the decision (unless one was taken) and returns its outcome once settled. A
 * confirm whose check refuses fails typed, and the resize still awaits its decision.
 */
async function handle(v: Verification, kind: Decision): Promise<ResizeOutcome> {
  if (kind === 'confirmed' && v.decision === undefined && v.confirmCheck) {
    v.checking++;
    try {
      await v.confirmCheck();
    } catch (err) {
      throw isCancellation(err) ? err : refusalFailure(err, FailureType.MigrationError);
    } finally {
      v.checking--;
    }
  }
  decide(v, kind, false);
  // The caller gets the outcome even if the workflow is cancelled meanwhile (the decision still runs).
  await CancellationScope.nonCancellable(() => condition(() => v.outcome !== undefined || v.failure !== undefined));
  if (v.outcome) return v.outcome;
  throw v.failure ?? MigrationError.saying('the resize ended without an outcome');
}

/** Takes the decision, unless one was taken. */
export function decide(v: Verification, kind: Decision, automatic: boolean): void {
  v.decision ??= { decision: kind, automatic };
}

/** VERIFY_RESIZE: the Updates are accepted from now on; a user's confirm runs `confirmCheck` first. */
export function openDecision(v: Verification, confirmCheck?: () => Promise<void>): void {
  v.awaiting = true;
  v.confirmCheck = confirmCheck;
}

/** How the decision ended: the outcome the Updates answer with, or their typed failure. */
export function settleDecision(v: Verification, ended: { outcome: ResizeOutcome } | { error: unknown }): void {
  if ('outcome' in ended) {
    v.outcome = ended.outcome;
    return;
  }
  const err = ended.error;
  // The workflows' interceptor types a domain error an Update handler throws; a cancellation is not
  // handed on as it is (it would fail the workflow task), nor an untyped failure (typed MigrationError).
  v.failure = isCancellation(err)
    ? MigrationError.saying('the resize was cancelled')
    : refusalFailure(err, FailureType.MigrationError);
}
