/**
 * The operation kernel: an operation is a sequence of steps, and `runStep` is the one way a step runs.
 * It advances the task state (a compare-and-swap keyed by the operation), shows the step in the
 * `getProgress` query and in the Web UI's current details, pushes the step's undo onto the operation's
 * compensation stack *before* the step runs (so an undo also covers a step whose answer was lost), runs
 * it, records its event (the finish is recorded even while the operation is being cancelled) and notes
 * in the operation's journal how far it got. Rollback runs the stack, last step first, in a
 * non-cancellable scope (Nova's conductor tasks' execute/rollback, taskflow's revert, Temporal's saga).
 *
 * Nothing in a workflow keeps flags for what to undo: the stack holds the undos, and the journal
 * answers "did this step reach the host?".
 */
import type { ApplicationFailure } from '@temporalio/workflow';
import { CancellationScope, isCancellation, log } from '@temporalio/workflow';

import type { InstancePatch, TaskState } from '../../domain/instance';
import { PowerState, VmState } from '../../domain/instance';
import { failureMessage, timeoutType } from './failures';
import type { BeginOptions, Expectation, Operation, StepOwner } from './operation';
import { advance, beginOperation, recordStep, writeFailure } from './operation';
import { tagInstance } from './instance-attributes';
import { showProgress } from './progress';
import { withActivitySummary } from './proxies';

/** How far one step got: started (sent), done, or failed (with the timeout kind when it timed out). */
export interface JournalEntry {
  event: string;
  /** The compute host the step ran on (null for conductor and scheduler steps). */
  compute: string | null;
  status: 'started' | 'done' | 'failed';
  /** SCHEDULE_TO_START: the host never picked the step up. */
  timeout?: string;
}

/** The steps an operation ran, in order. */
export class Journal {
  readonly entries: JournalEntry[] = [];

  /**
   * Whether any step reached `host`: sent and not refused for want of a worker there (a step that
   * failed with a schedule-to-start timeout never ran on the host; anything else may have).
   */
  reachedHost(host: string): boolean {
    return this.entries.some((e) => e.compute === host && e.timeout !== 'SCHEDULE_TO_START');
  }
}

interface Compensation {
  name: string;
  undo: (failure: unknown) => Promise<void>;
}

/** The undos of the steps run so far; `rollBack` runs them last first. */
export class Compensations {
  private readonly stack: Compensation[] = [];

  push(name: string, undo: (failure: unknown) => Promise<void>): void {
    this.stack.push({ name, undo });
  }

  /**
   * Runs every undo pushed, last first, each once, in a non-cancellable scope. An undo that throws stops
   * the rollback there and its error is thrown (the undos below it still need what it could not do); an
   * undo that may fail harmlessly catches its own errors.
   */
  rollBack(failure: unknown): Promise<void> {
    return CancellationScope.nonCancellable(async () => {
      for (let next = this.stack.pop(); next !== undefined; next = this.stack.pop()) {
        log.info('compensating', { step: next.name, failure: failureMessage(failure) });
        await next.undo(failure);
      }
    });
  }
}

export interface StepSpec<T> {
  /**
   * Run first, before the task state is written (a bookkeeping write of the operation's own records the
   * step's task state must follow, e.g. an evacuation's migration naming its destination).
   */
  before?: () => Promise<void>;
  /** The event recorded on the operation's action (Nova's wrap_instance_event names). */
  event: string;
  /** What getProgress and the Web UI show while the step runs. */
  label: string;
  /** Moves the task state here first (compare-and-swap from the operation's current task state). */
  taskState?: TaskState;
  /** Written with that task state (e.g. the new flavor when a resize finishes on its destination). */
  patch?: InstancePatch;
  /** The compare-and-swap of that write, when not from the operation's current task state. */
  expect?: Expectation;
  /** Run once the task state is written, before the step itself (e.g. telling a parent workflow). */
  onStart?: () => Promise<void>;
  /** The host recorded on the event once the step succeeded, from its result. */
  hostOf?: (result: T) => string | null;
  /** The host recorded on the event (default: the instance's host as the operation sees it). */
  host?: string | null;
  /** The compute host the step runs on, when it is a compute step (the journal's reachedHost). */
  compute?: string;
  attempt?: number;
  /** The event's details once the step succeeded. */
  details?: (result: T) => string;
  /** Undoes whatever part of the step may have happened; safe when the step never ran. */
  undo?: (failure: unknown) => Promise<void>;
  run: () => Promise<T>;
}

