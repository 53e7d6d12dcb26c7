/**
 * unshelve: Nova's API `unshelve` plus the conductor's ComputeTaskManager.unshelve_instance and the
 * compute's unshelve_instance (or start_instance), made durable.
 *
 * - A `shelved_offloaded` instance (task `unshelving`): the scheduler picks a host for its flavor, within
 *   the requested availability zone or on the requested host (which still goes through the filters and is
 *   never rescheduled elsewhere), and claims it (event `conductor_schedule_instances`). Each try on a host
 *   is one run of the `placementAttempt` child (`kind: 'unshelve'`, src/workflows/unshelve/attempt.ts):
 *   an alternate claimed, then the guest spawned there from the shelved image (task `spawning`, event
 *   `compute_unshelve_instance`); a failed spawn destroys what it made, releases the claim and moves on to
 *   the next alternate. The instance ends `active`, running, on its new host and zone; then its shelved
 *   image is deleted (the bytes, then the record).
 * - A `shelved` instance (still on its host, its guest off): powered on there (task `powering-on`, event
 *   `compute_start_instance`, as Nova's start_instance), then its shelved image deleted.
 *
 * Refused, changing nothing: an instance in another state, or a `shelved` one with a zone or a host
 * (InstanceInvalidState). When every host failed (MaxRetriesExceeded), no host fits (NoValidHost) or it is
 * cancelled, the instance is back `shelved_offloaded` with a fault and holds nothing; its image is kept.
 */
import { CancellationScope, executeChild, isCancellation, setHandler } from '@temporalio/workflow';

import { FailureType, InstanceInvalidState, MaxRetriesExceeded, NoValidHost } from '../domain/errors';
import type { InstancePatch, InstanceRecord } from '../domain/instance';
import { PowerState, TaskState, VmState } from '../domain/instance';
import type { UnshelveInput } from '../domain/shelve';
import { shelvedImageName, UnshelveInputSchema } from '../domain/shelve';
import type { ComputeTimeouts } from '../shared/activity-options';
import { placementAttemptRetry } from '../shared/activity-options';
import { placementProgressSignal } from '../shared/messages';
import { workflowIds } from '../shared/task-queues';
import { isFailureOfType, noHost, parseInput } from './lib/failures';
import type { KernelOperation } from './lib/kernel';
import { runStep } from './lib/kernel';
import { runStagedOperation } from './lib/staged-operation';
import { computeOn, conductor, scheduler } from './lib/proxies';
import { placementAttempt } from './placement-attempt';
import { hostFailure } from './lib/ending';
import { START_EVENT } from './start';
import { UNSHELVE_ABORT_TYPES } from './unshelve/attempt';

/** The event of the scheduler's selection for an unshelve (Nova's EventReporter 'schedule_instances'). */
export const UNSHELVE_SELECT_EVENT = 'conductor_schedule_instances';

type UnshelveRequest = ReturnType<typeof parseUnshelve>;
const parseUnshelve = (input: UnshelveInput) => parseInput(UnshelveInputSchema, input);

/** As Nova's API (UnshelveInstanceInvalidState, 409): a zone or a host only for an offloaded instance. */
function notOffloaded(instanceId: string): InstanceInvalidState {
  const why = ` to an availability zone or a host while it is in vmState shelved: only a shelved_offloaded instance can be`;
  return new InstanceInvalidState(instanceId, 'vmState', VmState.Shelved, 'unshelve', why);
}

/** Where a failed or cancelled unshelve of an offloaded instance leaves it: offloaded, holding nothing. */
const OFFLOADED = { vmState: VmState.ShelvedOffloaded, powerState: PowerState.NoState, host: null };

/**
 * Unshelves one instance and returns its record (`active`, running, on its host). Fails typed:
 * InvalidRequest, InstanceNotFound, InstanceInvalidState (changing nothing); NoValidHost,
 * MaxRetriesExceeded, BuildAborted, ComputeHostUnavailable (with a fault, the instance as it was).
 */
export async function unshelve(input: UnshelveInput): Promise<InstanceRecord> {
  const req = parseUnshelve(input);
  const { instanceId } = req;
  const moving = req.availabilityZone !== undefined || req.host !== undefined;
  if (moving && (await conductor.getInstance({ instanceId })).vmState === VmState.Shelved)
    throw notOffloaded(instanceId);
  const inPlace = (op: KernelOperation) => op.before.vmState === VmState.Shelved;
  const { record, host } = await runStagedOperation({
    begin: { instanceId, transition: 'unshelve', operation: 'unshelve' },
    steps: (op) => (inPlace(op) ? unshelveInPlace(op, req, moving) : unshelveOffloaded(op, req)),
    commit: (_op, unshelved) =>
      Promise.resolve({ done: unshelved.done, result: (done) => ({ record: done, host: unshelved.host }) }),
    failure: (err, op) =>
      isFailureOfType(err, FailureType.Rescheduled)
        ? new MaxRetriesExceeded(instanceId, op.progress.hostsTried, `unshelving instance ${instanceId}`)
        : hostFailure(err, op.progress.host),
    // A shelved instance is left as it was; an offloaded one is back offloaded, holding nothing.
    stableState: (op) => Promise.resolve(inPlace(op) ? undefined : OFFLOADED),
  });
  await dropShelvedImage(instanceId, host, req.timeouts);
  return record;
}

/** What an unshelve's steps leave for its success write: the host the guest runs on, and the write. */
interface Unshelved {
  host: string;
  done: InstancePatch;
}

