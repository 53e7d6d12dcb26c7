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
import { lockOperation, runStep } from './kernel';
import { failOperation } from './operation';
import { finishOperation, hostFailure } from './ending';

/**
 * When a cancellation may land once the lock is taken:
 * - `steps`: inside the steps (at their timers; a step keeps its own compute calls whole), then rollback;
 * - `between-steps`: each step runs whole; a cancellation requested meanwhile is taken once it answered,
 *   and the steps done are undone (pause, suspend: the guest is put back);
 * - `none`: the operation runs to its end (start, reboot: a guest left half-way helps nobody).
 */
export type CancellationPolicy = 'steps' | 'between-steps' | 'none';

/**
 * What the steps of one run see: the request, the running operation, its host, what prepare returned and
 * what the lookup read before the lock.
 */
export interface OperationRun<R, C, L = undefined> {
  req: R;
  op: KernelOperation;
  /** The instance's host as the lock found it (the kernel refuses an instance with none). */
  host: string;
  ctx: C;
  found: L;
}

/**
 * A named pre-check: resolves to allow the operation, throws (a domain error, typed failure) to refuse it.
 * `found` is what the definition's lookup read (undefined without one).
 */
export type OperationCheck<R, L = undefined> = (req: R, found: L) => Promise<void> | void;

/**
 * A step of a definition, or a step built only when the run reaches it (its host is what an earlier
 * step chose: an evacuation's destination).
 */
export type OperationStep = StepSpec<unknown> | (() => StepSpec<unknown>);

export interface OperationDefinition<S extends z.ZodType<{ instanceId: string }>, C = undefined, L = undefined> {
  /** The workflow type (the progress query's operation, the method named in refusals). */
  name: string;
  /** The input's zod schema: bad input fails InvalidRequest before anything is read or written. */
  input: S;
  /** The row of the transitions table (by the request when it depends on it: a hard reboot's). */
  transition: OperationName | ((req: z.output<S>) => OperationName);
  /**
   * What the checks and the steps read before the lock (the request's instance, flavor, image, hosts):
   * nothing is written, and a failure refuses the operation as a check's does.
   */
  lookup?: (req: z.output<S>) => Promise<L>;
  /** Nova's `_check_*` pre-checks, in order, before the lock: a refusal changes nothing. */
  checks?: Record<string, OperationCheck<z.output<S>, L>>;
  /** A takeover (evacuate): the owner the lock expects to find, as the lookup saw it (null for none). */
  expectOwner?: (found: L) => string | null;
  /** Read once the lock is held, before the steps (e.g. the image's shutdown timeout). */
  prepare?: (op: KernelOperation, req: z.output<S>, found: L) => C | Promise<C>;
  /** The steps, in order, each with its undo (StepSpec.undo, pushed before the step runs). */
  steps: (run: OperationRun<z.output<S>, C, L>) => OperationStep[];
  cancellation: CancellationPolicy;
  /**
   * The success write: the instance's state once every step succeeded (its task state is cleared); a
   * function when it depends on what the steps did (it may write what ends the operation's own records).
   */
  done: InstancePatch | ((run: OperationRun<z.output<S>, C, L>) => InstancePatch | Promise<InstancePatch>);
  /**
   * How the operation names what it failed with (default: a compute activity that timed out is its
   * host's ComputeHostUnavailable); the kernel translates the result into the typed failure once.
   */
  failure?: (run: OperationRun<z.output<S>, C | undefined, L>, err: unknown) => unknown;
  /**
   * The instance's stable state after a failure or cancellation, read once the undos ran; by default
   * (undefined) it is left as the lock found it.
   */
  stableState?: (run: OperationRun<z.output<S>, C | undefined, L>, err: unknown) => Promise<InstancePatch | undefined>;
}

/** One step of a definition, typed by its result (the list holds steps of different results). */
export function step<T>(spec: StepSpec<T>): StepSpec<unknown> {
  return spec as StepSpec<unknown>;
}

/** The workflow function of a definition: one object argument, the instance's record at the end. */
export type OperationWorkflow<S extends z.ZodType> = (input: z.input<S>) => Promise<InstanceRecord>;

/** Makes a definition a workflow function; see the module comment for what the kernel does. */
export function defineOperation<S extends z.ZodType<{ instanceId: string }>, C = undefined, L = undefined>(
  def: OperationDefinition<S, C, L>
): OperationWorkflow<S> {
  return async (input) => {
    const req = parseInput(def.input, input);
    const found = await refusing(async () => (def.lookup ? def.lookup(req) : (undefined as L)));
    for (const check of Object.values(def.checks ?? {})) await refusing(async () => check(req, found));
    const transition = typeof def.transition === 'function' ? def.transition(req) : def.transition;
    const expectOwner = def.expectOwner?.(found);
    const op = await lockOperation({
      instanceId: req.instanceId,
      transition,
      operation: def.name,
      ...(expectOwner !== undefined ? { expectOwner } : {}),
    });
    const body = () => runLocked(def, req, op, found);
    return def.cancellation === 'none' ? CancellationScope.nonCancellable(body) : body();
  };
}

/** A read or a check before the lock; a refusal is translated once and nothing was written. */
async function refusing<T>(run: () => Promise<T>): Promise<T> {
  return run().catch((err: unknown) => {
    if (isCancellation(err)) throw err; // nothing written yet: just cancelled
    throw refusalFailure(err);
  });
}

/** Everything after the lock: the steps and the success write, or the one way to fail. */
async function runLocked<S extends z.ZodType<{ instanceId: string }>, C, L>(
  def: OperationDefinition<S, C, L>,
  req: z.output<S>,
  op: KernelOperation,
  found: L
): Promise<InstanceRecord> {
  const host = op.before.host;
  let ctx: C | undefined;
  let done: InstancePatch;
  try {
    ctx = def.prepare ? await def.prepare(op, req, found) : undefined;
    if (host === null) throw noHost(op.before, def.name);
    const run = { req, op, host, ctx: ctx as C, found };
    for (const entry of def.steps(run)) {
      const step = typeof entry === 'function' ? entry() : entry;
      if (def.cancellation !== 'between-steps') {
        await runStep(op, step);
        continue;
      }
      await CancellationScope.nonCancellable(() => runStep(op, step));
      // A cancellation requested while the step ran: the steps done are undone below.
      const scope = CancellationScope.current();
      if (scope.consideredCancelled) await scope.cancelRequested;
    }
    done = typeof def.done === 'function' ? await def.done(run) : def.done;
  } catch (err) {
    return CancellationScope.nonCancellable(async () => {
      const run = { req, op, host: host ?? '', ctx, found };
      const failure = def.failure && host !== null ? def.failure(run, err) : hostFailure(err, host);
      await op.compensations.rollBack(failure);
      const patch = def.stableState && host !== null ? await def.stableState(run, err) : undefined;
      return failOperation(op, failure, patch);
    });
  }
  return finishOperation(op, done);
}
