/**
 * Power-state sync (Nova's _sync_power_states / _sync_instance_power_state): what the reconciler does
 * with an instance whose guest's power state, as its host reports it, is not what its record says. Pure:
 * the reconcile workflow reads the instances on a host and the host's power states, asks `decidePowerSync`
 * and carries the plans out, each as a compare-and-swap on the instance read.
 *
 * As Nova: an instance an operation holds (task state set) or that lives on another host is skipped; the
 * driver's power state is copied into the record; then by vm state and the guest's power state:
 *
 * | vm state                                | guest                          | action                         |
 * | --------------------------------------- | ------------------------------ | ------------------------------ |
 * | building, resized, suspended, error     | any                            | none (the power state copied)  |
 * | active                                  | shutdown, crashed, suspended   | stop: the instance `stopped`   |
 * | active                                  | paused                         | none (Nova: bug 1097806)       |
 * | active                                  | nostate (vanished)             | none but the copy (Nova warns) |
 * | stopped                                 | running, paused, suspended     | force-stop: the guest off      |
 * | paused                                  | shutdown, crashed              | force-stop: the instance `stopped` |
 */
import type { InstanceRecord } from './instance';
import { PowerState, VmState } from './instance';

/** The event the power-state sync records on the action of its decision. */
export const POWER_SYNC_EVENT = 'conductor_sync_power_state';

/**
 * - `stop`: the guest stopped by itself: the instance becomes `stopped` (Nova calls the stop API, action
 *   `stop`), the guest powered off to be sure.
 * - `force-stop`: the guest runs while the record says it should not: powered off (Nova's force_stop,
 *   action `stop`), the instance `stopped`.
 * - `record`: only the guest's power state is copied into the record (a vanished guest: `nostate`).
 */
export type PowerSyncAction = 'stop' | 'force-stop' | 'record';

export interface PowerSyncPlan {
  kind: 'power-state-sync';
  instanceId: string;
  host: string;
  action: PowerSyncAction;
  /** The compare-and-swap: the vm state and power state read. */
  expectVmState: InstanceRecord['vmState'];
  expectPowerState: PowerState;
  /** What the host reports; `nostate` when it has no guest of the instance. */
  guestPowerState: PowerState;
  detail: string;
}

/** Vm states whose power state is only copied (Nova's "ignore" rows). */
const COPY_ONLY: ReadonlySet<string> = new Set([VmState.Building, VmState.Resized, VmState.Suspended, VmState.Error]);
const OFF: ReadonlySet<string> = new Set([PowerState.Shutdown, PowerState.Crashed]);

/** What to do with each instance of one host, given the power states the host reported. */
export function decidePowerSync(
  host: string,
  instances: readonly InstanceRecord[],
  states: Readonly<Record<string, PowerState>>
): PowerSyncPlan[] {
  const plans: PowerSyncPlan[] = [];
  for (const instance of instances) {
    if (instance.host !== host || instance.taskState !== null || instance.vmState === VmState.Deleted) continue;
    const guest = states[instance.instanceId] ?? PowerState.NoState;
    const plan = (action: PowerSyncAction, why: string): PowerSyncPlan => ({
      kind: 'power-state-sync',
      instanceId: instance.instanceId,
      host,
      action,
      expectVmState: instance.vmState,
      expectPowerState: instance.powerState,
      guestPowerState: guest,
      detail: `${instance.vmState} with power state ${instance.powerState}, its guest on ${host} ${guest === PowerState.NoState ? 'is gone (nostate)' : guest}: ${why}`,
    });
    const vm = instance.vmState;
    if (!COPY_ONLY.has(vm)) {
      if (vm === VmState.Active && (OFF.has(guest) || guest === PowerState.Suspended)) {
        plans.push(plan('stop', 'it stopped by itself, so the instance is stopped (Nova calls stop)'));
        continue;
      }
      if (vm === VmState.Stopped && !OFF.has(guest) && guest !== PowerState.NoState) {
        plans.push(plan('force-stop', 'it runs while the instance is stopped, so it is powered off (force_stop)'));
        continue;
      }
      if (vm === VmState.Paused && OFF.has(guest)) {
        plans.push(plan('force-stop', 'the paused guest is off, so the instance is stopped (force_stop)'));
        continue;
      }
    }
    if (guest !== instance.powerState)
      plans.push(
        plan(
          'record',
          guest === PowerState.NoState
            ? 'the host has no guest of it: the power state recorded, nothing else (Nova warns and ignores)'
            : 'the power state recorded'
        )
      );
  }
  return plans;
}
