/**
 * What every lifecycle operation (stop, start, rebuild, evacuate, resize/migrate) shares: the operation
 * lock taken first (compare-and-swap of the task state, failing at once with InstanceInvalidState), a
 * live progress query, search attributes kept current, and one way to finish, successfully or not, that
 * persists the instance's state, its fault and the action's result before the workflow ends.
 */
import { CancellationScope, isCancellation, log, setHandler, workflowInfo } from '@temporalio/workflow';
import type { ApplicationFailure } from '@temporalio/workflow';

import { FailureType } from '../../domain/errors';
import type { InstancePatch, InstanceRecord, TaskState, VmState } from '../../domain/instance';
import type { OperationName, Transition } from '../../domain/transitions';
import type { EventInput, FaultInput } from '../../activities/conductor';
import { TRANSITIONS } from '../../domain/transitions';
import type { OperationProgress } from '../../shared/messages';
import { getProgressQuery } from '../../shared/messages';
import { failureMessage, failureType, refusalFailure, timeoutType, toWireFailure, typedFailure } from './failures';
import { instanceNameTag, tagInstance } from './instance-attributes';
import { showProgress } from './progress';
import { conductor, conductorLocal } from './proxies';

export interface BeginOptions {
  instanceId: string;
  /** The row of the transitions table: the action, the vm states it starts from, the task state it holds. */
  transition: OperationName;
  /** The workflow type, for the progress query. */
  operation: string;
  /** A takeover (evacuate, delete): the request the caller saw holding the instance, null for none. */
  expectOwner?: string | null;
  /**
   * The operation's bookkeeping as local activities (run inside the workflow task that asks for them, no
   * server round trip each): the lock's write; each step's event, started beside what follows and waited
   * for by the operation's next write (StepOwner.eventsBeside); and the end, the instance's last write
   * finishing the action in the same activity. Declared by the operation (live migration); the others
   * write through the server.
   */
  local?: boolean;
}

/**
 * What a step needs of its operation: the instance, the action its events go on, the live progress and,
 * for a batched operation, the events waiting for its next write.
 */
export type StepOwner = Pick<Operation, 'instanceId' | 'actionId' | 'progress'> & {
  batch?: EventBatch;
  /** Its steps' events written by local activities (no server round trip each), when not batched. */
  localWrites?: boolean;
  /**
   * With localWrites: a step's event write is started, not awaited, and kept here; the operation's next
   * write waits for it beside its own (settleEvents), so the two local activities run together.
   */
  eventsBeside?: Promise<unknown>[];
};

/**
 * The event writes a step left running (StepOwner.eventsBeside), awaited (the first failure thrown);
 * nothing to wait for otherwise.
 */
export async function settleEvents(op: Pick<StepOwner, 'eventsBeside'> | undefined): Promise<void> {
  const pending = op?.eventsBeside?.splice(0) ?? [];
  if (pending.length > 0) await Promise.all(pending);
}

/**
 * A batched operation's bookkeeping (the build's): a finished step's event waits here and goes with the
 * operation's next write (its next task state, its end or its fault), in the same transaction, and those
 * writes are local activities. One write per step, no server round trip for any of them.
 */
export class EventBatch {
  private pending: EventInput[] = [];

  add(event: EventInput): void {
    this.pending.push(event);
  }

  /** Takes the events waiting; `putBack` returns them when the write that took them failed. */
  take(): EventInput[] {
    const events = this.pending;
    this.pending = [];
    return events;
  }

  putBack(events: EventInput[]): void {
    this.pending = [...events, ...this.pending];
  }

  /** Runs a write that carries the waiting events; on its failure they wait for the next one. */
  async with<T>(write: (events: EventInput[]) => Promise<T>): Promise<T> {
    const events = this.take();
    try {
      return await write(events);
    } catch (err) {
      this.putBack(events);
      throw err;
    }
  }
}

/** The compare-and-swap a step's task-state write makes, when not the operation's own current task state. */
export interface Expectation {
  taskState: readonly (TaskState | null)[];
  vmState?: VmState;
}

