/** One placement attempt of a build on one host (a run of the child workflow, on the frame hostAttempt): Nova's build_and_run_instance. */
import { CancellationScope, isCancellation, log } from '@temporalio/workflow';

import type { EventInput } from '../../activities/conductor';
import type { RequestSpecInput } from '../../domain/request-spec';

import type { Flavor, Image } from '../../domain/catalogue';
import { FailureType, InvalidRequest } from '../../domain/errors';
import type { TaskState } from '../../domain/instance';
import { PowerState, TaskState as Task, VmState } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import { type ComputeTimeoutsInput, guestSecrets } from '../../domain/schemas';
import { BUILD_TASK_STATES } from '../../domain/transitions';
import { domainFailure, failureMessage, refusalFailure, timeoutType } from '../lib/failures';
import type { StepRunner } from '../lib/kernel';
import { once } from '../lib/kernel';
import type { HostPlacement } from '../lib/placement-attempt';
import { CLAIM_EVENT, flushEvents, hostAttempt } from '../lib/placement-attempt';
import { EventBatch, recordStep } from '../lib/operation';
import type { Selection } from '../lib/placement-selection';
import type { OperationProgress } from '../../shared/messages';
import { computeOn, scheduler } from '../lib/proxies';

export { CLAIM_EVENT, GROUP_CHECK_EVENT } from '../lib/placement-attempt';

/** Failure types that end a build at once: no other host can fix them. */
export const ABORT_TYPES = [
  FailureType.BuildAborted,
  FailureType.InvalidRequest,
  FailureType.InstanceNotFound,
  FailureType.InstanceInvalidState,
];

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
   * Always true: every build is batched (the attempt's bookkeeping goes with its steps' own writes, as
   * local activities, and the parent is told only of the spawn). Still sent, so that a worker of the
   * release before reads a run started by this one as it was meant.
   */
  batched?: boolean;
  /**
   * When the parent has no hosts yet: the first run asks the scheduler with this request
   * (`hosts` and `resources` are then empty) and every later run takes the selection from the run before
   * it (the frame's CarriedSelection).
   */
  select?: RequestSpecInput;
  /** Nova's adminPass and user_data, for the spawn only (never stored, never in progress or events). */
  adminPassword?: string;
  userData?: string;
}

/** A build attempt's outcome: its host, its zone, the hosts tried and its unrecorded events. */
export interface BuildAttemptResult {
  host: string;
  zone?: string | null;
  hostsTried?: string[];
  /** The events of the attempt's last steps, for the parent's last write. */
  events?: EventInput[];
}

/** The event of the scheduler's selection, on the build's action. */
export const SELECT_EVENT = 'conductor_schedule_and_build_instances';

/**
 * The scheduler's selection as a cancellable build makes it: a cancellation that arrives while it runs
 * waits for its answer, so the claim it makes is known and released by the build's rollback, never
 * landing after it. (This was the patch `selection-outlives-cancel`, retired: docs/versioning.md.)
 */
export function selectOnce<T>(select: () => Promise<T>): Promise<T> {
  if (CancellationScope.current().consideredCancelled) return select();
  return CancellationScope.nonCancellable(select);
}

/**
 * One placement attempt on one host (Nova's build_and_run_instance on that compute), on the frame
 * (hostAttempt): the first host was claimed by the scheduler, an alternate is claimed by the frame, the
 * group's policy checked again there; then the networks, the block devices and the spawn. A
 * reschedulable failure releases this host's claim and fails the run as retryable `Rescheduled`, so the
 * server starts the next run on the next alternate; an abort fails it as non-retryable `BuildAborted`.
 */
