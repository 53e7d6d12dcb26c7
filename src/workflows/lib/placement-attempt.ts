/**
 * The one frame of a placement attempt, whatever it places (a build, a resize's or a live migration's
 * destination, an unshelve's host): one run of a child workflow per host of the scheduler's list, whose
 * RetryPolicy.maximumAttempts is the reschedule budget. Run N takes host N; its steps run on the kernel
 * (the task state, the parent told, the event recorded), its compensations undo what it did on that host,
 * and its failure is either an abort (no other host can fix it: non-retryable) or `Rescheduled`
 * (retryable: the server starts the next run on the next alternate). An attempt declares what differs
 * (HostAttempt); hostAttempt does the rest.
 */
import { CancellationScope, getExternalWorkflowHandle, isCancellation, log, workflowInfo } from '@temporalio/workflow';

import { FailureType, MaxRetriesExceeded } from '../../domain/errors';
import type { TaskState, VmState } from '../../domain/instance';
import { PowerState } from '../../domain/instance';
import { placementProgressSignal } from '../../shared/messages';
import { domainFailure, failureMessage, isFailureOfType, typedFailure } from './failures';
import { tagInstance } from './instance-attributes';
import type { StepRunner, StepSpec } from './kernel';
import type { EventBatch } from './operation';
import { Compensations, runStep, withKernel } from './kernel';
import type { Selection } from './placement-selection';
import { attemptFailure, carriedOf } from './placement-selection';
import { conductor, conductorLocal, scheduler } from './proxies';

/** The event of an alternate's claim (a reschedule's first step). */
export const CLAIM_EVENT = 'conductor_claim_alternate';

/** The event of the late server-group check (Nova's _validate_instance_group_policy). */
export const GROUP_CHECK_EVENT = 'compute_validate_instance_group_policy';

export interface PlacementAttempt {
  /** 1-based: the run of the child workflow. */
  attempt: number;
  /** The host of this run: hosts[attempt - 1]. */
  host: string;
  /**
   * This run as a kernel operation: its steps' events go on `actionId`, its progress names the host.
   * With `batch`, a batched operation (its events go with its next write, its writes are local).
   */
  operation(what: {
    actionId: string;
    operation: string;
    vmState: VmState;
    taskState: TaskState;
    batch?: EventBatch;
  }): StepRunner;
  /**
   * Waits for the signals a batched attempt sent its parent without waiting (the run must not close
   * with one in flight). They have almost always landed while the step ran.
   */
  told(): Promise<void>;
  /**
   * Runs the attempt's steps on the frame: on a failure or a cancellation, its compensation stack is
   * unwound (last step first, each undo once, non-cancellable), `settle` runs (what the run must write
   * before it closes), and the run fails as attemptFailure names it: an abort, or `Rescheduled`.
   */
  run<T>(op: StepRunner, steps: () => Promise<T>, ending: RunEnding): Promise<T>;
  /**
   * Runs one step of this attempt on the kernel, telling the parent which host and step it is on. A
   * batched operation tells it only of the steps marked `tellParent` (the long one: the parent shows it
   * while it runs), and does not wait for the signal to land before the step starts.
   */
  step<T>(
    op: StepRunner,
    taskState: TaskState,
    spec: Omit<StepSpec<T>, 'label' | 'onStart' | 'attempt'> & { tellParent?: boolean }
  ): Promise<T>;
}

/** How a placement attempt's run fails: see attemptFailure. */
export interface AttemptEnding {
  /** The operation in the failure's message ("Build"). */
  operation: string;
  abortTypes: readonly string[];
  abortDefault: string;
}

/** A run's ending as the frame completes it: the list's length, a batched run's settling and carry. */
interface RunEnding extends AttemptEnding {
  /** The hosts of the list (the failure's "attempt N of M"). */
  hosts: number;
  /** Run once the compensations ran, before the run fails (a batched attempt's unwritten events). */
  settle?: () => Promise<void>;
  /** The selection the next run takes, and whether this run is the last host's (see attemptFailure). */
  carry?: { selection: Selection; lastHost: boolean };
}

/**
 * The host of this run, or MaxRetriesExceeded when the list is exhausted (`task`: what the hosts were
 * for, as its message says it). Tags the run with its instance and host.
 */