/** A running operation: its record as it began, its action, and its live progress. */
export interface Operation {
  instanceId: string;
  actionId: string;
  requestId: string;
  /** The instance as the operation found it (after taking the lock). */
  before: InstanceRecord;
  progress: OperationProgress;
  /**
   * BeginOptions.local: completeOperation writes the instance and finishes the action in one local
   * activity (updateInstance's finishAction) instead of two activities in a row.
   */
  localEnd?: boolean;
}

/**
 * Takes the operation lock and starts the action. A conflicting operation fails the workflow at once
 * with InstanceInvalidState (naming the state); an unknown instance with InstanceNotFound.
 */
export async function beginOperation(
  options: BeginOptions
): Promise<Operation & Pick<StepOwner, 'localWrites' | 'eventsBeside'>> {
  const requestId = workflowInfo().workflowId;
  const row: Transition = TRANSITIONS[options.transition];
  const progress: OperationProgress = {
    instanceId: options.instanceId,
    operation: options.operation,
    vmState: 'building',
    taskState: row.taskState,
    powerState: 'nostate',
    host: null,
    attempt: 0,
    step: 'taking the operation lock',
    hostsTried: [],
  };
  setHandler(getProgressQuery, () => progress);
  tagInstance({ instanceId: options.instanceId });
  const { instance, actionId } = await (options.local ? conductorLocal : conductor)
    .beginOperation({
      instanceId: options.instanceId,
      action: row.action,
      requestId,
      taskState: row.taskState,
      expectVmState: [...row.from],
      allowTaskSet: row.takesOver === 'any-but-rebuild',
      ...(row.takesOver === 'any' ? { takeOverAny: true } : {}),
      ...(options.expectOwner !== undefined ? { expectOwner: options.expectOwner } : {}),
    })
    .catch((err: unknown) => {
      if (isCancellation(err)) throw err;
      // Nothing was changed: fail typed, at once.
      throw refusalFailure(err, FailureType.InstanceInvalidState);
    });
  Object.assign(progress, { vmState: instance.vmState, powerState: instance.powerState, host: instance.host });
  tagInstance({ host: instance.host, vmState: instance.vmState, ...instanceNameTag(instance.name) });
  showProgress(progress);
  return {
    instanceId: options.instanceId,
    actionId,
    requestId,
    before: instance,
    progress,
    ...(options.local ? { localEnd: true, localWrites: true, eventsBeside: [] } : {}),
  };
}

/** Moves the operation on to another step (task state and progress), guarded by the current task state. */
export async function advance(
  op: StepOwner,
  taskState: TaskState,
  step: string,
  patch: InstancePatch = {},
  expect?: Expectation
): Promise<InstanceRecord> {
  const input = {
    instanceId: op.instanceId,
    patch: { ...patch, taskState },
    expectTaskState: expect ? [...expect.taskState] : op.progress.taskState,
    ...(expect?.vmState !== undefined ? { expectVmState: expect.vmState } : {}),
    method: op.progress.operation,
  };
  const record = op.batch
    ? await op.batch.with((events) => conductorLocal.updateInstance({ ...input, events }))
    : await conductor.updateInstance(input);
  Object.assign(op.progress, {
    taskState,
    step,
    vmState: record.vmState,
    powerState: record.powerState,
    host: record.host,
  });
  showProgress(op.progress);
  return record;
}

/** Records one step's event for this operation's action. */
export async function recordStep<T>(
  op: StepOwner,
  event: string,
  run: () => Promise<T>,
  where: {
    host?: string | null;
    /** The host recorded once the step succeeded, from its result (e.g. the host a selection chose). */
    hostOf?: (result: T) => string | null;
    attempt?: number;
    details?: (result: T) => string;
  } = {}
): Promise<T> {
  const startedAt = new Date().toISOString();
  const base = {
    actionId: op.actionId,
    event,
    attempt: where.attempt ?? 1,
    host: where.host ?? op.progress.host,
    startedAt,
  };
  // The step happened: its event is recorded even if a cancellation arrives now (a batched operation's
  // goes with its next write, which its end or its fault always makes).
  const record = (event: EventInput) => {
    if (op.batch) return op.batch.add(event);
    const write = CancellationScope.nonCancellable(() =>
      (op.localWrites ? conductorLocal : conductor).recordEvent(event)
    );
    if (!op.eventsBeside) return write;
    // Left running beside what follows; the operation's next write waits for it (settleEvents).
    write.catch(() => undefined);
    op.eventsBeside.push(write);
    return undefined;
  };
  try {
    const result = await run();
    await record({
      ...base,
      ...(where.hostOf ? { host: where.hostOf(result) } : {}),
      result: 'Success',
      details: where.details?.(result),
      finishedAt: new Date().toISOString(),
    });
    return result;
  } catch (err) {
    await record({ ...base, result: 'Error', details: failureMessage(err), finishedAt: new Date().toISOString() });
    throw err;
  }
}

