/**
 * The reconciler's power-state sync (Nova's _sync_power_states), one batch of live hosts at a time: the
 * instances on them read first, then each host asked for all its guests' power states in one call (a
 * host that does not answer within seconds is left for the next pass), then each decision of
 * src/domain/power-sync.ts carried out as a compare-and-swap on the instance read:
 *
 * - stop / force-stop: the instance taken (`powering-off`, a `stop` action), the guest powered off on its
 *   host (idempotent: a guest already off stays off), the instance left `stopped` with the event
 *   `conductor_sync_power_state`. When the host does not answer the power-off, the task state is cleared
 *   and the instance left as it was, the event recorded as an error (the next pass tries again).
 * - record: the guest's power state copied into the record, with a `syncPowerState` action and its event.
 *
 * NOTE(nova): Nova's stop API also sends instance.power_off notifications and runs the stop on the
 * compute host; here the reconciler powers the guest off itself and records the action and event only.
 */
import { uuid4, workflowInfo } from '@temporalio/workflow';

import type { PowerState } from '../../domain/instance';
import type { PowerSyncPlan } from '../../domain/power-sync';
import { decidePowerSync } from '../../domain/power-sync';
import type { ReconcileDecision } from '../../domain/reconcile';
import type { ComputeTimeoutsInput } from '../../domain/schemas';
import { failureMessage } from '../lib/failures';
import { computeOn, conductor } from '../lib/proxies';

const decisionOf = (plan: PowerSyncPlan, outcome: ReconcileDecision['outcome'], note?: string): ReconcileDecision => ({
  kind: 'power-state-sync',
  subject: plan.instanceId,
  host: plan.host,
  detail: plan.detail,
  outcome,
  ...(note ? { note } : {}),
});

/** Syncs the power states of the instances on `hosts` (live ones); returns every decision. */
export async function syncPowerStates(
  hosts: readonly string[],
  dryRun: boolean,
  timeouts: ComputeTimeoutsInput
): Promise<ReconcileDecision[]> {
  if (hosts.length === 0) return [];
  const instances = await conductor.instancesOnHosts({ hosts: [...hosts] });
  const answers = await Promise.all(
    hosts.map((host) =>
      computeOn(host, timeouts)
        .cleanup.getPowerStates()
        .then(
          ({ states }) => ({ host, states }),
          (err: unknown) => ({ host, error: failureMessage(err) })
        )
    )
  );
  const decisions: ReconcileDecision[] = [];
  for (const answer of answers) {
    if ('error' in answer) {
      decisions.push({
        kind: 'power-state-sync',
        subject: answer.host,
        host: answer.host,
        detail: 'ask the host for its guests’ power states',
        outcome: 'skipped',
        note: `the host did not answer: ${answer.error}`,
      });
      continue;
    }
    for (const plan of decidePowerSync(answer.host, instances, answer.states))
      decisions.push(dryRun ? decisionOf(plan, 'planned') : await applyPowerSync(plan, timeouts));
  }
  return decisions;
}

async function applyPowerSync(plan: PowerSyncPlan, timeouts: ComputeTimeoutsInput): Promise<ReconcileDecision> {
  const read = {
    instanceId: plan.instanceId,
    host: plan.host,
    expectVmState: plan.expectVmState,
    expectPowerState: plan.expectPowerState,
  };
  const requestId = `${workflowInfo().workflowId}:power-sync:${uuid4()}`;
  try {
    if (plan.action === 'record') {
      const { recorded } = await conductor.recordPowerState({
        ...read,
        powerState: plan.guestPowerState,
        requestId,
        details: plan.detail,
      });
      return recorded
        ? decisionOf(plan, 'applied')
        : decisionOf(plan, 'skipped', 'the instance moved on since it was read');
    }
    const owner = workflowInfo().workflowId;
    const { taken, actionId } = await conductor.beginPowerSync({ ...read, owner, requestId });
    if (!taken || actionId === null) return decisionOf(plan, 'skipped', 'the instance moved on since it was read');
    let powerState: PowerState | null = null;
    let note: string | undefined;
    try {
      ({ powerState } = await computeOn(plan.host, timeouts).cleanup.powerOffInstance({ instanceId: plan.instanceId }));
    } catch (err) {
      note = `the host did not power the guest off: ${failureMessage(err)}; left as it was`;
    }
    await conductor.finishPowerSync({
      instanceId: plan.instanceId,
      owner,
      actionId,
      powerState,
      details: note ? `${plan.detail}; ${note}` : plan.detail,
    });
    return note ? decisionOf(plan, 'failed', note) : decisionOf(plan, 'applied', `stopped (guest ${powerState})`);
  } catch (err) {
    return decisionOf(plan, 'failed', failureMessage(err));
  }
}
