/**
 * Carrying out the reconciler's plans (src/domain/reconcile.ts), each on the instance it read: every
 * instance write is a compare-and-swap on the state and owner read, so an instance that moved on since is
 * skipped, never overwritten. Compute calls use the short-lived `cleanup` proxy: a host that does not
 * answer costs seconds, and what it still runs is left for a later pass or its own reconcileHost.
 */
import { workflowInfo } from '@temporalio/workflow';

import { TaskState, VmState } from '../../domain/instance';
import type {
  InterruptedPlan,
  MissingAllocationPlan,
  OrphanedAllocationPlan,
  ReconcileDecision,
  UnconfirmedResizePlan,
} from '../../domain/reconcile';
import { RECONCILE_EVENT } from '../../domain/reconcile';
import type { InstanceRecord } from '../../domain/instance';
import type { ComputeTimeoutsInput } from '../../domain/schemas';
import { failureMessage } from '../lib/failures';
import type { StepRunner } from '../lib/kernel';
import { compensated, runStep, withKernel } from '../lib/kernel';
import { computeOn, conductor, scheduler } from '../lib/proxies';

type Plan = InterruptedPlan | UnconfirmedResizePlan | MissingAllocationPlan | OrphanedAllocationPlan;

/** The decision as reported, before (or without) carrying it out. */
export function decisionOf(plan: Plan, outcome: ReconcileDecision['outcome'], note?: string): ReconcileDecision {
  const subject = plan.kind === 'orphaned-allocation' ? plan.consumerId : plan.instanceId;
  const host =
    plan.kind === 'interrupted-operation'
      ? (plan.destroyGuestOn[0] ?? plan.hostsDown[0] ?? null)
      : plan.kind === 'unconfirmed-resize'
        ? plan.sourceHost
        : plan.host;
  return { kind: plan.kind, subject, host, detail: plan.detail, outcome, ...(note ? { note } : {}) };
}

export async function applyPlan(plan: Plan, timeouts: ComputeTimeoutsInput): Promise<ReconcileDecision> {
  switch (plan.kind) {
    case 'interrupted-operation':
      return healInterrupted(plan, timeouts);
    case 'unconfirmed-resize':
      return confirmResize(plan, timeouts);
    case 'missing-allocation':
      return conductorless(plan, () =>
        scheduler.claimResources({ consumerId: plan.instanceId, host: plan.host, resources: plan.resources })
      );
    case 'orphaned-allocation':
      return conductorless(plan, () => scheduler.releaseAllocations({ consumerId: plan.consumerId, host: plan.host }));
  }
}

/** A placement-only plan: applied, or failed with the reason. */
async function conductorless(plan: Plan, run: () => Promise<unknown>): Promise<ReconcileDecision> {
  try {
    await run();
    return decisionOf(plan, 'applied');
  } catch (err) {
    return decisionOf(plan, 'failed', failureMessage(err));
  }
}

/**
 * An instance whose operation's workflow is closed: taken over (compare-and-swap on the owner read), its
 * half-made guest destroyed, its claim released, its operation's migrations failed, then left stable with
 * the task state cleared, the fault, and the decision's event on the operation's action.
 */
