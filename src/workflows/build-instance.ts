/**
 * buildInstance: models ComputeTaskManager.schedule_and_build_instances plus the compute's
 * build_and_run_instance, made durable. Each placement attempt is one run of the `placementAttempt` child
 * workflow (whose first run asks the scheduler), whose RetryPolicy.maximumAttempts is the reschedule
 * budget: the server, not hand-written code, drives Nova's reschedules and their backoff, and every
 * attempt shows in the Web UI as a run of the child.
 */
import {
  CancellationScope,
  executeChild,
  isCancellation,
  log,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';

import { FailureType, MaxRetriesExceeded } from '../domain/errors';
import type { InstanceRecord } from '../domain/instance';
import { PowerState, TaskState as Task, VmState } from '../domain/instance';
import type { BuildInstanceInput, BuildInstanceRequest } from '../domain/schemas';
import { batchSize, BuildInstanceInputSchema, guestSecrets } from '../domain/schemas';
import type { OperationProgress } from '../shared/messages';
import { getProgressQuery, placementProgressSignal } from '../shared/messages';
import { placementAttemptRetry } from '../shared/activity-options';
import { workflowIds } from '../shared/task-queues';
import { domainFailure, failureMessage, isFailureOfType, parseInput, refusalFailure } from './lib/failures';
import { instanceNameTag, tagInstance } from './lib/instance-attributes';
import type { StepRunner } from './lib/kernel';
import { failCreation, withKernel } from './lib/kernel';
import { EventBatch, recordStep } from './lib/operation';
import { hostsTriedBy } from './lib/placement-selection';
import { showProgress } from './lib/progress';
import { computeOn, conductorLocal, scheduler } from './lib/proxies';
import { ABORT_TYPES, SELECT_EVENT } from './build/attempt';
import { buildAttempts, selectionRequest } from './build/selection';
import { adoptedFromParent, checkScheduled, createRecord, existingInstance } from './build/record';
import type { BuildInstanceResult } from './build/batch';
import { buildBatch } from './build/batch';
import type { PlacementAttemptInput } from './placement-attempt';
import { placementAttempt } from './placement-attempt';

export type { BuildAttemptInput } from './build/attempt';
export type { BatchMember, BatchResult, BuildInstanceResult } from './build/batch';

/**
 * Builds one instance and returns its record (`active` on success). Fails with a typed failure:
 * InvalidRequest, NoValidHost, MaxRetriesExceeded, BuildAborted; the instance is then `error` with a
 * fault and holds no allocation. Cancelled: any guest is destroyed, the claim released, and the
 * instance ends `deleted`. With `count` (or `minCount` / `maxCount`) above one it is a multi-create
 * (build/batch.ts): the first instance's record with `batch` listing every instance.
 */
export async function buildInstance(input: BuildInstanceInput): Promise<BuildInstanceResult> {
  const req = parseInput(BuildInstanceInputSchema, input);
  if (batchSize(req).max > 1) return buildBatch(req);
  const instanceId = req.instanceId ?? uuid4();
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
  tagInstance({ instanceId, vmState: VmState.Building, ...instanceNameTag(req.name) });
  return batchedBuild(req, instanceId, progress);
}

// Each attempt releases its own claim; this is the safety net under them (idempotent).
const RELEASE_CLAIMS = 'release every claim of the build';
const releaseClaims = (instanceId: string) => async () => {
  await scheduler.releaseAllocations({ consumerId: instanceId });
};

// A build cancelled just as its placement attempt completed holds nothing, and the guest the attempt
// left on its host (the last host it told) goes too.
const DESTROY_LAST_GUEST = 'destroy the guest of an attempt that completed as the build was cancelled';
const destroyLastGuest = (op: StepRunner, req: BuildInstanceRequest) => async (failure: unknown) => {
  const host = op.progress.host;
  if (!isCancellation(failure) || host === null) return;
  await computeOn(host, req.timeouts)
    .cleanup.destroyInstance({ instanceId: op.instanceId })
    .catch((e: unknown) =>
      log.warn('could not destroy the guest; the host cleans up when it reconciles', { host, error: failureMessage(e) })
    );
};

/**
 * A build on the batched kernel: the record created by a local activity, one placement-attempt child
 * that asks the scheduler on its first run (a multi-create member's hosts come from its parent), and
 * one last local write (the instance active, every step's event, the action's Success, the host's build
 * result). A build that needs no reschedule: 24 events in this workflow's history, two of them the
 * patch marker `instance-name-attribute` and the upsert the SDK adds beside it.
 */
async function batchedBuild(
  req: BuildInstanceRequest,
  instanceId: string,
  progress: OperationProgress
): Promise<InstanceRecord> {
  if (req.scheduled) await checkScheduled(instanceId, req.scheduled.hosts[0]!);
  const created = await createRecord(req, instanceId);
  if (created.existing && !adoptedFromParent(created, req.scheduled !== undefined))
    return existingInstance(created, req, progress);
  const { instance, flavor, image, actionId } = created;
  const op = withKernel({
    instanceId,
    actionId,
    requestId: workflowInfo().workflowId,
    before: instance,
    progress,
    batch: new EventBatch(),
  });
  op.compensations.push(RELEASE_CLAIMS, releaseClaims(instanceId));
  op.compensations.push(DESTROY_LAST_GUEST, destroyLastGuest(op, req));

  try {
    const { scheduled } = req;
    // A multi-create member's hosts were chosen (and claimed) by its parent's one scheduler call.
    if (scheduled)
      await recordStep(op, SELECT_EVENT, () => Promise.resolve(scheduled.hosts), {
        host: null,
        attempt: 0,
        hostOf: (hosts) => hosts[0] ?? null,
        details: (hosts) => `hosts: ${hosts.join(', ')}`,
      });
    progress.step = scheduled ? 'placement attempt' : 'selecting destinations';
    showProgress(progress);
    const group = req.schedulerHints.group;
    const attempt: PlacementAttemptInput = {
      kind: 'build',
      instanceId,
      name: req.name,
      actionId,
      flavor,
      image,
      timeouts: req.timeouts,
      ...(group !== undefined ? { serverGroup: group } : {}),
      ...guestSecrets(req),
      batched: true,
      ...(scheduled
        ? { hosts: scheduled.hosts, resources: scheduled.resources }
        : { hosts: [], select: selectionRequest(req, [instanceId], flavor, image) }),
    };
    const runs = scheduled ? scheduled.hosts.length : buildAttempts(req);
    const placed = await executeChild(placementAttempt, {
      workflowId: workflowIds.placementAttempt(instanceId, 'build'),
      staticSummary: `place and build ${req.name} (${req.flavor}, ${req.image})`,
      retry: placementAttemptRetry(runs, ABORT_TYPES),
      args: [attempt],
    });
    const { host } = placed;
    const record = await conductorLocal.finishBuild({
      instanceId,
      actionId,
      host,
      availabilityZone: placed.zone ?? scheduled?.hostZones[host] ?? null,
      events: [...op.batch.take(), ...(placed.events ?? [])],
    });
    Object.assign(progress, {
      vmState: record.vmState,
      taskState: null,
      powerState: record.powerState,
      host,
      attempt: placed.attempt,
      hostsTried: placed.hostsTried ?? [host],
      step: 'done',
    });
    showProgress(progress);
    tagInstance({ host, vmState: VmState.Active });
    return record;
  } catch (err) {
    return CancellationScope.nonCancellable(() => failBuild(err, op));
  }
}

/**
 * A failed or cancelled build ends on the frame (failCreation: every claim released, the guest of a
 * cancelled build's last attempt destroyed, the one failure write); an attempt list that ran out is
 * MaxRetriesExceeded, any other failure keeps its type (untyped: BuildAborted).
 */
function failBuild(err: unknown, op: StepRunner): Promise<never> {
  return failCreation(op, err, {
    operation: 'Build',
    // Typed here, not by the workflows' interceptor: failCreation writes the failure's type and message
    // in the fault before it throws it.
    named: (e) =>
      isFailureOfType(e, FailureType.Rescheduled)
        ? domainFailure(new MaxRetriesExceeded(op.instanceId, hostsTriedBy(e) ?? op.progress.hostsTried))
        : refusalFailure(e, FailureType.BuildAborted),
  });
}
