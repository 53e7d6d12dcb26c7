/**
 * deleteInstance: Nova's API delete plus the compute's terminate_instance, made durable. From any state:
 *
 * 1. An operation holding the instance (its task state's owner, or a resize waiting in VERIFY_RESIZE) is
 *    cancelled through its workflow, and the delete waits for it to roll back and let go: its own
 *    compensations run first (a build destroys its guest and releases its claim, a resize goes back to its
 *    source, a stop leaves the guest as it is); a resize awaiting confirmation is confirmed instead (Nova's
 *    _confirm_resize_on_deleting). One whose workflow is already closed (terminated, timed
 *    out) cannot let go: the delete takes the instance over from it, naming it in the compare-and-swap.
 * 2. The operation lock (task state `deleting`, action `delete`), taken from any vm state.
 * 3. On each host that may have a guest of it (its host, and both ends of a migration under way): the
 *    guest destroyed with its networks and block devices (`compute_terminate_instance`). A host that is
 *    down, or does not answer within seconds, is a local delete (Nova's _local_delete): the records and
 *    allocations go at once, and the host destroys the guest when it comes back (reconcileHost).
 * 4. Every allocation of the instance and of its migrations removed, the migrations ended
 *    (`conductor_delete_allocations`); the instance `deleted` (soft-deleted: show and list find it).
 *
 * Once the lock is taken the delete is not cancellable (a half-deleted instance helps nobody). Deleting a
 * deleted instance succeeds and changes nothing. NOTE(nova): the API's delete is allowed in every vm
 * state; Nova's delete while a task runs races the task, here the task is stopped first.
 */
