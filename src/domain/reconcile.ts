/**
 * The reconciler's decisions (Nova's periodic tasks: _poll_unconfirmed_resizes, heal_allocations, the
 * placement audit's --delete, and what nothing in Nova does: healing an instance whose operation died).
 * Pure: the `reconcile` workflow reads one batch of the cloud (instances with their migrations and the
 * actions of the requests holding them, allocations, which workflows run, which hosts are up), asks these
 * functions what to do, and carries the plans out (or, in a dry run, only reports them).
 *
 * An instance an operation is running on is never touched: a task state whose owner's workflow still
 * runs is left alone, and every plan on an instance is applied as a compare-and-swap on what was read.
 */
import type { InstancePatch, InstanceRecord } from './instance';
import type { TaskState as TaskStateName } from './instance';
import { PowerState, TaskState, VmState } from './instance';
import type { MigrationRecord } from './migration';
import { MIGRATION_FINISHED_STATUSES } from './migration';
import type { Resources } from './resources';
import { BUILD_TASK_STATES } from './transitions';
import type { WorkflowStatus } from './workflow-status';
import { isClosed } from './workflow-status';

/** The event the reconciler records on the action of the operation it heals. */
export const RECONCILE_EVENT = 'conductor_reconcile';
/** The event of reset-state (Nova's `nova reset-state`), on its `resetState` action. */
export const RESET_STATE_EVENT = 'conductor_reset_state';

export const RECONCILE_DECISION_KINDS = [
  'interrupted-operation',
  'unconfirmed-resize',
  'missing-allocation',
  'orphaned-allocation',
  'host-reconciled',
  'host-skipped',
  // The power-state sync (./power-sync.ts): a guest whose power state is not what its record says.
  'power-state-sync',
] as const;
export type ReconcileDecisionKind = (typeof RECONCILE_DECISION_KINDS)[number];

/** What became of a decision: applied, planned only (dry run), skipped (the state moved on) or failed. */
export type ReconcileOutcome = 'applied' | 'planned' | 'skipped' | 'failed';

/** One decision as the workflow reports it (its result, the CLI's table). */
export interface ReconcileDecision {
  kind: ReconcileDecisionKind;
  /** The instance, migration or allocation consumer, or the host. */
  subject: string;
  host: string | null;
  /** What was decided, and why. */
  detail: string;
  outcome: ReconcileOutcome;
  /** What happened when it was carried out (a guest that could not be destroyed, a claim refused …). */
  note?: string;
}

/** The action of the request that holds (or held) an instance: where the reconciler records its event. */
export interface ActionView {
  actionId: string;
  action: string;
  /** The events recorded on it. */
  events: string[];
}

/** One instance as the reconciler reads it. */
export interface InstanceView {
  instance: InstanceRecord;
  /** Its migrations, with the workflow that runs each (the request of the action that started it). */
  migrations: Array<{ migration: MigrationRecord; workflowId: string | null; actionId: string | null }>;
  /** The action of the task state's owner, when there is one. */
  ownerAction: ActionView | null;
}

export interface InstanceBatch {
  views: InstanceView[];
  /** Allocations of the batch's instances, by consumer id (instance ids only). */
  allocations: Record<string, Array<{ host: string; resources: Resources }>>;
  /** The status of every workflow the batch names (task owners and migration workflows). */
  statuses: Record<string, WorkflowStatus>;
  /** Hosts that are up (a down host is not asked to destroy anything). */
  hostsUp: Record<string, boolean>;
  /** Now, epoch ms (the workflow's clock): an owner Temporal does not know yet gets UNKNOWN_OWNER_GRACE_MS. */
  now?: number;
}

/**
 * An owner Temporal has no record of may be one about to start (a multi-create's child, whose record
 * its parent made first): left alone until the instance has not changed for this long. An owner known
 * closed (terminated, timed out, failed) is healed at once.
 */
export const UNKNOWN_OWNER_GRACE_MS = 120_000;

