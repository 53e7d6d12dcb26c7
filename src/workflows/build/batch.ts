/**
 * Multi-create (Nova's schedule_and_build_instances with min_count / max_count): a buildInstance asked for
 * several instances creates every record first (building/scheduling, named `<name>-1`, `<name>-2` …),
 * makes ONE scheduler call for the whole request (group policies held across it, the chosen host of each
 * instance claimed), then builds each placed instance in its own child `buildInstance` (its own
 * reschedules, its own page in the Web UI) with the hosts chosen for it. Fewer than minCount placeable:
 * NoValidHost, nothing claimed, every instance `error` with its fault (Nova buries them in cell0).
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

import { FailureType } from '../../domain/errors';
import type { InstanceRecord } from '../../domain/instance';
import { PowerState, TaskState as Task, VmState } from '../../domain/instance';
import type { BuildInstanceInput, BuildInstanceRequest } from '../../domain/schemas';
import { batchSize, guestSecrets } from '../../domain/schemas';
import { selectOnce } from './attempt';
import { selectionRequest } from './selection';
import type { CreateInstanceResult } from '../../activities/conductor';
import type { OperationProgress } from '../../shared/messages';
import { getProgressQuery } from '../../shared/messages';
import { workflowIds } from '../../shared/task-queues';
import { failureMessage, failureType, refusalFailure, typedFailure } from '../lib/failures';
import { writeFailure } from '../lib/operation';
import { conductor, scheduler } from '../lib/proxies';

/** One instance of a multi-create request, as the parent's result lists it. */
export interface BatchMember {
  /** 1-based: the suffix of its name. */
  index: number;
  instanceId: string;
  name: string;
  /** Its child buildInstance (the one page of its build in the Web UI). */
  workflowId: string;
  /** The instance as its build left it. */
  record: InstanceRecord;
  /** Why its build failed after placement (it is then `error`, holding nothing). */
  failure?: { type: string; message: string };
}

export interface BatchResult {
  requested: { min: number; max: number };
  /** How many were placed and handed to their own build (minCount ≤ placed ≤ maxCount). */
  placed: number;
  /** Every placed instance, by index; those left out for want of room are not listed. */
  instances: BatchMember[];
}

/** A build's result: the instance (for several, the first one, as Nova's API returns) and, for several, all. */
export type BuildInstanceResult = InstanceRecord & { batch?: BatchResult };

/** The name of member `index` (1-based). NOTE(nova): the API's `%(name)s-%(count)d`. */
export const memberName = (name: string, index: number): string => `${name}-${index}`;

const FAULT_CODE = 500;
const SCHEDULE_EVENT = 'conductor_schedule_and_build_instances';

interface Member {
  index: number;
  instanceId: string;
  name: string;
  workflowId: string;
  created?: CreateInstanceResult;
}