/** Ends the operation successfully: the final state (task state cleared: the lock released), the action's Success. */
export async function completeOperation(op: Operation, patch: InstancePatch): Promise<InstanceRecord> {
  const writes = op.localEnd ? conductorLocal : conductor;
  const record = await writes.updateInstance({
    instanceId: op.instanceId,
    patch: { ...patch, taskState: null },
    expectTaskState: op.progress.taskState,
    method: op.progress.operation,
    ...(op.localEnd ? { finishAction: { actionId: op.actionId, result: 'Success' as const } } : {}),
  });
  if (!op.localEnd) await writes.finishAction({ actionId: op.actionId, result: 'Success' });
  Object.assign(op.progress, {
    vmState: record.vmState,
    taskState: null,
    powerState: record.powerState,
    host: record.host,
    step: 'done',
  });
  tagInstance({ host: record.host, vmState: record.vmState });
  showProgress(op.progress);
  return record;
}

/**
 * Ends the operation after a failure or a cancellation, in a non-cancellable scope: persists the fault,
 * leaves the instance in `patch` (its stable state: by default as it was, with no task), finishes the
 * action as Error, then rethrows the cancellation or fails with a typed ApplicationFailure.
 */
export async function failOperation(op: Operation, thrown: unknown, patch?: InstancePatch): Promise<never> {
  // The one translation of a domain error thrown in workflow code into its typed failure.
  const err = toWireFailure(thrown);
  const cancelled = isCancellation(err);
  const message = cancelled ? `${op.progress.operation} cancelled by the user` : failureMessage(err);
  // A compute host that never answered is unavailable; anything else keeps its own type.
  const type = timeoutType(err)
    ? FailureType.ComputeHostUnavailable
    : (failureType(err) ?? FailureType.OperationFailed);
  const record = await writeFailure(op, {
    code: cancelled ? 499 : 500,
    message,
    patch: { ...(patch ?? { vmState: op.before.vmState, powerState: op.before.powerState }), taskState: null },
    // Only while this operation still holds the instance: an evacuation may have taken it over.
    expectTaskState: op.progress.taskState,
  });
  Object.assign(op.progress, {
    vmState: record.vmState,
    taskState: null,
    powerState: record.powerState,
    host: record.host,
    step: 'failed',
  });
  tagInstance({ host: record.host, vmState: record.vmState });
  showProgress(op.progress);
  log.warn('operation failed', { instanceId: op.instanceId, operation: op.progress.operation, type, message });
  if (cancelled) throw err;
  const failure: ApplicationFailure = typedFailure(type, message);
  throw failure;
}

/**
 * The one writer of an operation's failure (failOperation's, a creation's: kernel.ts failCreation, and
 * a multi-create's for the instances it never handed to a build):
 * the fault, the instance's state and the action's Error in one non-cancellable write; a batched
 * operation's as a local activity carrying its steps' unwritten events.
 */
export function writeFailure(
  op: Pick<StepOwner, 'instanceId' | 'actionId' | 'batch'>,
  fault: Omit<FaultInput, 'instanceId' | 'actionId' | 'events'>
): Promise<InstanceRecord> {
  const { instanceId, actionId, batch } = op;
  if (!batch)
    return CancellationScope.nonCancellable(() => conductor.recordFailure({ instanceId, actionId, ...fault }));
  const events = batch.take();
  return CancellationScope.nonCancellable(() =>
    conductorLocal.recordFailure({ instanceId, actionId, events, ...fault })
  );
}