function attemptOnHost(instanceId: string, hosts: readonly string[], task: string): PlacementAttempt {
  const { attempt, parent } = workflowInfo();
  const assigned = hosts[attempt - 1];
  if (assigned === undefined) throw exhaustedFailure(instanceId, hosts, task);
  const host = assigned;
  tagInstance({ instanceId, host });
  const parentHandle = parent ? getExternalWorkflowHandle(parent.workflowId, parent.runId) : undefined;
  const telling: Promise<void>[] = [];
  return {
    attempt,
    host,
    told: async () => {
      await CancellationScope.nonCancellable(() => Promise.all(telling));
    },
    run: async (op, steps, ending) => {
      try {
        return await steps();
      } catch (err) {
        await op.compensations.rollBack(err);
        await ending.settle?.();
        const what = { operation: ending.operation, instanceId, host, attempt, hosts: ending.hosts };
        throw attemptFailure(err, what, ending.abortTypes, ending.abortDefault, ending.carry);
      }
    },
    operation: ({ actionId, operation, vmState, taskState, batch }) =>
      withKernel({
        instanceId,
        actionId,
        ...(batch ? { batch } : {}),
        progress: {
          instanceId,
          operation,
          vmState,
          taskState,
          powerState: PowerState.NoState,
          host,
          attempt,
          step: `placement attempt ${attempt} on ${host}`,
          hostsTried: [host],
        },
      }),
    step: (op, taskState, { tellParent, ...spec }) => {
      const tell = async () => {
        await parentHandle?.signal(placementProgressSignal, {
          attempt,
          host,
          taskState,
          step: stepLabel(spec.event, host),
        });
      };
      return runStep(op, {
        ...spec,
        label: stepLabel(spec.event, host),
        attempt,
        onStart: async () => {
          if (!op.batch) await tell();
          else if (tellParent)
            // Sent with the step's own command, not waited for here (see `told`); a parent that is gone
            // only misses a progress line.
            telling.push(
              tell().catch((e: unknown) => log.warn('could not tell the parent', { error: failureMessage(e) }))
            );
        },
      });
    },
  };
}

/** A compute step in words, for progress and the Web UI: `compute_spawn` on node-2 is "spawn on node-2". */
export function stepLabel(event: string, host: string): string {
  return `${event.replace(/^compute_/, '').replace(/_/g, ' ')} on ${host}`;
}

/**
 * A placement attempt on its host (a build's, a resize's or a live migration's destination, an
 * unshelve's host): what it declares. The frame does the rest (hostAttempt). `C` is what `before` hands
 * the steps.
 */
export interface HostAttempt<T, C = undefined> {
  instanceId: string;
  /** The action the run's events go on (the parent operation's). */
  actionId: string;
  /**
   * The scheduler's choice, given by the parent; or `select`, asked by the first run (a batched build
   * whose parent has no hosts yet), whose selection every later run takes from the run before's failure
   * (its CarriedSelection; with `batch` only).
   */
  selection: Selection | { select: () => Promise<Selection> };
  /** What the hosts are for, as MaxRetriesExceeded says it once they run out ("unshelving instance …"). */
  task: string;
  /** The parent's workflow type and the instance's states while the run holds it (its progress). */
  operation: string;
  vmState: VmState;
  taskState: TaskState;
  /**
   * Batched bookkeeping (a batched build's): the steps' events go with the run's next write, its writes
   * are local, the parent is told only of the steps marked `tellParent`; before the run ends its unwritten
   * events are written and its signals have landed, and its failure carries the selection to the next
   * run (the last host's failure is final). Not with `inline`.
   */
  batch?: EventBatch;
  /** The name of the claim's release on the compensation stack. */
  release: string;
  /** What the frame's steps (the alternate's claim, the group check) write besides their event. */
  writes?: (host: string) => Pick<StepSpec<unknown>, 'taskState' | 'patch' | 'expect'>;
  /**
   * The instance's server group, its policy checked again on the host once it is claimed (Nova's
   * _validate_instance_group_policy against the members as they are now) when `checkGroup()` says so
   * (asked then: a versioned check asks its patch there). A violation reschedules; no step on the host.
   */
  serverGroup?: string;
  checkGroup?: () => boolean;
  /**
   * Run first on the host, before the claim's release is pushed (its undos are undone after it): what
   * else a failed run undoes there.
   */
  before?: (placement: HostPlacement, op: StepRunner) => C;
  /** How the run fails (see attemptFailure). */
  ending: AttemptEnding;
  /** The steps on the host once it is claimed (and checked); their undos go on the run's stack. */
  steps: (placement: HostPlacement, op: StepRunner, before: C) => Promise<T>;
  /**
   * Inline mode: the attempts run one host after the other in this operation's own workflow (its
   * journal, progress and action), not as runs of a child; see hostAttempt.
   */
  inline?: StepRunner;
}

/** What the steps of a host attempt see of their run: its host and number, its step, its selection. */
export type HostPlacement = Pick<PlacementAttempt, 'attempt' | 'host' | 'step'> & { selection: Selection };

/**
 * Runs one placement attempt on its host: the selection (given, the first run's, or carried), the host
 * of this run (or MaxRetriesExceeded), the run as a kernel operation, the claim's release pushed before
 * the claim, an alternate claimed (the first host was claimed by the scheduler), the group checked, then
 * the steps; on a failure or a cancellation the undos run (last first, each once, non-cancellable) and
 * the run fails as an abort or `Rescheduled` (placement.run). A batched run waits for its signals to
 * land before it closes.
 *
 * Inline (`def.inline`, the operation running the attempts): the same attempt on each host in turn, in
 * the operation's own workflow, with no child run, no parent to tell and no search attributes: attempt N
 * on hosts[N-1], its own stack of undos (the claim's release pushed first), its steps' events on the
 * operation's action. A failure unwinds that attempt's stack; an abort (or a cancellation) ends the
 * search at once; `Rescheduled` moves on to the next host at once (a child's retry waits between runs).
 * Every host failing throws the last `Rescheduled`; no host at all, MaxRetriesExceeded.
 */
