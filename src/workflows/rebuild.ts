/**
 * rebuild: Nova's ComputeTaskManager.rebuild_instance plus the compute's rebuild_instance, made durable.
 * One workflow type serves both of Nova's cases, as one RPC method does in Nova:
 *
 * - **Rebuild** (default): re-create the instance on its own host, with a new image or the same one.
 * - **Evacuate** (`evacuate: true`): Nova's rebuild_instance with `recreate=True`. Evacuate is an option of
 *   this workflow type, not a type of its own, so the four contract types users start (buildInstance,
 *   rebuild, resizeMigrate, stop) stay as they are. Its instance action is `evacuate`.
 *
 * Rebuild, on the instance's host (Nova's §1.3 table):
 * 1. Refusals that change nothing: an unknown image or one the flavor is too small for (InvalidRequest
 *    naming `image`), a vm state other than active / stopped / error (InstanceInvalidState), then the
 *    operation lock: the task-state compare-and-swap, failing at once with InstanceInvalidState naming the
 *    state when another operation holds the instance.
 * 2. `rebuild_server` (conductor). The same image skips the scheduler and placement. A new image is checked
 *    against the current host by the scheduler (`scheduler_select_destinations`: isRebuild, requestedHost
 *    = the host; only the filters that run on rebuild, such as ImagePropertiesFilter; nothing claimed):
 *    NoValidHost when the host's architecture does not fit.
 * 3. On the host: `rebuild_block_device_mapping` (the old guest removed, the port kept, the root disk laid
 *    out from the image), then `rebuild_spawning` (boot, heartbeated). A stopped instance stays stopped.
 * 4. Done: active (an error instance too, as in Nova) or stopped, with the new image.
 *    Failed: error with a fault, the original image kept (Nova rolls image_ref back) and the allocation
 *    kept (the instance is still on its host; a later rebuild or a delete takes it from there).
 *
 * Evacuate, away from a host that is down:
 * 1. Refusals that change nothing: the instance's vm state (active / stopped / error; any task state:
 *    evacuate is the one operation that may take over an instance another operation holds, e.g. a stop
 *    stuck on the dead host, Nova bug 1978983), an instance with no host, a source host that is up
 *    (`ComputeServiceInUse`: "Compute service of <host> is still in use."; up = a live worker and not
 *    forced down), a requested host that is the source (InvalidRequest) or unknown or down.
 * 2. A migration record (type `evacuation`, `accepted`). The destination: a requested host is claimed
 *    directly (`conductor_claim_requested_host`; a full host is NoValidHost), otherwise the scheduler picks
 *    one other than the source (`scheduler_select_destinations` with ignoreHosts [source], the instance's
 *    availability zone and server group) and claims it. The destination claim is for the instance
 *    itself, whose source allocation stays: the instance holds allocations on both hosts, as in Nova.
 *    maxAttempts 1: an evacuation is never retried elsewhere.
 * 3. On the destination (its own task queue): `rebuild_block_device_mapping`, `rebuild_spawning`.
 * 4. Done: host = destination, its zone; active, or stopped if it was stopped (Nova 2.95 ends every
 *    evacuation stopped; here the power state is kept); migration `done`. The source allocation and the
 *    source's guest stay until the source compute returns: its start-up reconciliation (the
 *    `reconcileHost` workflow) destroys the guest, releases the allocation, marks the migration
 *    `completed`.
 *    Failed or cancelled: the destination's half-made guest destroyed, its claim released, migration
 *    `error`, and the instance keeps its previous state (not error) with a fault. (Nova restores the
 *    state only for a claim failure on the destination and sets ERROR otherwise; the issue asks for the
 *    previous state every time.)
 *
 * Compensations run in non-cancellable scopes. Cancelling leaves a stable state: a rebuild cancelled
 * before the host removed the old guest keeps its previous state; after that it ends error (no guest, the
 * original image kept) with a fault. Either way the result, or the failure, carries the instance record.
 */
import { CancellationScope, isCancellation, log, uuid4 } from '@temporalio/workflow';