/** Where a half-made guest is destroyed, and what is released, for an interrupted operation. */
export interface InterruptedPlan {
  kind: 'interrupted-operation';
  instanceId: string;
  /** The compare-and-swap: the task state and owner read. */
  taskState: TaskStateName;
  owner: string | null;
  ownerStatus: WorkflowStatus;
  /** The owner's action: finished as Error, and the event recorded on it. */
  actionId: string | null;
  /** Hosts whose guest of this instance is destroyed (a build's host); a down host is listed in `hostsDown`. */
  destroyGuestOn: string[];
  hostsDown: string[];
  /** Release every allocation of the instance (a build's claim that never turned into an instance). */
  releaseInstance: boolean;
  /**
   * Unfinished migrations of the interrupted operation. `move-back` (the instance is still on the source):
   * the migration's allocation goes back to the instance, replacing its claim on the destination;
   * `release` (the instance moved to the destination): the source allocation is released; both mark the
   * migration `error`. `finished`: a confirm that was interrupted, the migration back to `finished` (the
   * next pass confirms it).
   */
  migrations: Array<{ migrationId: string; allocation: 'move-back' | 'release' | 'finished' }>;
  /** The stable state; a fault is recorded when the outcome is unknown. */
  patch: InstancePatch;
  fault: string | null;
  detail: string;
}

export interface UnconfirmedResizePlan {
  kind: 'unconfirmed-resize';
  instanceId: string;
  migrationId: string;
  /** The source host: its guest goes, and the migration's allocation on it is released. */
  sourceHost: string;
  sourceUp: boolean;
  workflowId: string | null;
  /** The resize's action, where the decision is recorded too. */
  actionId: string | null;
  /** Active, or stopped when the resized guest is shut down (as the resize's own confirm does). */
  vmState: typeof VmState.Active | typeof VmState.Stopped;
  detail: string;
}

export interface MissingAllocationPlan {
  kind: 'missing-allocation';
  instanceId: string;
  host: string;
  resources: Resources;
  detail: string;
}

export interface OrphanedAllocationPlan {
  kind: 'orphaned-allocation';
  consumerId: string;
  host: string;
  detail: string;
}

export type InstancePlan = InterruptedPlan | UnconfirmedResizePlan | MissingAllocationPlan;

/** Owners whose workflow is not running (the id is in `statuses`, or the task state has no owner at all). */
function ownerStatus(instance: InstanceRecord, statuses: Record<string, WorkflowStatus>): WorkflowStatus {
  return instance.taskOwner === null ? 'unknown' : (statuses[instance.taskOwner] ?? 'unknown');
}

const describeOwner = (owner: string | null, status: WorkflowStatus) =>
  owner === null ? 'no request holds it' : `its workflow ${owner} is ${status}`;

/**
 * The vm states of an instance settled on its host, which holds its claim there: a paused or suspended
 * one too (its guest, frozen or saved to disk, stays on the host; Nova keeps its allocation).
 */
const SETTLED_ON_HOST: ReadonlySet<string> = new Set([
  VmState.Active,
  VmState.Stopped,
  VmState.Paused,
  VmState.Suspended,
  VmState.Shelved,
]);

/** What to do with each instance of a batch: nothing for most. */
export function decideInstances(batch: InstanceBatch): InstancePlan[] {
  const plans: InstancePlan[] = [];
  for (const view of batch.views) {
    const plan = decideInstance(view, batch);
    if (plan) plans.push(plan);
  }
  return plans;
}

