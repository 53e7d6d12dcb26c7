/**
 * buildInstance: models ComputeTaskManager.schedule_and_build_instances plus the compute's
 * build_and_run_instance, made durable. The scheduler is called and awaited; each placement attempt is
 * one run of the `buildAttempt` child workflow, whose RetryPolicy.maximumAttempts is the reschedule
 * budget: the server, not hand-written code, drives Nova's reschedules and their backoff, and every
 * attempt shows in the Web UI as a run of the child.
 */
import type { ApplicationFailure } from '@temporalio/workflow';
import {
  CancellationScope,
  executeChild,
  isCancellation,
  log,
  patched,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';

import type { Flavor, Image } from '../domain/catalogue';
import { FailureType, MaxRetriesExceeded } from '../domain/errors';
import type { InstanceRecord, TaskState } from '../domain/instance';
import { PowerState, TaskState as Task, VmState } from '../domain/instance';
import type { Resources } from '../domain/resources';
import type { BuildInstanceInput, ComputeTimeoutsInput } from '../domain/schemas';
import { BuildInstanceInputSchema } from '../domain/schemas';
import { BUILD_TASK_STATES } from '../domain/transitions';
import type { OperationProgress } from '../shared/messages';
import { getProgressQuery, placementProgressSignal } from '../shared/messages';
import { placementAttemptRetry } from '../shared/activity-options';
import { workflowIds } from '../shared/task-queues';
import { failureMessage, failureType, isFailureOfType, parseInput, timeoutType, typedFailure } from './lib/failures';
import { tagInstance } from './lib/instance-attributes';
import type { StepRunner } from './lib/kernel';
import { once, runStep, withKernel } from './lib/kernel';
import { attemptFailure, placementAttempt } from './lib/placement-attempt';
import { computeOn, conductor, scheduler } from './lib/proxies';

/** Failure types that end a build at once: no other host can fix them. */
const ABORT_TYPES = [
  FailureType.BuildAborted,
  FailureType.InvalidRequest,
  FailureType.InstanceNotFound,
  FailureType.InstanceInvalidState,
];

/** The event of an alternate's claim (a reschedule's first step). */
const CLAIM_EVENT = 'conductor_claim_alternate';

/** The patch id of the alternate claim that is in flight before it is issued and never touches the host. */
export const PATCH_ALTERNATE_CLAIM_OFF_HOST = 'alternate-claim-off-host';

/** Nova's fault codes: 500 for build failures, 400 for bad requests. */
const FAULT_CODE = 500;

/**
 * Builds one instance and returns its record (`active` on success). Fails with a typed failure:
 * InvalidRequest, NoValidHost, MaxRetriesExceeded, BuildAborted; the instance is then `error` with a
 * fault and holds no allocation. Cancelled: any guest is destroyed, the claim released, and the
 * instance ends `deleted`.
 */
export async function buildInstance(input: BuildInstanceInput): Promise<InstanceRecord> {
  const req = parseInput(BuildInstanceInputSchema, input);
  const instanceId = req.instanceId ?? uuid4();
  const requestId = workflowInfo().workflowId;
  const progress: OperationProgress = {
    instanceId,
    operation: 'buildInstance',
    vmState: VmState.Building,
    taskState: Task.Scheduling,
    powerState: PowerState.NoState,
    host: null,
    attempt: 0,
    step: 'creating the instance record',
    hostsTried: [],
  };
  setHandler(getProgressQuery, () => progress);
  setHandler(placementProgressSignal, (p) => {
    progress.attempt = p.attempt;
    progress.host = p.host;
    progress.taskState = p.taskState;
    progress.step = p.step;
    if (!progress.hostsTried.includes(p.host)) progress.hostsTried.push(p.host);
  });
  tagInstance({ instanceId, vmState: VmState.Building });

  const { instance, flavor, image, actionId } = await conductor
    .createInstance({
      instanceId,
      name: req.name,
      flavor: req.flavor,
      image: req.image,
      availabilityZone: req.availabilityZone,
      schedulerHints: req.schedulerHints,
      requestId,
    })
    .catch((err: unknown) => {
      // Nothing exists yet (an unknown flavor or image is refused before anything is written).
      throw typedFailure(failureType(err) ?? FailureType.InvalidRequest, failureMessage(err));
    });
  // The build holds its instance from its creation: the operation is its record, action and progress.
  const op = withKernel({ instanceId, actionId, requestId, before: instance, progress });
  // Each attempt releases its own claim; this is the safety net under them (idempotent).
  op.compensations.push('release every claim of the build', async () => {
    await scheduler.releaseAllocations({ consumerId: instanceId });
  });

  try {
    const pinned = req.host ?? req.forceHost;
    const selected = await runStep(op, {
      event: 'conductor_schedule_and_build_instances',
      label: 'selecting destinations',
      attempt: 0,
      host: null,
      hostOf: (s) => s.selections[0]?.hosts[0] ?? null,
      details: (s) => `hosts: ${(s.selections[0]?.hosts ?? []).join(', ')}`,
      run: () =>
        scheduler.selectDestinations({
          instanceIds: [instanceId],
          flavor,
          image,
          availabilityZone: req.availabilityZone,
          schedulerHints: req.schedulerHints,
          requestedHost: req.host,
          forcedHost: req.forceHost,
          // NOTE(nova): a requested or forced host is never rescheduled elsewhere.
          maxAttempts: pinned ? 1 : req.maxAttempts,
        }),
    });
    const hosts = selected.selections[0]?.hosts ?? [];
    const { resources, hostZones } = selected;

    const { host } = await executeChild(buildAttempt, {
      workflowId: workflowIds.placementAttempt(instanceId, 'build'),
      args: [{ instanceId, name: req.name, actionId, hosts, flavor, image, resources, timeouts: req.timeouts }],
      retry: placementAttemptRetry(hosts.length, ABORT_TYPES),
    });

    const record = await conductor.updateInstance({
      instanceId,
      patch: {
        vmState: VmState.Active,
        taskState: null,
        powerState: PowerState.Running,
        host,
        availabilityZone: hostZones[host] ?? null,
      },
      expectTaskState: Task.Spawning,
      method: 'buildInstance',
    });
    Object.assign(progress, {
      vmState: record.vmState,
      taskState: null,
      powerState: record.powerState,
      host,
      step: 'done',
    });
    tagInstance({ host, vmState: VmState.Active });
    await Promise.all([
      conductor.finishAction({ actionId, result: 'Success' }),
      scheduler.recordBuildResult({ host, success: true }),
    ]);
    return record;
  } catch (err) {
    return CancellationScope.nonCancellable(() => failBuild(err, op));
  }
}

/** Persists the outcome of a failed or cancelled build, releases every claim, then fails typed. */
async function failBuild(err: unknown, op: StepRunner): Promise<never> {
  const { instanceId, actionId, progress } = op;
  await op.compensations.rollBack(err);
  if (isCancellation(err)) {
    // NOTE(nova): deleting an instance during its build ends it deleted with no allocation.
    await conductor.recordFailure({
      instanceId,
      actionId,
      code: 499,
      message: 'Build cancelled by the user',
      patch: { vmState: VmState.Deleted, taskState: null, powerState: PowerState.NoState, host: null },
    });
    progress.vmState = VmState.Deleted;
    tagInstance({ vmState: VmState.Deleted });
    throw err;
  }
  let failure: ApplicationFailure;
  if (isFailureOfType(err, FailureType.Rescheduled)) {
    const exceeded = new MaxRetriesExceeded(instanceId, progress.hostsTried);
    failure = typedFailure(exceeded.name, exceeded.message, exceeded.details);
  } else {
    const type = failureType(err) ?? FailureType.BuildAborted;
    failure = typedFailure(type, failureMessage(err));
  }
  log.warn('build failed', { instanceId, type: failure.type, message: failure.message });
  await conductor.recordFailure({ instanceId, actionId, code: FAULT_CODE, message: failure.message });
  Object.assign(progress, { vmState: VmState.Error, taskState: null, step: 'failed' });
  tagInstance({ vmState: VmState.Error });
  throw failure;
}

export interface BuildAttemptInput {
  instanceId: string;
  name: string;
  actionId: string;
  /** The chosen host then the alternates; run N of this workflow uses hosts[N-1]. */
  hosts: string[];
  flavor: Flavor;
  image: Image;
  resources: Resources;
  timeouts: ComputeTimeoutsInput;
}

/**
 * One placement attempt on one host (Nova's build_and_run_instance on that compute). The first host
 * was claimed by the scheduler; an alternate is claimed here. A reschedulable failure releases this
 * host's claim and fails the run as retryable `Rescheduled`, so the server starts the next run on the
 * next alternate; an abort fails it as non-retryable `BuildAborted`.
 */
export async function buildAttempt(input: BuildAttemptInput): Promise<{ host: string }> {
  const placement = placementAttempt(
    input.instanceId,
    input.hosts,
    () => new MaxRetriesExceeded(input.instanceId, input.hosts).message
  );
  const { attempt, host } = placement;
  const compute = computeOn(host, input.timeouts);
  const { instanceId, actionId } = input;
  // Versioned (runs recorded before it replay the old way): an alternate's claim is in flight before it
  // is issued, so a claim whose answer was lost is released; a claim is not a step on the host, so an
  // alternate found full is skipped without a destroy call and without a failed build counted there.
  const claimOffHost = patched(PATCH_ALTERNATE_CLAIM_OFF_HOST);
  const op = withKernel({
    instanceId,
    actionId,
    progress: {
      instanceId,
      operation: 'buildInstance',
      vmState: VmState.Building,
      taskState: Task.Scheduling,
      powerState: PowerState.NoState,
      host,
      attempt,
      step: `placement attempt ${attempt} on ${host}`,
      hostsTried: [host],
    },
  });

  /** Whether this attempt may have left something on the host: a step sent there, other than a claim that held. */
  const touched = () =>
    op.journal.entries.some((e) => e.compute === host && !(e.event === CLAIM_EVENT && e.status === 'done'));
  // Undone last first: the guest destroyed, then the claim released, then the failed build counted.
  op.compensations.push('count a failed build on the host', async () => {
    // Set below: cancelled attempts are not the host's fault.
    if (countFailure && touched()) await scheduler.recordBuildResult({ host, success: false });
  });
  const releaseClaim = () =>
    op.compensations.push('release the claim on the host', async () => {
      await scheduler.releaseAllocations({ consumerId: instanceId, host });
    });
  const destroyGuest = once(async () => {
    // A host that never picked the task up has nothing to destroy.
    if (!touched() || timeoutType(failure) === 'SCHEDULE_TO_START') return;
    await compute.cleanup.destroyInstance({ instanceId }).catch((e: unknown) =>
      log.warn('could not destroy the guest; the host cleans up when it reconciles', {
        host,
        error: failureMessage(e),
      })
    );
  });
  let countFailure = true;
  let failure: unknown;

  /** One build step: the task state and host written, the parent told, the step run, its event recorded. */
  const step = <T>(taskState: TaskState, event: string, run: () => Promise<T>, onHost = true): Promise<T> =>
    placement.step(op, taskState, {
      event,
      taskState,
      patch: { host },
      expect: { taskState: BUILD_TASK_STATES, vmState: VmState.Building },
      host,
      ...(onHost ? { compute: host } : {}),
      run,
    });

  try {
    if (attempt === 1) releaseClaim();
    else {
      if (claimOffHost) releaseClaim();
      else op.compensations.push('destroy the guest', destroyGuest);
      await step(
        Task.Scheduling,
        CLAIM_EVENT,
        () => scheduler.claimResources({ consumerId: instanceId, host, resources: input.resources }),
        !claimOffHost
      );
      if (!claimOffHost) releaseClaim();
    }
    op.compensations.push('destroy the guest', destroyGuest);
    await step(Task.Networking, 'compute_allocate_networks', () => compute.short.allocateNetworks({ instanceId }));
    await step(Task.BlockDeviceMapping, 'compute_prepare_block_devices', () =>
      compute.short.prepareBlockDevices({ instanceId, flavor: input.flavor, image: input.image })
    );
    await step(Task.Spawning, 'compute_spawn', () =>
      compute.long.spawnInstance({ instanceId, name: input.name, flavor: input.flavor, image: input.image })
    );
    return { host };
  } catch (err) {
    failure = err;
    countFailure = !isCancellation(err);
    await op.compensations.rollBack(err);
    throw attemptFailure(
      err,
      { operation: 'Build', instanceId, host, attempt, hosts: input.hosts.length },
      ABORT_TYPES,
      FailureType.BuildAborted
    );
  }
}