import type { Flavor, Image } from '../domain/catalogue';
import {
  ComputeHostUnavailable,
  ComputeServiceInUse,
  FailureType,
  InstanceInvalidState,
  InvalidRequest,
  NoValidHost,
} from '../domain/errors';
import type { InstanceRecord, PowerState } from '../domain/instance';
import { PowerState as Power, TaskState as Task, VmState } from '../domain/instance';
import type { ComputeTimeoutsInput, GuestSecrets, RebuildInput, RebuildRequest } from '../domain/schemas';
import { guestSecrets, RebuildInputSchema } from '../domain/schemas';
import { REBUILD_TASK_STATES, TRANSITIONS } from '../domain/transitions';
import {
  domainFailure,
  failureMessage,
  failureType,
  isFailureOfType,
  noHost,
  parseInput,
  timeoutType,
  typedFailure,
} from './lib/failures';
import type { KernelOperation } from './lib/kernel';
import { runStep, withKernel } from './lib/kernel';
import { beginOperation, completeOperation, failOperation } from './lib/operation';
import { computeOn, conductor, scheduler } from './lib/proxies';

/** Rebuilds (or evacuates) one instance and returns its record. See the module comment. */
export async function rebuild(input: RebuildInput): Promise<InstanceRecord> {
  const req = parseInput(RebuildInputSchema, input);
  const { instance, flavor, image } = await conductor
    .resolveRebuildSpec({ instanceId: req.instanceId, image: req.image })
    .catch(refuse);
  const action = req.evacuate ? 'evacuate' : 'rebuild';
  if (!TRANSITIONS[action].from.some((s) => s === instance.vmState)) {
    throw domainFailure(new InstanceInvalidState(instance.instanceId, 'vmState', instance.vmState, action));
  }
  if (!instance.host) {
    throw noHost(instance, action);
  }
  return req.evacuate
    ? evacuate(req, instance, instance.host, flavor, image)
    : rebuildOnHost(req, instance.host, flavor, image);
}

/** A same-host rebuild (Nova's rebuild_instance with recreate=False). */
async function rebuildOnHost(req: RebuildRequest, host: string, flavor: Flavor, image: Image): Promise<InstanceRecord> {
  const op = withKernel(
    await beginOperation({ instanceId: req.instanceId, transition: 'rebuild', operation: 'rebuild' })
  );
  const instanceId = op.instanceId;
  const wasStopped = op.before.vmState === VmState.Stopped;
  const compute = rebuildCompute(host, req.timeouts);
  // The lock was taken after the pre-check: the instance may have moved or changed flavor meanwhile.
  if (op.before.host !== host || op.before.flavor !== flavor.name) {
    const message = `instance ${instanceId} changed (host ${op.before.host ?? 'None'}, flavor ${op.before.flavor}) while the rebuild started`;
    return failOperation(op, typedFailure(FailureType.InstanceInvalidState, message));
  }
  try {
    await runStep(op, {
      event: 'rebuild_server',
      label: 'rebuilding',
      run: async () => {
        // NOTE(nova): the same image skips the scheduler and placement; a new image is checked against
        // the current host by the filters that run on rebuild, and nothing is claimed.
        if (image.name === op.before.image) return;
        await runStep(op, {
          event: 'scheduler_select_destinations',
          label: `checking image ${image.name} against ${host}`,
          host,
          run: () =>
            scheduler.selectDestinations({
              instanceIds: [instanceId],
              flavor,
              image,
              requestedHost: host,
              isRebuild: true,
              maxAttempts: 1,
            }),
        });
      },
    });
    const powerState = await rebuildGuest(op, compute, host, flavor, image, !wasStopped, guestSecrets(req));
    return await completeOperation(op, {
      vmState: wasStopped ? VmState.Stopped : VmState.Active,
      powerState,
      image: image.name,
    });
  } catch (err) {
    return CancellationScope.nonCancellable(async () => {
      const failure = classify(err, host);
      // Once the host picked up the prepare step, the old guest is gone.
      const untouched = !op.journal.reachedHost(host);
      if (isCancellation(err) && untouched) return failOperation(op, failure);
      // NOTE(nova): a failed rebuild ends ERROR with a fault; the original image is kept (never written).
      const powerState = untouched ? op.before.powerState : await currentPowerState(compute, instanceId);
      return failOperation(op, failure, { vmState: VmState.Error, powerState });
    });
  }
}