/** What runStep needs of an operation: the instance, its action and progress, its journal and compensations. */
export interface StepRunner extends StepOwner {
  journal: Journal;
  compensations: Compensations;
}

/** A running operation as the kernel sees it: the lock and action, its journal and its compensations. */
export type KernelOperation = Operation & StepRunner;

/**
 * The frame's one begin: the operation lock (beginOperation), taken whole or not at all (a cancellation
 * waits for the compare-and-swap to answer), and the operation's journal and compensation stack.
 */
export async function lockOperation(begin: BeginOptions): Promise<KernelOperation> {
  return withKernel(await CancellationScope.nonCancellable(() => beginOperation(begin)));
}

/** Gives an operation (from beginOperation, or a build's own creation) its journal and compensation stack. */
export function withKernel<O extends StepOwner>(op: O): O & StepRunner {
  return Object.assign(op, { journal: new Journal(), compensations: new Compensations() });
}

/** Runs one step of an operation. See the module comment. */
export async function runStep<T>(op: StepRunner, spec: StepSpec<T>): Promise<T> {
  await spec.before?.();
  if (spec.taskState !== undefined) await advance(op, spec.taskState, spec.label, spec.patch, spec.expect);
  else op.progress.step = spec.label;
  showProgress(op.progress);
  if (spec.undo) op.compensations.push(spec.event, spec.undo);
  const host = spec.host === undefined ? op.progress.host : spec.host;
  const entry: JournalEntry = { event: spec.event, compute: spec.compute ?? null, status: 'started' };
  await spec.onStart?.();
  op.journal.entries.push(entry);
  try {
    const attempt = spec.attempt ?? op.progress.attempt;
    const summary = attempt > 0 ? `${spec.label}, attempt ${attempt}` : spec.label;
    const run = () => withActivitySummary(summary, spec.run);
    const result = await recordStep(op, spec.event, run, {
      host,
      hostOf: spec.hostOf,
      attempt: spec.attempt,
      details: spec.details,
    });
    entry.status = 'done';
    return result;
  } catch (err) {
    entry.status = 'failed';
    const timeout = timeoutType(err);
    if (timeout !== undefined) entry.timeout = timeout;
    throw err;
  }
}

/**
 * Runs `body` (steps whose undos go on the operation's stack) on the frame: should it fail or be cancelled,
 * the stack is unwound (last step first, each undo once, non-cancellable) and the failure rethrown; an
 * undo that throws stops the unwinding and its error is thrown instead. For the parts of an operation that
 * end otherwise than by failOperation (a placement attempt's Rescheduled, a reconciler's decision).
 */
export async function compensated<T>(op: StepRunner, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    await op.compensations.rollBack(err);
    throw err;
  }
}

/**
 * A compensation shared by several undos, run at most once: the first call runs it, later calls get the
 * same promise (no second activity is issued).
 */
export function once(run: (failure?: unknown) => Promise<void>): (failure?: unknown) => Promise<void> {
  let running: Promise<void> | undefined;
  return (failure) => (running ??= run(failure));
}

/**
 * Ends a failed or cancelled creation (a build, whose instance is its own from its record's creation) the
 * frame's way: its compensation stack unwound (last step first, non-cancellable), then the one failure
 * writer. Cancelled: the instance ends `deleted` with no host. Failed: `error` with the fault, whose
 * details name the failure's type (a re-submitted build fails the same way), and `named(err)` is thrown:
 * what the operation calls its failure (a build's exhausted reschedules: MaxRetriesExceeded).
 */
export async function failCreation(
  op: StepRunner,
  err: unknown,
  how: { operation: string; named: (err: unknown) => ApplicationFailure }
): Promise<never> {
  const { instanceId, progress } = op;
  await op.compensations.rollBack(err);
  if (isCancellation(err)) {
    // NOTE(nova): deleting an instance during its build ends it deleted with no allocation.
    await writeFailure(op, {
      code: 499,
      message: `${how.operation} cancelled by the user`,
      patch: { vmState: VmState.Deleted, taskState: null, powerState: PowerState.NoState, host: null },
    });
    progress.vmState = VmState.Deleted;
    tagInstance({ vmState: VmState.Deleted });
    throw err;
  }
  const failure = how.named(err);
  log.warn(`${how.operation.toLowerCase()} failed`, { instanceId, type: failure.type, message: failure.message });
  await writeFailure(op, { code: 500, message: failure.message, details: failure.type ?? undefined });
  Object.assign(progress, { vmState: VmState.Error, taskState: null, step: 'failed' });
  tagInstance({ vmState: VmState.Error });
  throw failure;
}