/** An offloaded instance: placed on a host (the attempts move its task state, read back after them). */
async function unshelveOffloaded(op: KernelOperation, req: UnshelveRequest): Promise<Unshelved> {
  setHandler(placementProgressSignal, (p) => {
    Object.assign(op.progress, { attempt: p.attempt, step: p.step, taskState: p.taskState, host: p.host });
    if (!op.progress.hostsTried.includes(p.host)) op.progress.hostsTried.push(p.host);
  });
  try {
    const { host, zone } = await place(op, req);
    const done = { vmState: VmState.Active, powerState: PowerState.Running, host };
    return { host, done: { ...done, availabilityZone: zone ?? op.before.availabilityZone } };
  } finally {
    await syncTaskState(op);
  }
}

/** The scheduler's selection, then the placement attempts; the host the guest runs on and its zone. */
async function place(op: KernelOperation, req: UnshelveRequest): Promise<{ host: string; zone: string | null }> {
  const { instanceId } = op;
  // Each attempt releases its own claim; this is the safety net under them (idempotent).
  op.compensations.push('release every claim of the unshelve', async () => {
    await scheduler.releaseAllocations({ consumerId: instanceId });
  });
  // An attempt that completed as the unshelve was cancelled leaves its guest: it goes too.
  op.compensations.push('destroy the guest of an attempt that completed as it was cancelled', async (failure) => {
    const host = op.progress.host;
    if (!isCancellation(failure) || host === null) return;
    await computeOn(host, req.timeouts)
      .cleanup.destroyInstance({ instanceId })
      .catch(() => undefined);
  });
  const { flavor, image } = await conductor.resolveRebuildSpec({ instanceId, image: shelvedImageName(instanceId) });
  // The selection is short and its claim must be known: a cancellation waits for its answer.
  const selected = await CancellationScope.nonCancellable(() =>
    runStep(op, {
      event: UNSHELVE_SELECT_EVENT,
      label: 'selecting a host',
      host: null,
      attempt: 0,
      hostOf: (s) => s.selections[0]?.hosts[0] ?? null,
      details: (s) => `hosts: ${(s.selections[0]?.hosts ?? []).join(', ')}`,
      run: () =>
        scheduler.selectDestinations({
          instanceIds: [instanceId],
          flavor,
          image,
          // NOTE(nova): with no zone asked Nova uses the zone the boot asked for (none: any); here the
          // instance keeps the zone it is in (the zone it was booted into is not kept apart).
          ...((req.availabilityZone ?? op.before.availabilityZone)
            ? { availabilityZone: req.availabilityZone ?? op.before.availabilityZone ?? undefined }
            : {}),
          schedulerHints: op.before.serverGroup ? { group: op.before.serverGroup } : {},
          ...(req.host !== undefined ? { requestedHost: req.host } : {}),
          // NOTE(nova): unshelve_instance schedules with return_alternates=False (no reschedule); here a
          // failed spawn moves on to an alternate, as a build's does. A requested host is never left.
          maxAttempts: req.host !== undefined ? 1 : req.maxAttempts,
        }),
    })
  );
  const hosts = selected.selections[0]?.hosts ?? [];
  if (hosts.length === 0) throw NoValidHost.for(`unshelving instance ${instanceId}`);
  const { host } = await executeChild(placementAttempt, {
    workflowId: workflowIds.placementAttempt(instanceId, 'unshelve'),
    staticSummary: `place the unshelve of ${instanceId}`,
    retry: placementAttemptRetry(hosts.length, UNSHELVE_ABORT_TYPES),
    args: [
      {
        kind: 'unshelve',
        instanceId,
        name: op.before.name,
        actionId: op.actionId,
        hosts,
        flavor,
        image,
        resources: selected.resources,
        timeouts: req.timeouts,
      },
    ],
  });
  op.progress.host = host;
  return { host, zone: selected.hostZones[host] ?? null };
}

/** A shelved instance, still on its host: its guest powered on there (Nova's start_instance). */
async function unshelveInPlace(op: KernelOperation, req: UnshelveRequest, moving: boolean): Promise<Unshelved> {
  const { instanceId } = op;
  const host = op.before.host;
  // Shelved since it was read before the lock: the same refusal.
  if (moving) throw notOffloaded(instanceId);
  if (host === null) throw noHost(op.before, 'unshelve');
  // Short, and not cut half-way: a cancellation waits for the power-on's answer.
  await CancellationScope.nonCancellable(() =>
    runStep(op, {
      event: START_EVENT,
      label: `powering on the guest on ${host}`,
      taskState: TaskState.PoweringOn,
      host,
      compute: host,
      run: () => computeOn(host, req.timeouts).short.powerOnInstance({ instanceId }),
    })
  );
  return { host, done: { vmState: VmState.Active, powerState: PowerState.Running } };
}

/**
 * The task state the instance holds now for this operation: the placement attempts move it (unshelving,
 * spawning), and the operation's last write is a compare-and-swap from it.
 */
async function syncTaskState(op: KernelOperation): Promise<void> {
  const now = await CancellationScope.nonCancellable(() => conductor.getInstance({ instanceId: op.instanceId }));
  if (now.taskState !== null && now.taskOwner === op.requestId) op.progress.taskState = now.taskState;
}

/** Deletes the shelved image once the guest runs from its own disk: its bytes, then its record. */
async function dropShelvedImage(instanceId: string, host: string, timeouts: ComputeTimeouts): Promise<void> {
  const imageName = shelvedImageName(instanceId);
  await CancellationScope.nonCancellable(async () => {
    await computeOn(host, timeouts)
      .cleanup.deleteImageData({ imageName })
      .catch(() => undefined);
    await conductor.deleteStoredImages({ name: imageName });
  });
}
