/**
 * A build's record: created (or found: an idempotent create), adopted from a multi-create parent, or a
 * duplicate build of an instance that exists already, answered with what is there.
 */
import type { ApplicationFailure } from '@temporalio/workflow';
import { log, workflowInfo } from '@temporalio/workflow';

import type { CreateInstanceResult } from '../../activities/conductor';
import { FailureType, InvalidRequest } from '../../domain/errors';
import type { InstanceRecord } from '../../domain/instance';
import { TaskState as Task, VmState } from '../../domain/instance';
import type { BuildInstanceRequest } from '../../domain/schemas';
import type { OperationProgress } from '../../shared/messages';
import { domainFailure, refusalFailure, typedFailure } from '../lib/failures';
import { tagInstance } from '../lib/instance-attributes';
import { conductorLocal, scheduler } from '../lib/proxies';

/**
 * Creates the instance record and its action (or finds the existing one: an idempotent create), by the
 * conductor's local activity.
 */
export function createRecord(req: BuildInstanceRequest, instanceId: string): Promise<CreateInstanceResult> {
  return conductorLocal
    .createInstance({
      instanceId,
      name: req.name,
      flavor: req.flavor,
      image: req.image,
      availabilityZone: req.availabilityZone,
      schedulerHints: req.schedulerHints,
      requestId: workflowInfo().workflowId,
    })
    .catch((err: unknown) => {
      // Nothing exists yet (an unknown flavor or image is refused before anything is written).
      throw refusalFailure(err, FailureType.InvalidRequest);
    });
}

/** A build of an instance that exists already (see duplicateBuild), after any claim made for it is let go. */
export async function existingInstance(
  created: CreateInstanceResult,
  req: BuildInstanceRequest,
  progress: OperationProgress
): Promise<InstanceRecord> {
  // A multi-create child whose instance was taken from it (deleted between its parent's creation and
  // claim): the parent's claim has no build to hold it any more.
  const claimed = req.scheduled?.hosts[0];
  const { instance } = created;
  if (claimed !== undefined && (instance.vmState === VmState.Deleted || instance.host !== claimed))
    await scheduler.releaseAllocations({ consumerId: instance.instanceId, host: claimed });
  return duplicateBuild(instance, created.existing!, progress);
}

/**
 * `scheduled` comes only from a multi-create parent, which claimed the first host for the instance before
 * starting this child: without that claim it is refused (InvalidRequest), before anything is written.
 */
export async function checkScheduled(instanceId: string, host: string): Promise<void> {
  const claims = await scheduler.getAllocations({ consumerId: instanceId });
  if (!claims.some((c) => c.host === host))
    throw domainFailure(
      new InvalidRequest(
        'scheduled',
        `set only by a multi-create parent, which claimed ${host} for instance ${instanceId}; no such claim`
      )
    );
}

/**
 * Whether the instance found is this build's own, made by its multi-create parent for it (`scheduled` is
 * set only by that parent, with this workflow's id as the record's request): still held by the request
 * that created it and untouched (building/scheduling). A re-run of the child's id after its build ran
 * finds it otherwise and is a duplicate. NOTE: decided from the store's answer, not from this workflow's
 * id, so a replay under another id takes the same path.
 */
export function adoptedFromParent(created: CreateInstanceResult, scheduled: boolean): boolean {
  const { instance, existing } = created;
  return (
    scheduled &&
    existing !== undefined &&
    instance.taskOwner === existing.requestId &&
    instance.vmState === VmState.Building &&
    instance.taskState === Task.Scheduling
  );
}

/**
 * A build of an instance that exists already (its workflow id re-run, or its instance id given again):
 * the instance as it is, or the failure its build ended with; nothing is created, claimed or changed.
 */
function duplicateBuild(
  instance: InstanceRecord,
  existing: NonNullable<CreateInstanceResult['existing']>,
  progress: OperationProgress
): InstanceRecord {
  Object.assign(progress, {
    instanceId: instance.instanceId,
    vmState: instance.vmState,
    taskState: instance.taskState,
    powerState: instance.powerState,
    host: instance.host,
    step: `instance ${instance.instanceId} exists already (created by ${existing.requestId ?? 'an earlier request'}): nothing to do`,
  });
  tagInstance({ instanceId: instance.instanceId, host: instance.host, vmState: instance.vmState });
  log.info('build of an existing instance: returning it', { instanceId: instance.instanceId, by: existing.requestId });
  if (instance.vmState === VmState.Error && existing.fault) {
    const failure: ApplicationFailure = typedFailure(
      existing.fault.type ?? FailureType.BuildAborted,
      existing.fault.message
    );
    throw failure;
  }
  return instance;
}
