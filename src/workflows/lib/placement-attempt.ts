/**
 * What every placement attempt shares, whatever it places (a build, a resize's destination): one run of
 * a child workflow per host of the scheduler's list, whose RetryPolicy.maximumAttempts is the reschedule
 * budget. Run N takes host N; its steps run on the kernel (the task state, the parent told, the event
 * recorded), its compensations undo what it did on that host, and its failure is either an abort (no
 * other host can fix it: non-retryable) or `Rescheduled` (retryable: the server starts the next run on
 * the next alternate).
 */
import {
  ApplicationFailure,
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  workflowInfo,
} from '@temporalio/workflow';

import { FailureType } from '../../domain/errors';
import type { TaskState, VmState } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import { PowerState } from '../../domain/instance';
import { placementProgressSignal } from '../../shared/messages';
import { failureMessage, isFailureOfType, refusalFailure, timeoutType, typedFailure } from './failures';
import { tagInstance } from './instance-attributes';
import type { StepRunner, StepSpec } from './kernel';
import type { EventBatch } from './operation';
import { Compensations, runStep, withKernel } from './kernel';
import { scheduler } from './proxies';

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
   * Runs one step of this attempt on the kernel, telling the parent which host and step it is on. A
   * batched operation tells it only of the steps marked `tellParent` (the long one: the parent shows it
   * while it runs), and does not wait for the signal to land before the step starts.
   */
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
  run<T>(op: StepRunner, steps: () => Promise<T>, ending: AttemptEnding): Promise<T>;
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
  /** The hosts of the list (the failure's "attempt N of M"). */
  hosts: number;
  abortTypes: readonly string[];
  abortDefault: string;
  /** Run once the compensations ran, before the run fails (a batched attempt's unwritten events). */
  settle?: () => Promise<void>;
  /** What the next run needs, and whether this run is the last host's (see attemptFailure). */
  carry?: { details: Record<string, unknown>; lastHost: boolean };
}

/**
 * The host of this run, or a MaxRetriesExceeded failure when the list is exhausted (`exhausted` gives the
 * message). Tags the run with its instance and host.
 */