function decideInstance(view: InstanceView, batch: InstanceBatch): InstancePlan | undefined {
  const { instance } = view;
  const { instanceId } = instance;
  if (instance.vmState === VmState.Deleted) return undefined;
  if (instance.taskState !== null) {
    const status = ownerStatus(instance, batch.statuses);
    // A live operation is never touched.
    if (!isClosed(status)) return undefined;
    if (
      status === 'unknown' &&
      batch.now !== undefined &&
      batch.now - Date.parse(instance.updatedAt) < UNKNOWN_OWNER_GRACE_MS
    )
      return undefined;
    return interrupted(view, batch, instance.taskState, status);
  }
  if (instance.vmState === VmState.Resized) {
    const finished = view.migrations.filter((m) => m.migration.status === 'finished').at(-1);
    if (!finished) return undefined;
    const status = finished.workflowId === null ? 'unknown' : (batch.statuses[finished.workflowId] ?? 'unknown');
    // The resize's own workflow waits for the decision (its confirm window): leave it to it.
    if (!isClosed(status)) return undefined;
    const source = finished.migration.sourceHost;
    return {
      kind: 'unconfirmed-resize',
      instanceId,
      migrationId: finished.migration.id,
      sourceHost: source,
      sourceUp: batch.hostsUp[source] ?? false,
      workflowId: finished.workflowId,
      actionId: finished.actionId,
      vmState: instance.powerState === PowerState.Shutdown ? VmState.Stopped : VmState.Active,
      detail: `resized with no workflow awaiting its confirmation (${describeOwner(finished.workflowId, status)}): confirm it, the source guest on ${source} destroyed and its allocation released`,
    };
  }
  if (SETTLED_ON_HOST.has(instance.vmState) && instance.host !== null) {
    const held = batch.allocations[instanceId] ?? [];
    if (held.some((a) => a.host === instance.host)) return undefined;
    const host = instance.host;
    return {
      kind: 'missing-allocation',
      instanceId,
      host,
      resources: { VCPU: instance.vcpus, MEMORY_MB: instance.memoryMb, DISK_GB: instance.diskGb },
      detail: `${instance.vmState} on ${host} but holds no allocation there: claim its flavor's resources (heal_allocations)`,
    };
  }
  return undefined;
}

/**
 * The half-made guest of a build or an unshelve that died on `host` (null: no host chosen yet): destroyed
 * there when the host is up, else the host is named down and the guest left for its own reconciliation.
 */
function halfMadeGuest(
  host: string | null,
  batch: InstanceBatch
): { up: boolean; destroyGuestOn: string[]; hostsDown: string[]; what: string } {
  const up = host !== null && (batch.hostsUp[host] ?? false);
  return {
    up,
    destroyGuestOn: host !== null && up ? [host] : [],
    hostsDown: host !== null && !up ? [host] : [],
    what:
      host === null
        ? 'no host chosen yet'
        : `destroy the half-made guest on ${host}${up ? '' : ' (down: left for later)'}`,
  };
}

