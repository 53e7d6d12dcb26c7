/**
 * An operation with a point of no return (a live migration's switch-over, a resize's arrival in
 * VERIFY_RESIZE), run by the frame as it runs a definition (define-operation.ts): the lock, the steps on
 * the kernel each with its undo, the success write; or, on a failure or a cancellation, the undos (last
 * first, each once, non-cancellable), the stable state read, then the one failure writer. The one
 * difference: once `steps` has returned, the guest cannot go back, so `commit` runs whole (not
 * cancellable) and a failure in it ends the operation in the state `stableState` reads from what the
 * steps returned, without unwinding the steps before it.
 *
 * Two endings a definition may name besides: a failure the steps are not to be undone for (`keepsSteps`:
 * a resize whose finish failed on its destination stays there, as Nova's), and an undo that could not
 * be done (`undoFailed`: a source that cannot take the instance back), which stops the unwinding and
 * ends the operation as the definition says.
 */
import { CancellationScope } from '@temporalio/workflow';

import type { InstancePatch, InstanceRecord } from '../../domain/instance';
import { finishOperation } from './ending';
import type { KernelOperation } from './kernel';
import { lockOperation } from './kernel';
import type { BeginOptions } from './operation';
import { failOperation } from './operation';

export interface StagedOperation<T, R> {
  /** The lock: the transition row and the workflow type. */
  begin: BeginOptions;
  /** Once the lock is held: the steps up to the point of no return (runStep pushes each undo). */
  steps: (op: KernelOperation) => Promise<T>;
  /** After the point of no return, whole: the success write and the workflow's result from the record. */
  commit: (op: KernelOperation, staged: T) => Promise<{ done: InstancePatch; result: (record: InstanceRecord) => R }>;
  /**
   * The instance's stable state after a failure or a cancellation, read once the undos ran (before the
   * point of no return: `staged` undefined) or at once (after it: what the steps returned); undefined
   * leaves the instance as the lock found it (so does no stableState).
   */
  stableState?: (op: KernelOperation, err: unknown, staged?: T) => Promise<InstancePatch | undefined>;
  /** What the failure writer writes for `err` (default: `err` itself, typed by failOperation). */
  failure?: (err: unknown, op: KernelOperation) => unknown;
  /** What getProgress shows while the undos run (default: the step that failed). */
  undoing?: string;
  /**
   * A failure before the point of no return that is not undone: the operation ends where the steps left
   * it, in the state `stableState` reads (default: every failure is undone).
   */
  keepsSteps?: (err: unknown) => boolean;
  /**
   * An undo threw `undoErr` (which stops the unwinding: the undos below it need what it could not do):
   * the failure to write and the instance's state then. Default: `undoErr` is thrown, nothing written.
   */
  undoFailed?: (op: KernelOperation, failure: unknown, undoErr: unknown) => Promise<Ended>;
}

/** A staged operation once its lock is held. */
export type LockedStages<T, R> = Omit<StagedOperation<T, R>, 'begin'>;

/** How an operation ends when an undo could not be done. */
export interface Ended {
  failure: unknown;
  state: InstancePatch;
}

/** Runs a staged operation; see the module comment. */
export async function runStagedOperation<T, R>(def: StagedOperation<T, R>): Promise<R> {
  return runLockedStages(await lockOperation(def.begin), def);
}

/**
 * Runs a staged operation whose lock was taken by the frame's one begin (lockOperation) apart from it: a
 * delete takes the lock only once the operations holding the instance let go, and again if another
 * slipped in between.
 */
export async function runLockedStages<T, R>(op: KernelOperation, def: LockedStages<T, R>): Promise<R> {
  let staged: T;
  try {
    staged = await def.steps(op);
  } catch (err) {
    return CancellationScope.nonCancellable(() => unwound(def, op, err));
  }
  return CancellationScope.nonCancellable(async () => {
    let committed: Awaited<ReturnType<LockedStages<T, R>['commit']>>;
    try {
      committed = await def.commit(op, staged);
    } catch (err) {
      return failOperation(op, def.failure?.(err, op) ?? err, await def.stableState?.(op, err, staged));
    }
    return committed.result(await finishOperation(op, committed.done));
  });
}

/** A failure before the point of no return: the undos (unless kept), the stable state, the one writer. */
async function unwound<T, R>(def: LockedStages<T, R>, op: KernelOperation, err: unknown): Promise<never> {
  const failure = def.failure?.(err, op) ?? err;
  if (!def.keepsSteps?.(err)) {
    if (def.undoing !== undefined) op.progress.step = def.undoing;
    try {
      await op.compensations.rollBack(failure);
    } catch (undoErr) {
      if (!def.undoFailed) throw undoErr;
      const ended = await def.undoFailed(op, failure, undoErr);
      return failOperation(op, ended.failure, ended.state);
    }
  }
  return failOperation(op, failure, await def.stableState?.(op, err));
}