export function attemptOnHost(instanceId: string, hosts: readonly string[], exhausted: () => string): PlacementAttempt {
  const { attempt, parent } = workflowInfo();
  const assigned = hosts[attempt - 1];
  if (assigned === undefined) throw exhaustedFailure(exhausted);
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

/**
 * How a placement attempt fails, once its compensations ran: a cancellation as it is; an abort type as a
 * non-retryable typed failure (`abortDefault` when untyped); anything else on this host (a step failed,
 * an alternate full, a host dead or silent) as the retryable `Rescheduled`.
 */
export function attemptFailure(
  err: unknown,
  what: { operation: string; instanceId: string; host: string; attempt: number; hosts: number },
  abortTypes: readonly string[],
  abortDefault: string,
  /**
   * A batched build's: what the next run needs (the selection, in the failure's details, which the
   * server hands it as its last failure), and the last host's failure made final (no run after it).
   */
  carry?: { details: Record<string, unknown>; lastHost: boolean }
): unknown {
  if (isCancellation(err)) return err;
  const message = failureMessage(err);
  if (isFailureOfType(err, ...abortTypes)) return refusalFailure(err, abortDefault);
  const timeout = timeoutType(err);
  const reason = timeout ? `compute host ${what.host} did not respond (${timeout} timeout)` : message;
  return ApplicationFailure.create({
    type: FailureType.Rescheduled,
    message: `${what.operation} of instance ${what.instanceId} on ${what.host} failed (attempt ${what.attempt} of ${what.hosts}): ${reason}`,
    nonRetryable: carry?.lastHost ?? false,
    details: [{ host: what.host, attempt: what.attempt, ...carry?.details }],
  });
}

/** A compute step in words, for progress and the Web UI: `compute_spawn` on node-2 is "spawn on node-2". */
export function stepLabel(event: string, host: string): string {
  return `${event.replace(/^compute_/, '').replace(/_/g, ' ')} on ${host}`;
}

/**
 * A placement attempt that moves an existing instance onto its host (a resize's destination, a live
 * migration's, an unshelve's host): what it declares. The frame does the rest (hostAttempt).
 */
export interface HostAttempt<T> {
  instanceId: string;
  /** The action the run's events go on (the parent operation's). */
  actionId: string;
  /** The chosen host then the alternates; run N uses hosts[N-1]. */
  hosts: readonly string[];
  /** What the instance claims on an alternate. */
  resources: Resources;
  /** The MaxRetriesExceeded message once the hosts run out. */
  exhausted: () => string;
  /** The parent's workflow type and the instance's states while the run holds it (its progress). */
  operation: string;
  vmState: VmState;
  taskState: TaskState;
  /** The name of the claim's release on the compensation stack. */
  release: string;
  /** What the alternate's claim step writes besides its event (an unshelve's task state). */
  claim?: Pick<StepSpec<unknown>, 'taskState' | 'expect'>;
  /** How the run fails (see attemptFailure); `hosts` is the list's length. */
  ending: Omit<AttemptEnding, 'hosts'>;
  /** The steps on the host once it is claimed; their undos go on the run's stack. */
  steps: (placement: HostPlacement, op: StepRunner) => Promise<T>;
  /**
   * Inline mode: the attempts run one host after the other in this operation's own workflow (its
   * journal, progress and action), not as runs of a child; see hostAttempt.
   */
  inline?: StepRunner;
}

/** What the steps of a host attempt see of their run: its host and number, its step, and its mode. */
export type HostPlacement = Pick<PlacementAttempt, 'attempt' | 'host' | 'step'> & {
  /** Run inline by the operation's workflow (no child run, no parent to tell). */
  inline: boolean;
};

/**
 * Runs one placement attempt of a move on its host: the host of this run (or MaxRetriesExceeded), the
 * run as a kernel operation, the claim's release pushed before the claim, an alternate claimed (the
 * first host was claimed by the scheduler), then the steps; on a failure or a cancellation the undos run
 * (last first, each once, non-cancellable) and the run fails as an abort or `Rescheduled` (placement.run).
 *
 * Inline (`def.inline`, the operation running the attempts): the same attempt on each host in turn, in
 * the operation's own workflow, with no child run, no parent to tell and no search attributes: attempt N
 * on hosts[N-1], its own stack of undos (the claim's release pushed first), its steps' events on the
 * operation's action. A failure unwinds that attempt's stack; an abort (or a cancellation) ends the
 * search at once; `Rescheduled` moves on to the next host at once (a child's retry waits between runs).
 * Every host failing throws the last `Rescheduled`; no host at all, MaxRetriesExceeded.
 */
export async function hostAttempt<T>(def: HostAttempt<T>): Promise<T> {
  if (def.inline) return inlineAttempts(def.inline, def);
  const { instanceId, taskState } = def;
  const placement = attemptOnHost(instanceId, def.hosts, def.exhausted);
  const op = placement.operation({
    actionId: def.actionId,
    operation: def.operation,
    vmState: def.vmState,
    taskState,
  });
  return placement.run(op, () => onHost(def, { ...placement, inline: false }, op), {
    ...def.ending,
    hosts: def.hosts.length,
  });
}

/** One attempt on its host, either mode: the claim's release pushed, an alternate claimed, the steps. */
async function onHost<T>(def: HostAttempt<T>, placement: HostPlacement, op: StepRunner): Promise<T> {
  const { instanceId } = def;
  const { attempt, host } = placement;
  // NOTE(nova): prep_resize reverts the allocation before it reschedules. Pushed before the claim: a
  // claim that applied but reported a failure is released all the same.
  op.compensations.push(def.release, async () => {
    await scheduler.releaseAllocations({ consumerId: instanceId, host });
  });
  if (attempt > 1)
    await placement.step(op, def.taskState, {
      event: 'conductor_claim_alternate',
      ...def.claim,
      host,
      run: () => scheduler.claimResources({ consumerId: instanceId, host, resources: def.resources }),
    });
  return def.steps(placement, op);
}

/** hostAttempt's inline mode: each host in turn, in the operation's own workflow (see hostAttempt). */
async function inlineAttempts<T>(owner: StepRunner, def: HostAttempt<T>): Promise<T> {
  const { instanceId, hosts } = def;
  let last: unknown = exhaustedFailure(def.exhausted);
  for (const [index, host] of hosts.entries()) {
    const attempt = index + 1;
    // The operation's journal, progress and action, with this attempt's own stack of undos.
    const op: StepRunner = { ...owner, compensations: new Compensations() };
    const placement: HostPlacement = {
      attempt,
      host,
      inline: true,
      step: (on, _taskState, { tellParent: _tell, ...spec }) =>
        runStep(on, { ...spec, label: stepLabel(spec.event, host), attempt }),
    };
    try {
      return await onHost(def, placement, op);
    } catch (err) {
      await op.compensations.rollBack(err);
      await def.ending.settle?.();
      const what = { operation: def.ending.operation, instanceId, host, attempt, hosts: hosts.length };
      const failure = attemptFailure(err, what, def.ending.abortTypes, def.ending.abortDefault);
      if (isCancellation(failure) || !isFailureOfType(failure, FailureType.Rescheduled)) throw failure;
      last = failure;
    }
  }
  throw last;
}

/** The failure of a placement whose hosts ran out (`exhausted` gives the message). */
function exhaustedFailure(exhausted: () => string): unknown {
  return typedFailure(FailureType.MaxRetriesExceeded, exhausted());
}