/** The multi-create parent (buildInstance with more than one instance). See the module comment. */
export async function buildBatch(req: BuildInstanceRequest): Promise<BuildInstanceResult> {
  const { min, max } = batchSize(req);
  const parentId = workflowInfo().workflowId;
  const members: Member[] = Array.from({ length: max }, (_, i) => ({
    index: i + 1,
    instanceId: uuid4(),
    name: memberName(req.name, i + 1),
    workflowId: workflowIds.batchMember(parentId, i + 1),
  }));
  const progress = batchProgress(members[0]!.instanceId, max);

  await createMembers(req, members);
  const fresh = members.filter((m) => !m.created!.existing);
  if (fresh.length < members.length) {
    // Only a first run stopped from outside between its creations leaves some: those made now end deleted.
    await endUnbuilt(
      fresh,
      'Not built: this request ran before; its first run built the others.',
      FailureType.InvalidRequest
    );
    return rerun(
      members.filter((m) => m.created!.existing),
      min,
      max
    );
  }

  // Until a child holds an instance, the parent answers for it: released and ended on failure.
  let handedOver = false;
  try {
    progress.step = `selecting destinations for ${max} instances (at least ${min})`;
    const { flavor, image } = members[0]!.created!;
    const selected = await selectOnce(() =>
      scheduler.selectDestinations({
        ...selectionRequest(
          req,
          members.map((m) => m.instanceId),
          flavor,
          image
        ),
        minCount: min,
      })
    );
    const hostsOf = new Map(selected.selections.map((s) => [s.instanceId, s.hosts]));
    const placed = members.filter((m) => hostsOf.has(m.instanceId));
    const left = members.filter((m) => !hostsOf.has(m.instanceId));
    // The extras no host had room for were never claimed for: they end deleted, with why.
    await endUnbuilt(
      left,
      `Not built: room for ${placed.length} of at most ${max} instances of the request (at least ${min}).`,
      FailureType.NoValidHost
    );
    progress.step = `building ${placed.length} instances, each in its own child`;
    progress.hostsTried = [...new Set(selected.selections.map((s) => s.hosts[0]!))];
    handedOver = true;
    // Every child settles before the parent does: a cancelled request waits for each child's own rollback
    // (closing first would terminate the children mid-compensation).
    const settled = await Promise.all(placed.map((m) => buildMember(req, m, hostsOf.get(m.instanceId)!, selected)));
    const cancelled = settled.find((s): s is { cancelled: unknown } => 'cancelled' in s);
    if (cancelled) throw cancelled.cancelled;
    const outcomes = settled as BatchMember[];
    Object.assign(progress, { vmState: outcomes[0]?.record.vmState ?? VmState.Error, taskState: null, step: 'done' });
    const result: BatchResult = { requested: { min, max }, placed: placed.length, instances: outcomes };
    log.info('multi-create done', { placed: placed.length, failed: outcomes.filter((o) => o.failure).length });
    return { ...outcomes[0]!.record, batch: result };
  } catch (err) {
    if (handedOver) throw err;
    return CancellationScope.nonCancellable(() => failBatch(err, members, progress));
  }
}

/** The parent's progress, answered by getProgress from its first workflow task. */
function batchProgress(instanceId: string, max: number): OperationProgress {
  const progress: OperationProgress = {
    instanceId,
    operation: 'buildInstance',
    vmState: VmState.Building,
    taskState: Task.Scheduling,
    powerState: PowerState.NoState,
    host: null,
    attempt: 0,
    step: `creating ${max} instance records`,
    hostsTried: [],
  };
  setHandler(getProgressQuery, () => progress);
  return progress;
}

/**
 * The records first (each owned by its child-to-be), so no claim is ever made for a consumer that does
 * not exist. Idempotent on the child's id: a re-run of this workflow id finds the first run's. Not
 * cancellable: a cancellation waits for the answers, so every record made is known and ended.
 */
async function createMembers(req: BuildInstanceRequest, members: Member[]): Promise<void> {
  const created = await CancellationScope.nonCancellable(() =>
    Promise.all(
      members.map((m) =>
        conductor.createInstance({
          instanceId: m.instanceId,
          name: m.name,
          flavor: req.flavor,
          image: req.image,
          availabilityZone: req.availabilityZone,
          schedulerHints: req.schedulerHints,
          requestId: m.workflowId,
        })
      )
    )
  ).catch((err: unknown) => {
    throw refusalFailure(err, FailureType.InvalidRequest);
  });
  // Each child's id is the request its record names (from the store, not from this workflow's id: a
  // replay, which runs under another id, starts the same children).
  members.forEach((m, i) => {
    m.created = created[i]!;
    m.instanceId = created[i]!.instance.instanceId;
    m.workflowId = created[i]!.requestId;
  });
}

/** Members this request will not build end deleted, with why (they were never claimed for). */
async function endUnbuilt(members: Member[], message: string, details: string): Promise<void> {
  await Promise.all(
    members.map((m) =>
      writeFailure(
        { instanceId: m.instanceId, actionId: m.created!.actionId },
        {
          code: FAULT_CODE,
          message,
          details,
          patch: { vmState: VmState.Deleted, taskState: null, powerState: PowerState.NoState, host: null },
        }
      )
    )
  );
}

type Selected = Awaited<ReturnType<typeof scheduler.selectDestinations>>;

