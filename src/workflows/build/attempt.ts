/** One placement attempt of a build on one host (a run of the child workflow): Nova's build_and_run_instance. */
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  patched,
  workflowInfo,
} from '@temporalio/workflow';

import type { EventInput } from '../../activities/conductor';
import type { RequestSpecInput } from '../../domain/request-spec';

import type { Flavor, Image } from '../../domain/catalogue';
import { FailureType, InvalidRequest, MaxRetriesExceeded } from '../../domain/errors';
import type { TaskState } from '../../domain/instance';
import { PowerState, TaskState as Task, VmState } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import { type ComputeTimeoutsInput, guestSecrets } from '../../domain/schemas';
import { BUILD_TASK_STATES } from '../../domain/transitions';
import {
  applicationCause,
  domainFailure,
  failureMessage,
  refusalFailure,
  timeoutType,
  typedFailure,
} from '../lib/failures';
import type { StepRunner } from '../lib/kernel';
import { once } from '../lib/kernel';
import type { AttemptEnding, PlacementAttempt } from '../lib/placement-attempt';
import { attemptOnHost } from '../lib/placement-attempt';
import { EventBatch, recordStep } from '../lib/operation';
import type { OperationProgress } from '../../shared/messages';
import { computeOn, conductor, conductorLocal, scheduler } from '../lib/proxies';

/** Failure types that end a build at once: no other host can fix them. */
export const ABORT_TYPES = [
  FailureType.BuildAborted,
  FailureType.InvalidRequest,
  FailureType.InstanceNotFound,
  FailureType.InstanceInvalidState,
];

/** The event of an alternate's claim (a reschedule's first step). */
export const CLAIM_EVENT = 'conductor_claim_alternate';

/** The patch id of the alternate claim that is in flight before it is issued and never touches the host. */
export const PATCH_ALTERNATE_CLAIM_OFF_HOST = 'alternate-claim-off-host';

/** The patch id of the late server-group check before an instance of a group is built on its host. */
export const PATCH_LATE_GROUP_CHECK = 'late-group-check';

/** The event of the late server-group check (Nova's _validate_instance_group_policy). */
export const GROUP_CHECK_EVENT = 'compute_validate_instance_group_policy';

export interface BuildAttemptInput {
  instanceId: string;
  name: string;
  actionId: string;
  /** The chosen host then the alternates; run N of this workflow uses hosts[N-1]. */
  hosts: string[];
  flavor: Flavor;
  image: Image;
  /** What the first host's claim holds (an alternate is claimed with it); absent with `select`. */
  resources?: Resources;
  timeouts: ComputeTimeoutsInput;
  /** The instance's server group, when it has one: its policy is checked again on the host. */
  serverGroup?: string;
  /**
   * A batched build (its parent on the patch `batched-build`): the attempt's bookkeeping goes with its
   * steps' own writes, as local activities, and the parent is told only of the spawn.
   */
  batched?: boolean;
  /**
   * With `batched`, when the parent has no hosts yet: the first run asks the scheduler with this request
   * (`hosts` and `resources` are then empty) and every later run takes the selection from the run before
   * it, which hands it on in its failure's details.
   */
  select?: RequestSpecInput;
  /** Nova's adminPass and user_data, for the spawn only (never stored, never in progress or events). */
  adminPassword?: string;
  userData?: string;
}

/** What the scheduler chose for a build: the host then its alternates, the claim's resources, their zones. */
export interface BuildSelection {
  hosts: string[];
  resources: Resources;
  hostZones: Record<string, string | null>;
}

/** A build attempt's outcome: its host; a batched one's also its zone, the hosts tried and its unrecorded events. */
export interface BuildAttemptResult {
  host: string;
  zone?: string | null;
  hostsTried?: string[];
  /** The events of a batched attempt's last steps, for the parent's last write. */
  events?: EventInput[];
}

/** The event of the scheduler's selection, on the build's action. */
export const SELECT_EVENT = 'conductor_schedule_and_build_instances';

