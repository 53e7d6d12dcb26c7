/**
 * start: Nova's API `start` plus the compute's `start_instance`, made durable. From `stopped` only: the
 * operation lock (powering-on), the guest powered on on its host (event compute_start_instance), and the
 * instance ends active and running.
 */
import type { InstanceRecord } from '../domain/instance';
import { PowerState, VmState } from '../domain/instance';
import type { StartInput } from '../domain/schemas';
import { StartInputSchema } from '../domain/schemas';
import { defineOperation, step } from './lib/define-operation';
import { computeOn } from './lib/proxies';

/** The event of the compute step, as Nova names it (wrap_instance_event on start_instance). */
export const START_EVENT = 'compute_start_instance';

/**
 * Starts one stopped instance and returns its record (`active`, power state `running`). Fails with a
 * typed failure and leaves the instance stopped, with a fault: InvalidRequest, InstanceInvalidState (not
 * stopped, or another operation holds it: the message names the state), InstanceNotFound,
 * ComputeHostUnavailable (its host did not answer).
 *
 * A start is short and does not stop half-way: once the lock is taken, a cancellation request waits for
 * the power-on to answer (or time out: the host queue's schedule-to-start timeout) and the outcome is
 * recorded, so the record never disagrees with the guest.
 */
export const start: (input: StartInput) => Promise<InstanceRecord> = defineOperation({
  name: 'start',
  input: StartInputSchema,
  transition: 'start',
  steps: ({ req, host }) => [
    // NOTE(nova): start_instance → driver.power_on (libvirt re-plugs networks and volumes, hard-reboot style).
    step({
      event: START_EVENT,
      label: `powering on the guest on ${host}`,
      host,
      compute: host,
      run: () => computeOn(host, req.timeouts).short.powerOnInstance({ instanceId: req.instanceId }),
    }),
  ],
  cancellation: 'none',
  done: { vmState: VmState.Active, powerState: PowerState.Running },
});
