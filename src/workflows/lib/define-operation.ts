/**
 * defineOperation: an operation is a definition, and the kernel alone runs it. A definition names its
 * transition (the row of src/domain/transitions.ts), its checks (Nova's `_check_*` pre-checks, which
 * refuse before the lock and change nothing), its steps each with its undo, its stable state on failure
 * and its success write. The kernel does the rest, in one place and in this order:
 *
 *   input validated → checks → the lock (beginOperation) → prepare → check_instance_host → steps
 *   (runStep: task state, progress, events, journal, undo pushed) → the success write (finishOperation)
 *
 * or, on a failure or a cancellation: the compensation stack unwound (last step first, each undo once,
 * non-cancellable), the stable state read, then the one failure writer (failOperation), which also does
 * the one translation of domain errors (src/domain/errors) into typed failures. A step throws a domain
 * error or lets an activity's typed failure pass; it never builds an ApplicationFailure, never rolls back
 * and never writes a fault. Batching of bookkeeping writes belongs to the kernel (operation.ts), not to
 * the steps.
 */
import { CancellationScope, isCancellation } from '@temporalio/workflow';
import type { z } from 'zod';

import type { InstancePatch, InstanceRecord } from '../../domain/instance';
import type { OperationName } from '../../domain/transitions';
import { noHost, parseInput, refusalFailure } from './failures';
import type { KernelOperation, StepSpec } from './kernel';
import { runStep, withKernel } from './kernel';
import { beginOperation, failOperation } from './operation';
import { finishOperation, hostFailure } from './ending';

/**
 * When a cancellation may land once the lock is taken:
 * - `steps`: inside the steps (at their timers; a step keeps its own compute calls whole), then rollback;
 * - `between-steps`: each step runs whole; a cancellation requested meanwhile is taken once it answered,
 *   and the steps done are undone (pause, suspend: the guest is put back);
 * - `none`: the operation runs to its end (start, reboot: a guest left half-way helps nobody).
 */
export type CancellationPolicy = 'steps' | 'between-steps' | 'none';

/** What the steps of one run see: the request, the running operation, its host and what prepare returned. */
export interface OperationRun<R, C> {
  req: R;
  op: KernelOperation;
  /** The instance's host as the lock found it (the kernel refuses an instance with none). */
  host: string;
  ctx: C;
}

/** A named pre-check: resolves to allow the operation, throws (a domain error, typed failure) to refuse it. */
export type OperationCheck<R> = (req: R) => Promise<void>;

export interface OperationDefinition<S extends z.ZodType<{ instanceId: string }>, C = undefined> {
  /** The workflow type (the progress query's operation, the method named in refusals). */
  name: string;
  /** The input's zod schema: bad input fails InvalidRequest before anything is read or written. */
  input: S;
  /** The row of the transitions table (by the request when it depends on it: a hard reboot's). */
  transition: OperationName | ((req: z.output<S>) => OperationName);
  /** Nova's `_check_*` pre-checks, in order, before the lock: a refusal changes nothing. */
  checks?: Record<string, OperationCheck<z.output<S>>>;
  /** Read once the lock is held, before the steps (e.g. the image's shutdown timeout). */
  prepare?: (op: KernelOperation, req: z.output<S>) => Promise<C>;
  /** The steps, in order, each with its undo (StepSpec.undo, pushed before the step runs). */
  steps: (run: OperationRun<z.output<S>, C>) => StepSpec<unknown>[];
  cancellation: CancellationPolicy;
  /** The success write: the instance's state once every step succeeded (its task state is cleared). */
  done: InstancePatch;
  /**
   * The instance's stable state after a failure or cancellation, read once the undos ran; by default
   * (undefined) it is left as the lock found it.
   */
  stableState?: (run: OperationRun<z.output<S>, C | undefined>, err: unknown) => Promise<InstancePatch | undefined>;
}

/** One step of a definition, typed by its result (the list holds steps of different results). */
export function step<T>(spec: StepSpec<T>): StepSpec<unknown> {
  return spec as StepSpec<unknown>;
}

/** The workflow function of a definition: one object argument, the instance's record at the end. */
export type OperationWorkflow<S extends z.ZodType> = (input: z.input<S>) => Promise<InstanceRecord>;

/** Makes a definition a workflow function; see the module comment for what the kernel does. */
export function defineOperation<S extends z.ZodType<{ instanceId: string }>, C = undefined>(
  def: OperationDefinition<S, C>
): OperationWorkflow<S> {
  return async (input) => {
    const req = parseInput(def.input, input);
    await runChecks(def, req);
    const transition = typeof def.transition === 'function' ? def.transition(req) : def.transition;
    // The lock is taken whole or not at all: a cancellation waits for the compare-and-swap to answer.
    const op = withKernel(
      await CancellationScope.nonCancellable(() =>
        beginOperation({ instanceId: req.instanceId, transition, operation: def.name })
      )
    );
    const body = () => runLocked(def, req, op);
    return def.cancellation === 'none' ? CancellationScope.nonCancellable(body) : body();
  };
}

/** The checks, by name, in order; a refusal is translated once and nothing was written. */
async function runChecks<S extends z.ZodType<{ instanceId: string }>, C>(
  def: OperationDefinition<S, C>,
  req: z.output<S>
): Promise<void> {
  for (const check of Object.values(def.checks ?? {})) {
    await check(req).catch((err: unknown) => {
      if (isCancellation(err)) throw err; // nothing written yet: just cancelled
      throw refusalFailure(err);
    });
  }
}

/** Everything after the lock: the steps and the success write, or the one way to fail. */
async function runLocked<S extends z.ZodType<{ instanceId: string }>, C>(
  def: OperationDefinition<S, C>,
  req: z.output<S>,
  op: KernelOperation
): Promise<InstanceRecord> {
  const host = op.before.host;
  let ctx: C | undefined;
  try {
    ctx = def.prepare ? await def.prepare(op, req) : undefined;
    if (host === null) throw noHost(op.before, def.name);
    for (const step of def.steps({ req, op, host, ctx: ctx as C })) {
      if (def.cancellation !== 'between-steps') {
        await runStep(op, step);
        continue;
      }
      await CancellationScope.nonCancellable(() => runStep(op, step));
      // A cancellation requested while the step ran: the steps done are undone below.
      const scope = CancellationScope.current();
      if (scope.consideredCancelled) await scope.cancelRequested;
    }
  } catch (err) {
    return CancellationScope.nonCancellable(async () => {
      const failure = hostFailure(err, host);
      await op.compensations.rollBack(failure);
      const patch = def.stableState && host !== null ? await def.stableState({ req, op, host, ctx }, err) : undefined;
      return failOperation(op, failure, patch);
    });
  }
  return finishOperation(op, def.done);
}