/**
 * The patch id of the selection a cancellation waits for: the scheduler's answer (and its claim) is
 * awaited, so the claim made is known and released, never landing after the build's release.
 */
export const PATCH_SELECTION_OUTLIVES_CANCEL = 'selection-outlives-cancel';

/**
 * The scheduler's selection as a cancellable build makes it: a cancellation that arrives while it runs
 * waits for its answer (the claim it makes is then released by the build's rollback, never landing after
 * it). Versioned where it matters only: the patch is asked when such a cancellation arrives, so a build
 * that is not cancelled mid-selection records no marker; one recorded before it cancels the call at once.
 */
export function selectOnce<T>(select: () => Promise<T>): Promise<T> {
  const outer = CancellationScope.current();
  if (outer.consideredCancelled) return select();
  return CancellationScope.nonCancellable(() => {
    const call = new CancellationScope();
    let settled = false;
    outer.cancelRequested.catch(() => {
      if (!settled && !patched(PATCH_SELECTION_OUTLIVES_CANCEL)) call.cancel();
    });
    return call.run(select).finally(() => {
      settled = true;
    });
  });
}

/**
 * One placement attempt on one host (Nova's build_and_run_instance on that compute). The first host
 * was claimed by the scheduler; an alternate is claimed here. A reschedulable failure releases this
 * host's claim and fails the run as retryable `Rescheduled`, so the server starts the next run on the
 * next alternate; an abort fails it as non-retryable `BuildAborted`.
 */
export async function buildOnHost(input: BuildAttemptInput): Promise<BuildAttemptResult> {
  const { instanceId, actionId } = input;
  const batch = input.batched ? new EventBatch() : undefined;
  const selection: BuildSelection = batch ? await selectionOf(input, batch) : given(input);
  const placement = attemptOnHost(
    instanceId,
    selection.hosts,
    () => new MaxRetriesExceeded(instanceId, selection.hosts).message
  );
  const { attempt, host } = placement;
  const compute = computeOn(host, input.timeouts);
  // Versioned (runs recorded before it replay the old way): an alternate's claim is in flight before it
  // is issued, so a claim whose answer was lost is released; a claim is not a step on the host, so an
  // alternate found full is skipped without a destroy call and without a failed build counted there.
  // A batched build is newer than both patches: it takes their paths without a marker.
  const claimOffHost = batch !== undefined || patched(PATCH_ALTERNATE_CLAIM_OFF_HOST);
  const op = placement.operation({
    actionId,
    operation: 'buildInstance',
    vmState: VmState.Building,
    taskState: Task.Scheduling,
    ...(batch ? { batch } : {}),
  });

  const { releaseClaim, destroyGuest } = buildUndos(op, host, compute, instanceId);

  /** One build step: the task state and host written, the parent told, the step run, its event recorded. */
  const step: BuildStep = (taskState, event, run, onHost = true) =>
    placement.step(op, taskState, {
      tellParent: taskState === Task.Spawning,
      event,
      taskState,
      patch: { host },
      expect: { taskState: BUILD_TASK_STATES, vmState: VmState.Building },
      host,
      ...(onHost ? { compute: host } : {}),
      run,
    });

  return placement.run(
    op,
    async () => {
      if (attempt === 1) releaseClaim();
      else {
        if (claimOffHost) releaseClaim();
        else op.compensations.push('destroy the guest', destroyGuest);
        await step(
          Task.Scheduling,
          CLAIM_EVENT,
          () => scheduler.claimResources({ consumerId: instanceId, host, resources: selection.resources }),
          !claimOffHost
        );
        if (!claimOffHost) releaseClaim();
      }
      // Versioned, and only for an instance in a group: the late check (Nova's
      // _validate_instance_group_policy) against the group's members as they are now, which a concurrent
      // build may have moved since the scheduler chose. A violation reschedules; it is no step on the host,
      // so the host is not counted as failing (Nova's RescheduledByPolicyException).
      if (input.serverGroup !== undefined && (batch !== undefined || patched(PATCH_LATE_GROUP_CHECK)))
        await step(
          Task.Scheduling,
          GROUP_CHECK_EVENT,
          () => conductor.checkServerGroupPolicy({ instanceId, host }),
          false
        );
      op.compensations.push('destroy the guest', destroyGuest);
      await guestSteps(step, compute, input);
      if (!batch) return { host };
      await placement.told();
      const hostsTried = selection.hosts.slice(0, attempt);
      return { host, zone: selection.hostZones[host] ?? null, hostsTried, events: batch.take() };
    },
    buildEnding(placement, selection, batch)
  );
}