export async function hostAttempt<T, C = undefined>(def: HostAttempt<T, C>): Promise<T> {
  if (def.inline) return inlineAttempts(def.inline, def);
  const { instanceId, batch } = def;
  const selection = await selectionOf(def);
  const placement = attemptOnHost(instanceId, selection.hosts, def.task);
  const op = placement.operation({
    actionId: def.actionId,
    operation: def.operation,
    vmState: def.vmState,
    taskState: def.taskState,
    ...(batch ? { batch } : {}),
  });
  const ending: RunEnding = { ...def.ending, hosts: selection.hosts.length };
  const steps = async () => {
    const result = await onHost(def, { ...placement, selection }, op);
    if (batch) await placement.told();
    return result;
  };
  if (!batch) return placement.run(op, steps, ending);
  return placement.run(op, steps, {
    ...ending,
    settle: async () => {
      await Promise.all([flushEvents(batch), placement.told()]);
    },
    carry: { selection, lastHost: placement.attempt >= selection.hosts.length },
  });
}

/** This run's selection: the one given, the scheduler's on the first run, else the one the run before carried. */
async function selectionOf<T, C>(def: HostAttempt<T, C>): Promise<Selection> {
  if (!('select' in def.selection)) return def.selection;
  const { attempt, lastFailure } = workflowInfo();
  if (attempt === 1) return def.selection.select();
  const carried = carriedOf(lastFailure)?.selection;
  if (carried) return carried;
  throw typedFailure(
    def.ending.abortDefault,
    `${def.ending.operation} of instance ${def.instanceId}: run ${attempt} of its placement attempt has no selection from the run before it`
  );
}

/** One attempt on its host, either mode: the claim's release pushed, an alternate claimed, the group checked, the steps. */
async function onHost<T, C>(def: HostAttempt<T, C>, placement: HostPlacement, op: StepRunner): Promise<T> {
  const { instanceId, taskState } = def;
  const { attempt, host } = placement;
  const before = def.before?.(placement, op) as C;
  // NOTE(nova): prep_resize reverts the allocation before it reschedules. Pushed before the claim: a
  // claim that applied but reported a failure is released all the same.
  op.compensations.push(def.release, async () => {
    await scheduler.releaseAllocations({ consumerId: instanceId, host });
  });
  const writes = def.writes?.(host);
  if (attempt > 1)
    await placement.step(op, taskState, {
      event: CLAIM_EVENT,
      ...writes,
      host,
      run: () => scheduler.claimResources({ consumerId: instanceId, host, resources: placement.selection.resources }),
    });
  if (def.serverGroup !== undefined && def.checkGroup?.() === true)
    await placement.step(op, taskState, {
      event: GROUP_CHECK_EVENT,
      ...writes,
      host,
      run: () => conductor.checkServerGroupPolicy({ instanceId, host }),
    });
  return def.steps(placement, op, before);
}

/** hostAttempt's inline mode: each host in turn, in the operation's own workflow (see hostAttempt). */
async function inlineAttempts<T, C>(owner: StepRunner, def: HostAttempt<T, C>): Promise<T> {
  const { instanceId } = def;
  if ('select' in def.selection) throw new TypeError('an inline placement attempt is given its hosts');
  const selection = def.selection;
  const { hosts } = selection;
  let last: unknown = exhaustedFailure(instanceId, hosts, def.task);
  for (const [index, host] of hosts.entries()) {
    const attempt = index + 1;
    // The operation's journal, progress and action, with this attempt's own stack of undos.
    const op: StepRunner = { ...owner, compensations: new Compensations() };
    const placement: HostPlacement = {
      attempt,
      host,
      selection,
      step: (on, _taskState, { tellParent: _tell, ...spec }) =>
        runStep(on, { ...spec, label: stepLabel(spec.event, host), attempt }),
    };
    try {
      return await onHost(def, placement, op);
    } catch (err) {
      await op.compensations.rollBack(err);
      const what = { operation: def.ending.operation, instanceId, host, attempt, hosts: hosts.length };
      const failure = attemptFailure(err, what, def.ending.abortTypes, def.ending.abortDefault);
      if (isCancellation(failure) || !isFailureOfType(failure, FailureType.Rescheduled)) throw failure;
      last = failure;
    }
  }
  throw last;
}

/** The failure of a placement whose hosts ran out: MaxRetriesExceeded for `task`. */
function exhaustedFailure(instanceId: string, hosts: readonly string[], task: string): unknown {
  return domainFailure(new MaxRetriesExceeded(instanceId, hosts, task));
}

/** Writes the events a batched attempt has not written yet (it ends without another write). */
export async function flushEvents(batch: EventBatch): Promise<void> {
  const events = batch.take();
  if (events.length > 0) await CancellationScope.nonCancellable(() => conductorLocal.recordEvents({ events }));
}