async function healInterrupted(plan: InterruptedPlan, timeouts: ComputeTimeoutsInput): Promise<ReconcileDecision> {
  const { instanceId } = plan;
  const me = workflowInfo().workflowId;
  try {
    await conductor.takeOverTask({
      instanceId,
      expectTaskState: plan.taskState,
      expectOwner: plan.owner,
      requestId: me,
    });
  } catch (err) {
    return decisionOf(plan, 'skipped', `the instance moved on since it was read: ${failureMessage(err)}`);
  }
  const notes: string[] = [];
  let guestLeftOn: string | null = plan.hostsDown[0] ?? null;
  for (const host of plan.destroyGuestOn) {
    try {
      const { destroyed } = await computeOn(host, timeouts).cleanup.destroyInstance({ instanceId });
      notes.push(destroyed ? `guest destroyed on ${host}` : `no guest was left on ${host}`);
    } catch (err) {
      guestLeftOn = host;
      notes.push(`${host} did not destroy the guest (${failureMessage(err)}): left for later`);
    }
  }
  for (const host of plan.hostsDown) notes.push(`${host} is down: its guest is left until it returns`);
  if (plan.releaseInstance) {
    const { released } = await scheduler.releaseAllocations({ consumerId: instanceId });
    notes.push(released > 0 ? `claim released on ${released} host(s)` : 'no claim was held');
  }
  for (const m of plan.migrations) {
    if (m.allocation === 'finished') {
      await conductor.updateMigration({ migrationId: m.migrationId, status: 'finished', method: 'reconcile' });
      notes.push(`migration ${m.migrationId} back to finished`);
      continue;
    }
    if (m.allocation === 'move-back') await scheduler.moveAllocations({ from: m.migrationId, to: instanceId });
    else await scheduler.releaseAllocations({ consumerId: m.migrationId });
    await conductor.updateMigration({ migrationId: m.migrationId, status: 'error', method: 'reconcile' });
    notes.push(
      `migration ${m.migrationId} error, its allocation ${m.allocation === 'move-back' ? 'moved back to the instance' : 'released'}`
    );
  }
  // A guest that could not be destroyed stays attributed to its host.
  const patch = guestLeftOn !== null && plan.patch.host === null ? { ...plan.patch, host: guestLeftOn } : plan.patch;
  const note = notes.join('; ');
  await conductor.settleInstance({
    instanceId,
    expectOwner: me,
    patch: { ...patch, taskState: null },
    fault: plan.fault,
    actionId: plan.actionId,
    event: { name: RECONCILE_EVENT, details: `reconcile ${me}: ${plan.detail}${note ? ` (${note})` : ''}` },
  });
  return decisionOf(plan, 'applied', note || undefined);
}

/**
 * Nova's _poll_unconfirmed_resizes: a resize left in `resized` with no workflow awaiting its decision is
 * confirmed as the resize's own confirm does it (a `confirmResize` action held by the reconciler): the
 * source guest destroyed, the migration's allocation released, the migration `confirmed`, the instance
 * active (stopped if its guest is shut down). A source that is down or does not answer leaves it as it was
 * (the lock released, the migration `finished`), for a later pass: the undo of taking it, on the frame.
 */
async function confirmResize(plan: UnconfirmedResizePlan, timeouts: ComputeTimeoutsInput): Promise<ReconcileDecision> {
  const { instanceId, migrationId, sourceHost } = plan;
  if (!plan.sourceUp)
    return decisionOf(plan, 'skipped', `source host ${sourceHost} is down: confirmed once it is back`);
  const me = workflowInfo().workflowId;
  const op = await takeResized(plan, me);
  if (!('compensations' in op)) return op;
  const moved = await compensated(op, () =>
    conductor.updateMigration({ migrationId, status: 'confirming', expectStatus: ['finished'], method: 'reconcile' })
  ).then(
    () => undefined,
    (err: unknown) => decisionOf(plan, 'skipped', `the migration moved on since it was read: ${failureMessage(err)}`)
  );
  if (moved) return moved;
  const startedAt = new Date().toISOString();
  const destroyed = await compensated(op, () =>
    runStep(op, {
      event: 'compute_confirm_resize',
      label: `destroying the source guest on ${sourceHost}`,
      host: sourceHost,
      compute: sourceHost,
      details: () => `confirmed by reconcile ${me}`,
      run: () => computeOn(sourceHost, timeouts).cleanup.confirmResize({ instanceId, migrationId }),
    })
  ).then(
    () => undefined,
    (err: unknown) =>
      decisionOf(
        plan,
        'failed',
        `${sourceHost} did not destroy the source guest (${failureMessage(err)}): left resized for a later pass`
      )
  );
  if (destroyed) return destroyed;
  await finishConfirm(plan, op.actionId, me, startedAt);
  return decisionOf(
    plan,
    'applied',
    `source guest destroyed on ${sourceHost}, migration confirmed, instance ${plan.vmState}`
  );
}