export function buildOnHost(input: BuildAttemptInput): Promise<BuildAttemptResult> {
  const { instanceId, select } = input;
  const batch = new EventBatch();
  return hostAttempt({
    instanceId,
    actionId: input.actionId,
    selection: select ? { select: () => firstSelection(input, select, batch) } : given(input),
    task: `retrying build failures for instance ${instanceId}`,
    operation: 'buildInstance',
    vmState: VmState.Building,
    taskState: Task.Scheduling,
    batch,
    release: 'release the claim on the host',
    writes: (host) => ({ taskState: Task.Scheduling, patch: { host }, expect: BUILDING }),
    // An instance in a group is checked there once its host is claimed (a violation is no step on the
    // host, so the host is not counted as failing: Nova's RescheduledByPolicyException).
    ...(input.serverGroup !== undefined ? { serverGroup: input.serverGroup } : {}),
    checkGroup: () => true,
    before: (placement, op) => buildUndos(op, placement.host, input),
    ending: { operation: 'Build', abortTypes: ABORT_TYPES, abortDefault: FailureType.BuildAborted },
    steps: async (placement, op, { compute, destroyGuest }) => {
      const { host, attempt, selection } = placement;
      op.compensations.push('destroy the guest', destroyGuest);
      await guestSteps(buildStep(placement, op), compute, input);
      const hostsTried = selection.hosts.slice(0, attempt);
      return { host, zone: selection.hostZones[host] ?? null, hostsTried, events: batch.take() };
    },
  });
}

/** The compare-and-swap of a build's writes on its host. */
const BUILDING = { taskState: BUILD_TASK_STATES, vmState: VmState.Building };

/** One build step of an attempt: its task state, its event, what it runs (on the host). */
type BuildStep = <T>(taskState: TaskState, event: string, run: () => Promise<T>) => Promise<T>;

/** One build step: the task state and host written, the parent told (of the spawn, when batched), the step run, its event recorded. */
function buildStep(placement: HostPlacement, op: StepRunner): BuildStep {
  const { host } = placement;
  return (taskState, event, run) =>
    placement.step(op, taskState, {
      tellParent: taskState === Task.Spawning,
      event,
      taskState,
      patch: { host },
      expect: BUILDING,
      host,
      compute: host,
      run,
    });
}

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
 * The undos of one build attempt beside the claim's release (the frame's): the failed build counted on
 * the host, pushed now (undone last), and the destroy of the guest, which the steps push once they reach
 * the host (undone first). Also the host's compute queues.
 */
function buildUndos(op: StepRunner, host: string, input: BuildAttemptInput) {
  const { instanceId } = input;
  const compute = computeOn(host, input.timeouts);
  /** Whether this attempt may have left something on the host: a step sent there, other than a claim that held. */
  const touched = () =>
    op.journal.entries.some((e) => e.compute === host && !(e.event === CLAIM_EVENT && e.status === 'done'));
  op.compensations.push('count a failed build on the host', async (failure) => {
    // A cancelled attempt is not the host's fault.
    if (!isCancellation(failure) && touched()) await scheduler.recordBuildResult({ host, success: false });
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
  return { compute, destroyGuest };
}

/**
 * A batched build's first run when its parent has no hosts yet: the scheduler's answer (its event goes
 * with the attempt's first write). Later runs take it from the run before (the frame's CarriedSelection).
 */
async function firstSelection(
  input: BuildAttemptInput,
  select: RequestSpecInput,
  batch: EventBatch
): Promise<Selection> {
  const { instanceId, actionId } = input;
  const progress: OperationProgress = {
    instanceId,
    operation: 'buildInstance',
    vmState: VmState.Building,
    taskState: Task.Scheduling,
    powerState: PowerState.NoState,
    host: null,
    attempt: 1,
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
    // A cancelled build ends deleted (its parent's failBuild), not with a fault.
    if (isCancellation(err)) throw err;
    // Nothing was claimed: NoValidHost (or a bad request) ends the build; no run after this one. A
    // failure with no type (the scheduler unreachable) aborts, as the one-activity build's does.
    throw refusalFailure(err, FailureType.BuildAborted);
  }
}

/** The hosts and resources the parent gave. */
function given(input: BuildAttemptInput): Selection {
  if (!input.resources) throw domainFailure(new InvalidRequest('resources', 'required unless select is given'));
  return { hosts: input.hosts, resources: input.resources, hostZones: {} };
}