/** One member's build: its own buildInstance child on the hosts chosen for it; its outcome, or its cancellation. */
function buildMember(
  req: BuildInstanceRequest,
  m: Member,
  hosts: string[],
  selected: Selected
): Promise<BatchMember | { cancelled: unknown }> {
  return executeChild<(input: BuildInstanceInput) => Promise<BuildInstanceResult>>('buildInstance', {
    workflowId: m.workflowId,
    staticSummary: `build ${m.name} (${req.flavor}, ${req.image}), one of ${req.name}`,
    args: [
      {
        name: m.name,
        flavor: req.flavor,
        image: req.image,
        instanceId: m.instanceId,
        ...(req.availabilityZone !== undefined ? { availabilityZone: req.availabilityZone } : {}),
        schedulerHints: req.schedulerHints,
        maxAttempts: req.maxAttempts,
        timeouts: req.timeouts,
        ...guestSecrets(req),
        scheduled: {
          hosts,
          resources: selected.resources,
          hostZones: selected.hostZones,
        },
      },
    ],
  }).then(
    (record): BatchMember | { cancelled: unknown } => describe(m, record),
    async (err: unknown): Promise<BatchMember | { cancelled: unknown }> => {
      if (isCancellation(err)) return { cancelled: err };
      const record = await conductor.getInstance({ instanceId: m.instanceId });
      const cause = (err as { cause?: unknown }).cause ?? err;
      return describe(m, record, {
        type: failureType(cause) ?? FailureType.OperationFailed,
        message: failureMessage(cause),
      });
    }
  );
}

function describe(m: Member, record: InstanceRecord, failure?: { type: string; message: string }): BatchMember {
  const { index, instanceId, name, workflowId } = m;
  return { index, instanceId, name, workflowId, record, ...(failure ? { failure } : {}) };
}

/**
 * The selection failed (NoValidHost: fewer than minCount placeable) or the request was cancelled before
 * any child held an instance: nothing stays claimed, and every instance ends `error` with the fault and a
 * failed `conductor_schedule_and_build_instances` event (Nova's cell0 burial), or `deleted` if cancelled.
 */
async function failBatch(err: unknown, members: Member[], progress: OperationProgress): Promise<never> {
  const cancelled = isCancellation(err);
  const type = failureType(err) ?? FailureType.NoValidHost;
  const message = failureMessage(err);
  const now = new Date().toISOString();
  await Promise.all(
    members.map(async (m) => {
      await scheduler.releaseAllocations({ consumerId: m.instanceId });
      const actionId = m.created!.actionId;
      await conductor.recordEvent({
        actionId,
        event: SCHEDULE_EVENT,
        attempt: 0,
        host: null,
        startedAt: now,
        finishedAt: now,
        result: 'Error',
        details: cancelled ? 'cancelled' : `${type}: ${message}`,
      });
      await writeFailure(
        { instanceId: m.instanceId, actionId },
        cancelled
          ? {
              code: 499,
              message: 'Build cancelled by the user',
              patch: { vmState: VmState.Deleted, taskState: null, powerState: PowerState.NoState, host: null },
            }
          : { code: FAULT_CODE, message, details: type }
      );
    })
  );
  Object.assign(progress, { vmState: cancelled ? VmState.Deleted : VmState.Error, taskState: null, step: 'failed' });
  if (cancelled) throw err;
  log.warn('multi-create failed', { type, message });
  throw typedFailure(type, message);
}

/**
 * This workflow id ran before (a new run of it): the instances its first run made, as they are, or the
 * failure it ended with; nothing is created, claimed or started.
 */
function rerun(members: Member[], min: number, max: number): BuildInstanceResult {
  const listed: BatchMember[] = [];
  for (const m of members) {
    const { instance, existing } = m.created!;
    // The extras the first run had no room for (deleted, never placed) are not listed, as then.
    if (instance.vmState === VmState.Deleted && !instance.host) continue;
    const fault = existing?.fault;
    listed.push(
      describe(
        m,
        instance,
        instance.vmState === VmState.Error && fault
          ? { type: fault.type ?? FailureType.BuildAborted, message: fault.message }
          : undefined
      )
    );
  }
  const built = listed.filter((l) => l.record.vmState !== VmState.Error);
  if (built.length === 0 && listed[0]?.failure?.type === FailureType.NoValidHost)
    throw typedFailure(FailureType.NoValidHost, listed[0].failure.message);
  const first = listed[0]?.record ?? members[0]!.created!.instance;
  return { ...first, batch: { requested: { min, max }, placed: listed.length, instances: listed } };
}