/**
 * How a build attempt fails: an abort type at once, anything else rescheduled. A batched one first writes
 * its unwritten events and waits for its signals to the parent, and hands its selection to the next run.
 */
function buildEnding(placement: PlacementAttempt, selection: BuildSelection, batch?: EventBatch): AttemptEnding {
  const ending = {
    operation: 'Build',
    hosts: selection.hosts.length,
    abortTypes: ABORT_TYPES,
    abortDefault: FailureType.BuildAborted,
  };
  if (!batch) return ending;
  return {
    ...ending,
    settle: async () => {
      await Promise.all([flushEvents(batch), placement.told()]);
    },
    carry: { details: { selection }, lastHost: placement.attempt >= selection.hosts.length },
  };
}

/** One build step of an attempt: its task state, its event, what it runs, whether it runs on the host. */
type BuildStep = <T>(taskState: TaskState, event: string, run: () => Promise<T>, onHost?: boolean) => Promise<T>;

/** The steps on the host, in Nova's order: the networks, the block devices, then the spawn. */
async function guestSteps(step: BuildStep, compute: ReturnType<typeof computeOn>, input: BuildAttemptInput) {
  const { instanceId } = input;
  await step(Task.Networking, 'compute_allocate_networks', () => compute.short.allocateNetworks({ instanceId }));
  await step(Task.BlockDeviceMapping, 'compute_prepare_block_devices', () =>
    compute.short.prepareBlockDevices({ instanceId, flavor: input.flavor, image: input.image })
  );
  await step(Task.Spawning, 'compute_spawn', () =>
    compute.long.spawnInstance({
      instanceId,
      name: input.name,
      flavor: input.flavor,
      image: input.image,
      ...guestSecrets(input),
    })
  );
}

/**
 * The undos of one build attempt, undone last first: the guest destroyed, then the claim released, then
 * the failed build counted on the host (pushed now; the claim's release and the destroy are pushed by
 * the attempt as its steps reach them).
 */
function buildUndos(op: StepRunner, host: string, compute: ReturnType<typeof computeOn>, instanceId: string) {
  /** Whether this attempt may have left something on the host: a step sent there, other than a claim that held. */
  const touched = () =>
    op.journal.entries.some((e) => e.compute === host && !(e.event === CLAIM_EVENT && e.status === 'done'));
  // Undone last first: the guest destroyed, then the claim released, then the failed build counted.
  op.compensations.push('count a failed build on the host', async (failure) => {
    // A cancelled attempt is not the host's fault.
    if (!isCancellation(failure) && touched()) await scheduler.recordBuildResult({ host, success: false });
  });
  const releaseClaim = () =>
    op.compensations.push('release the claim on the host', async () => {
      await scheduler.releaseAllocations({ consumerId: instanceId, host });
    });
  const destroyGuest = once(async (failure) => {
    // A host that never picked the task up has nothing to destroy.
    const timeout = timeoutType(failure);
    if (!touched() || timeout === 'SCHEDULE_TO_START') return;
    // A host that went silent mid-step (frozen, hung) gets a try of seconds: the reschedule does not wait on it.
    const cleanup = timeout === 'HEARTBEAT' ? compute.cleanupSilent : compute.cleanup;
    await cleanup.destroyInstance({ instanceId }).catch((e: unknown) =>
      log.warn('could not destroy the guest; the host cleans up when it reconciles', {
        host,
        error: failureMessage(e),
      })
    );
  });
  return { releaseClaim, destroyGuest };
}