/**
 * The resized instance taken for the confirm (a `confirmResize` action held by the reconciler) as a kernel
 * operation whose one undo leaves the resize awaiting its decision again; the decision when it moved on.
 *
 * The lock is the conductor's beginOperation activity, not the frame's begin, and no failure writer ends
 * it: a repair of the reconciler's batch is not an operation. A refused lock or a failed step is a
 * decision in the run's result (`skipped`, `failed`), never a fault or a failed workflow; one reconcile run
 * repairs many instances, so it takes no operation's progress query or search attributes; and its undo
 * leaves the resize as it found it, for a later pass. (The limits test names this file for it.)
 */
async function takeResized(plan: UnconfirmedResizePlan, me: string): Promise<StepRunner | ReconcileDecision> {
  const { instanceId, migrationId } = plan;
  let begun: { instance: InstanceRecord; actionId: string };
  try {
    begun = await conductor.beginOperation({
      instanceId,
      action: 'confirmResize',
      requestId: me,
      taskState: TaskState.ResizeConfirming,
      expectVmState: [VmState.Resized],
    });
  } catch (err) {
    return decisionOf(plan, 'skipped', `the instance moved on since it was read: ${failureMessage(err)}`);
  }
  const { instance, actionId } = begun;
  // The confirm on the kernel: its step's event on the confirmResize action, its undo on the stack.
  const op = withKernel({
    instanceId,
    actionId,
    progress: {
      instanceId,
      operation: 'reconcile',
      vmState: instance.vmState,
      taskState: TaskState.ResizeConfirming,
      powerState: instance.powerState,
      host: instance.host,
      attempt: 0,
      step: 'confirming a resize no workflow awaits',
      hostsTried: [],
    },
  });
  // Undone, the resize awaits its decision again (the lock released, the migration back to finished).
  op.compensations.push('leave the resize as it was', async () => {
    await conductor
      .updateMigration({ migrationId, status: 'finished', expectStatus: ['confirming'], method: 'reconcile' })
      .catch(() => undefined); // it never moved to confirming
    await conductor.updateInstance({
      instanceId,
      patch: { taskState: null },
      expectTaskState: TaskState.ResizeConfirming,
      method: 'reconcile',
    });
    await conductor.finishAction({ actionId, result: 'Error' });
  });
  return op;
}

/** The confirm done: the migration's allocation released, the migration confirmed, the instance settled. */
async function finishConfirm(
  plan: UnconfirmedResizePlan,
  actionId: string,
  me: string,
  startedAt: string
): Promise<void> {
  const { instanceId, migrationId, sourceHost } = plan;
  await scheduler.releaseAllocations({ consumerId: migrationId });
  await conductor.updateMigration({
    migrationId,
    status: 'confirmed',
    expectStatus: ['confirming'],
    method: 'reconcile',
  });
  await conductor.updateInstance({
    instanceId,
    patch: { vmState: plan.vmState, taskState: null },
    expectTaskState: TaskState.ResizeConfirming,
    method: 'reconcile',
  });
  if (plan.actionId !== null)
    await event(plan.actionId, RECONCILE_EVENT, sourceHost, 'Success', `reconcile ${me}: ${plan.detail}`, startedAt);
  await conductor.finishAction({ actionId, result: 'Success' });
}

function event(
  actionId: string,
  name: string,
  host: string,
  result: 'Success' | 'Error',
  details: string,
  startedAt: string
): Promise<void> {
  return conductor.recordEvent({
    actionId,
    event: name,
    attempt: 1,
    host,
    result,
    details,
    startedAt,
    finishedAt: new Date().toISOString(),
  });
}
