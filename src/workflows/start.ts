/**
 * start: Nova's API `start` plus the compute's `start_instance`, made durable. From `stopped` only: the
 * operation lock (powering-on), the guest powered on on its host (event compute_start_instance), and the
 * instance ends active and running.
 */
import { CancellationScope } from '@temporalio/workflow';

import type { InstanceRecord } from '../domain/instance';
import { PowerState, VmState } from '../domain/instance';
import type { StartInput } from '../domain/schemas';
import { StartInputSchema } from '../domain/schemas';
import { parseInput } from './lib/failures';
import { runStep, withKernel } from './lib/kernel';
import { beginOperation, failOperation } from './lib/operation';
import { computeOn } from './lib/proxies';
import { noHost } from './lib/failures';
import { finishOperation, hostFailure } from './stop';

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
export async function start(input: StartInput): Promise<InstanceRecord> {
  const req = parseInput(StartInputSchema, input);
  const { instanceId } = req;
  const op = withKernel(
    await CancellationScope.nonCancellable(() =>
      beginOperation({ instanceId, transition: 'start', operation: 'start' })
    )
  );
  const host = op.before.host;
  try {
    if (host === null) throw noHost(op.before, 'start');
    const compute = computeOn(host, req.timeouts);
    // NOTE(nova): start_instance → driver.power_on (libvirt re-plugs networks and volumes, hard-reboot style).
    await CancellationScope.nonCancellable(() =>
      runStep(op, {
        event: START_EVENT,
        label: `powering on the guest on ${host}`,
        host,
        compute: host,
        run: () => compute.short.powerOnInstance({ instanceId }),
      })
    );
  } catch (err) {
    return CancellationScope.nonCancellable(() => failOperation(op, hostFailure(err, host)));
  }
  return finishOperation(op, { vmState: VmState.Active, powerState: PowerState.Running });
}