/**
 * A batched attempt's hosts: its parent's (a multi-create member's, chosen by one scheduler call for the
 * batch), the scheduler's answer on the first run (its event goes with the attempt's first write), or the
 * selection the run before handed on.
 */
async function selectionOf(input: BuildAttemptInput, batch: EventBatch): Promise<BuildSelection> {
  const { instanceId, actionId, select } = input;
  if (!select) return given(input);
  const { attempt, lastFailure } = workflowInfo();
  if (attempt > 1) {
    const carried = handedOn(lastFailure);
    if (carried) return carried;
    throw typedFailure(
      FailureType.BuildAborted,
      `Build of instance ${instanceId}: run ${attempt} of its placement attempt has no selection from the run before it`
    );
  }
  const progress: OperationProgress = {
    instanceId,
    operation: 'buildInstance',
    vmState: VmState.Building,
    taskState: Task.Scheduling,
    powerState: PowerState.NoState,
    host: null,
    attempt,
    step: 'selecting destinations',
    hostsTried: [],
  };
  const owner = { instanceId, actionId, batch, progress };
  try {
    const selected = await recordStep(
      owner,
      SELECT_EVENT,
      () => selectOnce(() => scheduler.selectDestinations(select)),
      {
        host: null,
        attempt: 0,
        hostOf: (s) => s.selections[0]?.hosts[0] ?? null,
        details: (s) => `hosts: ${(s.selections[0]?.hosts ?? []).join(', ')}`,
      }
    );
    return { hosts: selected.selections[0]?.hosts ?? [], resources: selected.resources, hostZones: selected.hostZones };
  } catch (err) {
    await flushEvents(batch);
    // A cancelled build ends deleted (its parent's failBuild), not with a fault (versioned with the wait).
    if (isCancellation(err) && patched(PATCH_SELECTION_OUTLIVES_CANCEL)) throw err;
    // Nothing was claimed: NoValidHost (or a bad request) ends the build; no run after this one. A
    // failure with no type (the scheduler unreachable) aborts, as the one-activity build's does.
    throw refusalFailure(err, FailureType.BuildAborted);
  }
}

/** The hosts and resources the parent gave. */
function given(input: BuildAttemptInput): BuildSelection {
  if (!input.resources) throw domainFailure(new InvalidRequest('resources', 'required unless select is given'));
  return { hosts: input.hosts, resources: input.resources, hostZones: {} };
}

/** The hosts a batched build tried, from its last attempt's failure (its details carry the selection). */
export function hostsTriedOf(err: unknown): string[] | undefined {
  const details = applicationCause(err)?.details?.[0] as { attempt?: number; selection?: BuildSelection } | undefined;
  if (!details?.selection || details.attempt === undefined) return undefined;
  return details.selection.hosts.slice(0, details.attempt);
}

/** The selection in the details of the run before's failure (attemptFailure puts it there). */
function handedOn(lastFailure: Error | undefined): BuildSelection | undefined {
  const details = lastFailure instanceof ApplicationFailure ? lastFailure.details : undefined;
  const carried = (details?.[0] as { selection?: BuildSelection } | undefined)?.selection;
  return carried && Array.isArray(carried.hosts) ? carried : undefined;
}

/** Writes the events a batched attempt has not written yet (it ends without another write). */
async function flushEvents(batch: EventBatch): Promise<void> {
  const events = batch.take();
  if (events.length > 0) await CancellationScope.nonCancellable(() => conductorLocal.recordEvents({ events }));
}

/**
 * The `buildAttempt` workflow type: kept registered for parents started before the patch
 * `one-placement-attempt` (docs/versioning.md); one run is buildOnHost on its host.
 */
export async function buildAttempt(input: BuildAttemptInput): Promise<BuildAttemptResult> {
  return buildOnHost(input);
}