/** An evacuation (Nova's rebuild_instance with recreate=True) away from `source`, which must be down. */
async function evacuate(
  req: RebuildRequest,
  instance: InstanceRecord,
  source: string,
  flavor: Flavor,
  image: Image
): Promise<InstanceRecord> {
  const instanceId = instance.instanceId;
  if (instance.taskState !== null && REBUILD_TASK_STATES.includes(instance.taskState)) {
    throw domainFailure(new InstanceInvalidState(instanceId, 'taskState', instance.taskState, 'evacuate'));
  }
  const sourceState = await scheduler.isHostUp({ host: source }).catch(refuse);
  if (sourceState.up) throw domainFailure(new ComputeServiceInUse(source));
  let destZone: string | null = null;
  if (req.host !== undefined) {
    if (req.host === source) {
      throw domainFailure(new InvalidRequest('host', `the destination must not be the instance's own host ${source}`));
    }
    const wanted = await scheduler.isHostUp({ host: req.host }).catch(refuse);
    if (!wanted.known) throw domainFailure(new InvalidRequest('host', `unknown compute host '${req.host}'`));
    if (!wanted.up) throw domainFailure(new ComputeHostUnavailable(req.host, wanted.reason));
    destZone = wanted.availabilityZone;
  }

  const op = withKernel(
    await beginOperation({ instanceId, transition: 'evacuate', operation: 'rebuild', expectOwner: instance.taskOwner })
  );
  const wasStopped = op.before.vmState === VmState.Stopped;
  const migrationId = uuid4();
  const resources = { VCPU: op.before.vcpus, MEMORY_MB: op.before.memoryMb, DISK_GB: op.before.diskGb };
  /** The destination, once claimed. */
  let dest: string | undefined;
  /** Only the destination's claim is undone: the source allocation stays with the instance, which stays there. */
  const claimed = (host: string) => {
    dest = host;
    op.compensations.push('release the destination claim', async () => {
      await scheduler.releaseAllocations({ consumerId: instanceId, host });
    });
  };
  try {
    if (op.before.host !== source) {
      throw typedFailure(
        FailureType.InstanceInvalidState,
        `instance ${instanceId} moved to ${op.before.host ?? 'no host'} while the evacuation started`
      );
    }
    await conductor.createEvacuation({
      migrationId,
      instanceId,
      sourceHost: source,
      destHost: req.host ?? null,
      flavor: flavor.name,
    });
    op.compensations.push('mark the evacuation failed', async () => {
      await conductor.updateEvacuation({ migrationId, status: 'error' });
    });

    await runStep(op, {
      event: 'rebuild_server',
      label: 'evacuating',
      host: source,
      run: async () => {
        const requested = req.host;
        if (requested !== undefined) {
          // A requested host is claimed directly for the instance (no scheduler): Nova's forced evacuate,
          // which fails as NoValidHost when the host lacks room.
          // NOTE(nova): Nova (2.29+) runs a requested, unforced evacuate destination through the scheduler's
          // filters; here every requested host is treated as forced, and no late server-group check runs
          // on an evacuation's destination.
          await runStep(op, {
            event: 'conductor_claim_requested_host',
            label: `claiming the requested host ${requested}`,
            host: requested,
            run: () => scheduler.claimResources({ consumerId: instanceId, host: requested, resources }),
          });
          claimed(requested);
        } else {
          await runStep(op, {
            event: 'scheduler_select_destinations',
            label: `selecting a destination other than ${source}`,
            run: async () => {
              const selected = await scheduler.selectDestinations({
                instanceIds: [instanceId],
                flavor,
                image,
                availabilityZone: op.before.availabilityZone ?? undefined,
                schedulerHints: op.before.serverGroup ? { group: op.before.serverGroup } : {},
                ignoreHosts: [source],
                // NOTE(nova): no alternates, no reschedule for an evacuation.
                maxAttempts: 1,
              });
              const chosen = selected.selections[0]?.hosts[0];
              if (chosen === undefined) throw domainFailure(new NoValidHost(`No host was selected for ${instanceId}`));
              claimed(chosen);
              destZone = selected.hostZones[chosen] ?? null;
            },
          });
        }
      },
    });
    const target = dest;
    if (target === undefined) throw domainFailure(new NoValidHost(`No host was selected for ${instanceId}`));
    await conductor.updateEvacuation({ migrationId, status: 'pre-migrating', destHost: target });
    op.progress.hostsTried = [target];
    op.compensations.push('destroy the guest on the destination', async () => {
      // Only a guest the destination may have started: a host that never picked a step up has none.
      if (!op.journal.reachedHost(target)) return;
      await computeOn(target, req.timeouts)
        .cleanup.destroyInstance({ instanceId })
        .catch((e: unknown) =>
          log.warn('could not destroy the guest on the evacuation destination; it cleans up when it reconciles', {
            host: target,
            error: failureMessage(e),
          })
        );
    });
    const powerState = await rebuildGuest(
      op,
      rebuildCompute(target, req.timeouts),
      target,
      flavor,
      image,
      !wasStopped,
      guestSecrets(req)
    );
    await conductor.updateEvacuation({ migrationId, status: 'done' });
    return await completeOperation(op, {
      vmState: wasStopped ? VmState.Stopped : VmState.Active,
      powerState,
      host: target,
      availabilityZone: destZone ?? op.before.availabilityZone,
    });
  } catch (err) {
    return CancellationScope.nonCancellable(async () => {
      await op.compensations.rollBack(err);
      // The instance keeps its previous state (vm and power state, host), with a fault.
      return failOperation(op, classify(err, dest));
    });
  }
}

