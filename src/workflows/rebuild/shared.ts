/** What a rebuild and an evacuation share: the reads before the lock, the shared checks, the guest's steps, the failure's name. */
import { isCancellation } from '@temporalio/workflow';

import type { Flavor, Image } from '../../domain/catalogue';
import { ComputeHostUnavailable, FailureType, InstanceInvalidState, NoValidHost } from '../../domain/errors';
import type { PowerState } from '../../domain/instance';
import { PowerState as Power, TaskState as Task, VmState } from '../../domain/instance';
import type { ComputeTimeoutsInput, GuestSecrets, RebuildRequest } from '../../domain/schemas';
import { guestSecrets } from '../../domain/schemas';
import type { OperationName } from '../../domain/transitions';
import { TRANSITIONS } from '../../domain/transitions';
import type { OperationCheck } from '../lib/define-operation';
import { step } from '../lib/define-operation';
import { failureMessage, isFailureOfType, noHost, refusalFailure, timeoutType } from '../lib/failures';
import type { KernelOperation, StepSpec } from '../lib/kernel';
import { computeOn, conductor, type scheduler } from '../lib/proxies';

/** What a rebuild or an evacuation reads before the lock: the instance, its flavor, the image. */
export type RebuildSpec = Awaited<ReturnType<typeof conductor.resolveRebuildSpec>>;
export type HostState = Awaited<ReturnType<typeof scheduler.isHostUp>>;

/** Reads before the lock refuse typed; an activity failure with no type is an InvalidRequest. */
export const refused = (err: unknown): never => {
  throw refusalFailure(err, FailureType.InvalidRequest);
};

export const resolveSpec = (req: RebuildRequest): Promise<RebuildSpec> =>
  conductor.resolveRebuildSpec({ instanceId: req.instanceId, image: req.image }).catch(refused);

/** The pre-checks a rebuild and an evacuation share: the vm state, then an instance with a host. */
export const sharedChecks = <L>(
  action: OperationName,
  spec: (found: L) => RebuildSpec
): Record<string, OperationCheck<RebuildRequest, L>> => ({
  checkVmState: (_req, found) => {
    const { instance } = spec(found);
    if (!TRANSITIONS[action].from.some((s) => s === instance.vmState))
      throw new InstanceInvalidState(instance.instanceId, 'vmState', instance.vmState, action);
  },
  checkInstanceHost: (_req, found) => {
    const { instance } = spec(found);
    if (!instance.host) throw noHost(instance, action);
  },
});

/** What the steps of a rebuild learn: the guest's power state once spawned. */
export interface GuestOutcome {
  powerState: PowerState;
}

/**
 * The compute side of a rebuild on `host` (the instance's own host, or an evacuation's destination):
 * rebuild_block_device_mapping then rebuild_spawning, each a task state and an event. The spawn's
 * power state goes to `outcome`. The spawn waits for its cancellation: the half-made guest is gone
 * before compensation runs.
 */
export function guestSteps(
  op: KernelOperation,
  req: RebuildRequest,
  host: string,
  { flavor, image }: { flavor: Flavor; image: Image },
  outcome: GuestOutcome
): [StepSpec<unknown>, StepSpec<unknown>] {
  const { instanceId } = op;
  const compute = computeOn(host, req.timeouts);
  /** Nova's adminPass and user_data for the new guest: to the compute host only. */
  const secrets: GuestSecrets = guestSecrets(req);
  const powerOn = op.before.vmState !== VmState.Stopped;
  // An evacuation says where from: its record still names the source until the switch.
  const from = op.before.host && op.before.host !== host ? `, evacuating from ${op.before.host}` : '';
  return [
    step({
      event: 'compute_rebuild_block_device_mapping',
      label: `preparing the disk on ${host}${from}`,
      taskState: Task.RebuildBlockDeviceMapping,
      host,
      compute: host,
      run: () => compute.short.rebuildPrepare({ instanceId, flavor, image }),
    }),
    step({
      event: 'compute_rebuild_spawning',
      label: `spawning the guest on ${host}${from}`,
      taskState: Task.RebuildSpawning,
      host,
      compute: host,
      run: async () => {
        const spawned = await compute.long.rebuildSpawn({
          instanceId,
          name: op.before.name,
          flavor,
          image,
          powerOn,
          ...secrets,
        });
        outcome.powerState = spawned.powerState;
        return spawned;
      },
    }),
  ];
}

/** The guest's power state after a failed rebuild: `nostate` when the host has no guest (or does not answer). */
export async function currentPowerState(
  host: string,
  timeouts: ComputeTimeoutsInput,
  instanceId: string
): Promise<PowerState> {
  return computeOn(host, timeouts)
    .cleanup.getPowerState({ instanceId })
    .then((r) => r.powerState)
    .catch(() => Power.NoState);
}

/**
 * What a rebuild or an evacuation failed with, as the frame translates it: a compute host that did not
 * answer is ComputeHostUnavailable; a requested host that is full, NoValidHost; typed activity failures
 * keep their type (an untyped one is BuildAborted). Cancellations pass through unchanged.
 */
export function classify(err: unknown, host: string | undefined): unknown {
  if (isCancellation(err)) return err;
  const timeout = timeoutType(err);
  if (timeout !== undefined && host !== undefined)
    return new ComputeHostUnavailable(host, `it did not respond (${timeout} timeout)`);
  if (isFailureOfType(err, FailureType.ClaimFailed)) return new NoValidHost(failureMessage(err));
  return refusalFailure(err, FailureType.BuildAborted);
}