import {
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';

import { FailureType, InstanceInvalidState } from '../domain/errors';
import type { InstanceRecord } from '../domain/instance';
import { PowerState, TaskState, VmState } from '../domain/instance';
import type { DeleteInstanceInput } from '../domain/schemas';
import { DeleteInstanceInputSchema } from '../domain/schemas';
import type { DeletePlan, InstanceHolder } from '../activities/conductor/deletion';
import type { OperationProgress } from '../shared/messages';
import { confirmBeforeDeleteSignal } from '../shared/messages';
import { failureMessage, parseInput, refusalFailure, timeoutType } from './lib/failures';
import { lockOperation, runStep } from './lib/kernel';
import type { KernelOperation } from './lib/kernel';
import { runLockedStages } from './lib/staged-operation';
import { preliminaryProgress } from './lib/progress';
import { computeOn, conductor, scheduler } from './lib/proxies';

export const DELETE_EVENTS = {
  /** The operation that held the instance, cancelled and waited for. */
  stopOperation: 'conductor_stop_operation',
  /** The guest destroyed on one host (or left to the host, a local delete). */
  terminate: 'compute_terminate_instance',
  /** Every allocation of the instance and its migrations removed, the migrations ended. */
  allocations: 'conductor_delete_allocations',
} as const;

/** Seconds between looks at a holder being rolled back: 1, 2, 4, 8, then every 10. */
const RELEASE_POLL_SECONDS: readonly number[] = [1, 2, 4, 8];
/** Every this many seconds of waiting, Temporal is asked whether the holder still runs. */
const HOLDER_PROBE_SECONDS = 30;
/** Holders stopped one after the other before the delete gives up (each new holder took the instance meanwhile). */
const MAX_HOLDERS = 5;

/** How the operation that held the instance was dealt with. */
export interface StoppedHolder extends InstanceHolder {
  /**
   * released: it rolled back and let go; confirmed: a resize awaiting confirmation confirmed it and ended;
   * closed: its workflow had ended, so it is taken over; timed-out.
   */
  outcome: 'released' | 'confirmed' | 'closed' | 'timed-out';
  waitedSeconds: number;
}

/** One host's part of the delete. */
export interface TerminateOutcome {
  host: string;
  how: 'destroyed' | 'no-guest' | 'local-delete';
  reason?: string;
}

/**
 * Deletes one instance and returns its record (`deleted`). Fails typed, changing nothing:
 * InvalidRequest, InstanceNotFound; InstanceInvalidState when the operations holding it would not let go
 * (after MAX_HOLDERS of them). A failure after the lock leaves the instance `error` with a fault.
 */
export async function deleteInstance(input: DeleteInstanceInput): Promise<InstanceRecord> {
  const req = parseInput(DeleteInstanceInputSchema, input);
  const { instanceId } = req;
  const me = workflowInfo().workflowId;
  const waiting = preliminaryProgress(instanceId, 'deleteInstance', 'looking at the instance');

  let plan = await planDelete(instanceId);
  // NOTE(nova): deleting a deleted instance is a no-op.
  if (plan.instance.vmState === VmState.Deleted && plan.holder === null && plan.instance.taskState === null)
    return plan.instance;

  // 1. Stop whoever holds the instance, one holder after the other (a new one may take it meanwhile),
  // 2. then take the lock, whole or not at all; an operation that slipped in between is stopped in turn.
  const stopped: StoppedHolder[] = [];
  let begun: KernelOperation | null = null;
  while (begun === null) {
    let takeOverFrom: string | null = null;
    for (;;) {
      Object.assign(waiting, {
        vmState: plan.instance.vmState,
        taskState: plan.instance.taskState,
        powerState: plan.instance.powerState,
        host: plan.instance.host,
      });
      const holder = plan.holder;
      if (holder === null || holder.workflowId === me) break;
      if (stopped.length >= MAX_HOLDERS) throw tooManyHolders(plan.instance, stopped.length, holder.workflowId);
      const result = await stopHolder(holder, plan.instance, req.holderWaitSeconds, waiting);
      stopped.push(result);
      plan = await planDelete(instanceId);
      const letGo = result.outcome === 'released' || result.outcome === 'confirmed';
      if (!letGo && plan.holder?.workflowId === holder.workflowId) {
        // Closed without letting go (or not in time): taken over from it, and from nobody else. A resize
        // awaiting confirmation holds no task state: there is no owner to take over from.
        takeOverFrom = holder.holds === 'task-state' ? holder.workflowId : null;
        break;
      }
    }
    const expectOwner = takeOverFrom;
    const taken = await lockOperation({
      instanceId,
      transition: 'delete',
      operation: 'deleteInstance',
      expectOwner,
    }).then(
      (operation) => ({ operation }),
      (error: unknown) => ({ error })
    );
    if ('operation' in taken) {
      begun = taken.operation;
      break;
    }
    // Someone took the instance between the look and the lock.
    plan = await planDelete(instanceId);
    // A rival delete: this one waits for it and returns what it did.
    if (plan.instance.taskState === TaskState.Deleting && plan.holder?.workflowId !== me)
      return awaitRivalDelete(instanceId, req.holderWaitSeconds);
    if (plan.holder === null || stopped.length >= MAX_HOLDERS) throw taken.error;
  }
  const op = begun;

  // 3-4. Not cancellable from here: the instance is going; it ends deleted, or in error.
  return CancellationScope.nonCancellable(() =>
    runLockedStages(op, {
      steps: () => destroyAndRelease(op, stopped, req),
      commit: () =>
        Promise.resolve({ done: { vmState: VmState.Deleted, powerState: PowerState.NoState }, result: (r) => r }),
      stableState: () => Promise.resolve({ vmState: VmState.Error }),
    })
  );
}

/**
 * 3-4, under the lock: the holders stopped recorded, the guest destroyed on every host it may be on (its
 * own and any migration's), the allocations removed and the migrations ended.
 */
async function destroyAndRelease(
  op: KernelOperation,
  stopped: StoppedHolder[],
  req: ReturnType<typeof DeleteInstanceInputSchema.parse>
): Promise<void> {
  const { instanceId } = op;
  for (const s of stopped) await recordStopped(op, s);
  // Migrations read again under the lock: the holder's rollback may have ended them.
  const { migrations } = await planDelete(instanceId);
  const hosts = [
    ...new Set(
      [op.before.host, ...migrations.flatMap((m) => [m.sourceHost, m.destHost])].filter((h): h is string => h !== null)
    ),
  ];
  for (const [i, host] of hosts.entries()) {
    await runStep(op, {
      event: DELETE_EVENTS.terminate,
      label: `destroying the guest on ${host}`,
      host,
      compute: host,
      attempt: i + 1,
      run: () => terminateOn(instanceId, host, req.timeouts),
      details: describeTerminate,
    });
  }
  await runStep(op, {
    event: DELETE_EVENTS.allocations,
    label: 'removing the allocations',
    host: null,
    run: async () => {
      let released = (await scheduler.releaseAllocations({ consumerId: instanceId })).released;
      for (const m of migrations) released += (await scheduler.releaseAllocations({ consumerId: m.id })).released;
      await conductor.endMigrationsOnDelete({
        migrations: migrations.map((m) => ({ migrationId: m.id, status: m.status })),
      });
      return { released, migrations: migrations.length };
    },
    details: (r) =>
      `${r.released} allocation row(s) removed` + (r.migrations > 0 ? `; ${r.migrations} migration(s) ended` : ''),
  });
}

async function planDelete(instanceId: string): Promise<DeletePlan> {
  return conductor.planDelete({ instanceId }).catch((err: unknown) => {
    if (isCancellation(err)) throw err;
    throw refusalFailure(err, FailureType.InstanceNotFound);
  });
}

/**
 * Cancels the holder's workflow and waits for it to let go of the instance. A workflow that is not
 * running (closed, or unknown to Temporal) cannot let go: reported `closed` without a cancel. One still
 * holding after `waitSeconds` is `timed-out`. A rival delete is not cancelled (it would not stop): it is
 * only waited for. Temporal is asked again every HOLDER_PROBE_SECONDS, so a holder terminated while it
 * rolls back is seen closed within that.
 */
async function stopHolder(
  holder: InstanceHolder,
  instance: InstanceRecord,
  waitSeconds: number,
  progress: OperationProgress
): Promise<StoppedHolder> {
  const rivalDelete = instance.taskState === TaskState.Deleting;
  const running = async (): Promise<boolean> =>
    (await conductor.workflowStatus({ workflowIds: [holder.workflowId] }))[holder.workflowId] === 'RUNNING';
  progress.step = `${rivalDelete ? 'waiting for' : 'cancelling'} ${holder.workflowId}, which holds the instance`;
  if (!(await running())) return { ...holder, outcome: 'closed', waitedSeconds: 0 };
  // NOTE(nova): _confirm_resize_on_deleting: a resize awaiting its confirmation is confirmed, not undone.
  const confirm = holder.holds === 'resize-awaiting-confirmation';
  if (!rivalDelete) {
    try {
      const handle = getExternalWorkflowHandle(holder.workflowId);
      await (confirm ? handle.signal(confirmBeforeDeleteSignal) : handle.cancel());
    } catch (err) {
      if (isCancellation(err)) throw err;
      // It closed between the two questions.
      log.info('the operation holding the instance closed before it could be cancelled', {
        holder: holder.workflowId,
        error: failureMessage(err),
      });
      return { ...holder, outcome: 'closed', waitedSeconds: 0 };
    }
  }
  let waited = 0;
  let sinceProbe = 0;
  for (let round = 0; waited < waitSeconds; round++) {
    const pause = Math.min(RELEASE_POLL_SECONDS[round] ?? 10, waitSeconds - waited);
    await sleep(pause * 1000);
    waited += pause;
    sinceProbe += pause;
    progress.step = `waiting for ${holder.workflowId} to roll back and let go (${waited} of ${waitSeconds} s)`;
    const now = await planDelete(instance.instanceId);
    if (now.holder?.workflowId !== holder.workflowId)
      return { ...holder, outcome: confirm ? 'confirmed' : 'released', waitedSeconds: waited };
    if (sinceProbe >= HOLDER_PROBE_SECONDS) {
      sinceProbe = 0;
      if (!(await running())) return { ...holder, outcome: 'closed', waitedSeconds: waited };
    }
  }
  return { ...holder, outcome: 'timed-out', waitedSeconds: waited };
}

function tooManyHolders(instance: InstanceRecord, count: number, last: string): InstanceInvalidState {
  const why = `: ${count} operations in a row took it (the last ${last}); nothing was deleted`;
  const { instanceId, taskState } = instance;
  return new InstanceInvalidState(instanceId, 'taskState', taskState, 'deleteInstance', why);
}

/** A rival delete holds the instance: wait for it to end, and return the instance as it left it. */
async function awaitRivalDelete(instanceId: string, waitSeconds: number): Promise<InstanceRecord> {
  let waited = 0;
  for (let round = 0; waited < waitSeconds; round++) {
    const plan = await planDelete(instanceId);
    if (plan.instance.taskState !== TaskState.Deleting) {
      if (plan.instance.vmState === VmState.Deleted) return plan.instance;
      break;
    }
    const pause = RELEASE_POLL_SECONDS[round] ?? 10;
    await sleep(pause * 1000);
    waited += pause;
  }
  const why = `: another delete holds it and did not finish within ${waitSeconds} s`;
  throw new InstanceInvalidState(instanceId, 'taskState', TaskState.Deleting, 'deleteInstance', why);
}

/** The stop of a holder, as an event of the delete's action. */
async function recordStopped(op: KernelOperation, s: StoppedHolder): Promise<void> {
  const how = {
    released: `cancelled; it rolled back and let go within ${s.waitedSeconds} s`,
    confirmed: `asked to confirm before the delete; it confirmed the resize and let go within ${s.waitedSeconds} s`,
    closed: 'its workflow was closed (terminated or timed out): the instance was taken over from it',
    'timed-out': `cancelled; it still held the instance after ${s.waitedSeconds} s: the instance was taken over from it`,
  }[s.outcome];
  const at = new Date().toISOString();
  await conductor.recordEvent({
    actionId: op.actionId,
    event: DELETE_EVENTS.stopOperation,
    attempt: 1,
    host: null,
    result: 'Success',
    details: `${s.workflowId} (${s.holds === 'task-state' ? 'held the task state' : 'resize awaiting confirmation'}): ${how}`,
    startedAt: at,
    finishedAt: at,
  });
}

/**
 * Destroys the instance's guest on one host, or leaves it to the host when the host is down or does not
 * answer (a local delete: its reconciliation destroys guests of deleted instances when it comes back).
 */
async function terminateOn(
  instanceId: string,
  host: string,
  timeouts: Parameters<typeof computeOn>[1]
): Promise<TerminateOutcome> {
  const state = await scheduler.isHostUp({ host });
  if (!state.up) return { host, how: 'local-delete', reason: state.reason };
  try {
    const { destroyed } = await computeOn(host, timeouts).cleanup.destroyInstance({ instanceId });
    return { host, how: destroyed ? 'destroyed' : 'no-guest' };
  } catch (err) {
    const timedOut = timeoutType(err);
    if (!timedOut) throw err;
    return { host, how: 'local-delete', reason: `it did not answer (${timedOut} timeout)` };
  }
}

export function describeTerminate(t: TerminateOutcome): string {
  switch (t.how) {
    case 'destroyed':
      return `guest destroyed on ${t.host} with its networks and block devices`;
    case 'no-guest':
      return `no guest on ${t.host}: nothing to destroy`;
    case 'local-delete':
      return `local delete: ${t.host} is down (${t.reason ?? 'no live compute worker'}); it destroys the guest when it comes back`;
  }
}