/** The compute proxies of one host: short steps, and a spawn whose cancellation the workflow waits for. */
function rebuildCompute(host: string, timeouts: ComputeTimeoutsInput) {
  const compute = computeOn(host, timeouts);
  // The long step waits for its cancellation: the half-made guest is gone before compensation runs.
  return { short: compute.short, spawn: compute.long, cleanup: compute.cleanup };
}

type RebuildCompute = ReturnType<typeof rebuildCompute>;

/**
 * The compute side of a rebuild on `host` (the instance's own host, or an evacuation's destination):
 * rebuild_block_device_mapping then rebuild_spawning, each a task state and an event. Returns the
 * guest's power state.
 */
async function rebuildGuest(
  op: KernelOperation,
  compute: RebuildCompute,
  host: string,
  flavor: Flavor,
  image: Image,
  powerOn: boolean,
  /** Nova's adminPass and user_data for the new guest: to the compute host only. */
  secrets: GuestSecrets
): Promise<PowerState> {
  const { instanceId } = op;
  // An evacuation says where from: its record still names the source until the switch.
  const from = op.before.host && op.before.host !== host ? `, evacuating from ${op.before.host}` : '';
  await runStep(op, {
    event: 'compute_rebuild_block_device_mapping',
    label: `preparing the disk on ${host}${from}`,
    taskState: Task.RebuildBlockDeviceMapping,
    host,
    compute: host,
    run: () => compute.short.rebuildPrepare({ instanceId, flavor, image }),
  });
  const { powerState } = await runStep(op, {
    event: 'compute_rebuild_spawning',
    label: `spawning the guest on ${host}${from}`,
    taskState: Task.RebuildSpawning,
    host,
    compute: host,
    run: () => compute.spawn.rebuildSpawn({ instanceId, name: op.before.name, flavor, image, powerOn, ...secrets }),
  });
  return powerState;
}

/** The guest's power state after a failed rebuild: `nostate` when the host has no guest (or does not answer). */
async function currentPowerState(compute: RebuildCompute, instanceId: string): Promise<PowerState> {
  return compute.cleanup
    .getPowerState({ instanceId })
    .then((r) => r.powerState)
    .catch(() => Power.NoState);
}

/**
 * The typed failure a rebuild or an evacuation ends with. A compute host that did not answer is
 * ComputeHostUnavailable; a requested host that is full, NoValidHost; typed activity failures keep
 * their type. Cancellations pass through unchanged.
 */
function classify(err: unknown, host: string | undefined): unknown {
  if (isCancellation(err)) return err;
  const timeout = timeoutType(err);
  if (timeout !== undefined && host !== undefined) {
    const unavailable = new ComputeHostUnavailable(host, `it did not respond (${timeout} timeout)`);
    return typedFailure(unavailable.name, unavailable.message, unavailable.details);
  }
  if (isFailureOfType(err, FailureType.ClaimFailed)) {
    const noHost = new NoValidHost(failureMessage(err));
    return typedFailure(noHost.name, noHost.message, noHost.details);
  }
  return typedFailure(failureType(err) ?? FailureType.BuildAborted, failureMessage(err));
}

/** Re-throws an activity failure from before the lock as a typed workflow failure (nothing was written). */
function refuse(err: unknown): never {
  throw typedFailure(failureType(err) ?? FailureType.InvalidRequest, failureMessage(err));
}