/** The plan for an instance whose operation's workflow is closed while it holds a task state. */
function interrupted(
  view: InstanceView,
  batch: InstanceBatch,
  taskState: TaskStateName,
  status: WorkflowStatus
): InterruptedPlan {
  const { instance, ownerAction } = view;
  const owner = instance.taskOwner;
  const why = `task state ${taskState} held, but ${describeOwner(owner, status)}`;
  // The owner's unfinished migrations (a resize, a cold migration, an evacuation it started).
  const own = view.migrations.filter(
    (m) => !MIGRATION_FINISHED_STATUSES.includes(m.migration.status) && owner !== null && m.workflowId === owner
  );
  const base = {
    kind: 'interrupted-operation' as const,
    instanceId: instance.instanceId,
    taskState,
    owner,
    ownerStatus: status,
    actionId: ownerAction?.actionId ?? null,
  };
  if ((BUILD_TASK_STATES as readonly string[]).includes(taskState) && instance.vmState === VmState.Building) {
    // A build that died: its outcome is unknown. The half-made guest goes, the claim is released.
    const guest = halfMadeGuest(instance.host, batch);
    return {
      ...base,
      destroyGuestOn: guest.destroyGuestOn,
      hostsDown: guest.hostsDown,
      releaseInstance: true,
      migrations: [],
      patch: {
        vmState: VmState.Error,
        taskState: null,
        powerState: PowerState.NoState,
        host: guest.up ? null : instance.host,
      },
      fault: `Build of instance ${instance.instanceId} was interrupted: ${why}; its outcome is unknown`,
      detail: `${why}: ${guest.what}, release its claim, end in error`,
    };
  }
  if (instance.vmState === VmState.ShelvedOffloaded) {
    // An unshelve that died (the conductor's task: unshelving, then spawning on its host). As a build's:
    // the half-made guest goes, the claim is released; the instance is offloaded again, its image kept.
    const guest = halfMadeGuest(instance.host, batch);
    return {
      ...base,
      destroyGuestOn: guest.destroyGuestOn,
      hostsDown: guest.hostsDown,
      releaseInstance: true,
      migrations: [],
      patch: { taskState: null, powerState: PowerState.NoState, host: null },
      fault: `Unshelve of instance ${instance.instanceId} was interrupted: ${why}; it is offloaded again`,
      detail: `${why}: ${guest.what}, release its claim, shelved_offloaded again`,
    };
  }
  // The allocation follows the instance: still on the source, the migration's goes back to it.
  const undoMigrations = own.map((m) => ({
    migrationId: m.migration.id,
    allocation: instance.host === m.migration.sourceHost ? ('move-back' as const) : ('release' as const),
  }));
  if (taskState === TaskState.ResizeConfirming && instance.vmState === VmState.Resized)
    // A confirm interrupted: the resize is left awaiting its decision again, and confirmed by the next pass.
    return {
      ...base,
      destroyGuestOn: [],
      hostsDown: [],
      releaseInstance: false,
      migrations: own
        .filter((m) => m.migration.status === 'confirming')
        .map((m) => ({ migrationId: m.migration.id, allocation: 'finished' as const })),
      patch: { taskState: null },
      fault: null,
      detail: `${why}; a confirm was interrupted: back to resized, confirmed by the next pass`,
    };
  // Nothing reached a host: the operation can be undone entirely (the allocations back where they were).
  const nothingDone = ownerAction !== null && !ownerAction.events.some((e) => e.startsWith('compute_'));
  if (nothingDone)
    return {
      ...base,
      destroyGuestOn: [],
      hostsDown: [],
      releaseInstance: false,
      migrations: undoMigrations,
      patch: { taskState: null },
      fault: null,
      detail: `${why}; nothing of it reached a host: clear the task state, ${instance.vmState} as it was`,
    };
  return {
    ...base,
    destroyGuestOn: [],
    hostsDown: [],
    releaseInstance: false,
    migrations: undoMigrations,
    patch: { vmState: VmState.Error, taskState: null },
    fault: `Operation ${ownerAction?.action ?? taskState} on instance ${instance.instanceId} was interrupted: ${why}; its outcome is unknown`,
    detail: `${why}; it reached a host: end in error with a fault${own.length > 0 ? ', its migration failed and its allocation back with the instance' : ''}`,
  };
}

/** One consumer of an allocation, as the store knows it. */
export type ConsumerView =
  | { kind: 'instance'; vmState: string; taskState: string | null; host: string | null }
  | { kind: 'migration'; status: string; instanceId: string }
  | { kind: 'none' };

/**
 * Allocations to remove: those whose consumer is gone (no such instance or migration), deleted, a failed
 * build (error with no host: placement's own rule), or a finished migration. An instance an operation
 * holds is never touched, nor an unfinished migration (its operation heals it).
 */
export function decideAllocations(
  allocations: ReadonlyArray<{ consumerId: string; host: string }>,
  consumers: Record<string, ConsumerView>
): OrphanedAllocationPlan[] {
  const plans: OrphanedAllocationPlan[] = [];
  for (const { consumerId, host } of allocations) {
    const consumer = consumers[consumerId] ?? { kind: 'none' };
    let why: string | undefined;
    if (consumer.kind === 'none') why = 'no instance or migration has this id';
    else if (consumer.kind === 'migration') {
      if (MIGRATION_FINISHED_STATUSES.includes(consumer.status))
        why = `migration of instance ${consumer.instanceId} is ${consumer.status}`;
    } else if (consumer.taskState === null) {
      if (consumer.vmState === VmState.Deleted) why = 'instance deleted';
      else if (consumer.vmState === VmState.ShelvedOffloaded) why = 'instance shelved and offloaded';
      else if (consumer.vmState === VmState.Error && consumer.host === null) why = 'instance error with no host';
    }
    if (why !== undefined) plans.push({ kind: 'orphaned-allocation', consumerId, host, detail: `${why}: release it` });
  }
  return plans;
}
