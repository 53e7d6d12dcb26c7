/**
 * A resize's move up to VERIFY_RESIZE, run by the frame as a staged operation (lib/staged-operation.ts):
 * the lock, the plan read again if the instance changed since it was planned, the migration record and
 * the source allocation moved to it, the destination (the scheduler's choice, then one placement-attempt
 * run per host), the disk transfer on the source and the finish on the destination, each step's undo
 * pushed before it runs; the success write leaves the instance `resized`.
 *
 * A failure or a cancellation is undone by the frame (last step first) and ends with the instance back
 * on its source as it was, with the fault, the migration `error`; in ERROR there when the source's disk
 * transfer failed (Nova's); in ERROR on the destination when its finish failed (not undone: Nova's
 * finish_resize failure); in ERROR with no allocation left when the source cannot take the instance back.
 */
import { executeChild, isCancellation, log, patched, setHandler, uuid4 } from '@temporalio/workflow';

import { FailureType, MaxRetriesExceeded } from '../../domain/errors';
import type { InstancePatch, InstanceRecord, PowerState as PowerStateType } from '../../domain/instance';
import { PowerState, TaskState as Task, VmState } from '../../domain/instance';
import type { MigrationPlan } from '../../domain/migration';
import type { ResizeMigrateRequest } from '../../domain/schemas';
import { placementAttemptRetry } from '../../shared/activity-options';
import { placementProgressSignal } from '../../shared/messages';
import { workflowIds } from '../../shared/task-queues';
import { failureMessage, failureType, isFailureOfType, noHost } from '../lib/failures';
import type { KernelOperation } from '../lib/kernel';
import { runStep } from '../lib/kernel';
import { advance } from '../lib/operation';
import { hostsTriedBy } from '../lib/placement-selection';
import { computeOn, conductor, scheduler } from '../lib/proxies';
import { runStagedOperation } from '../lib/staged-operation';
import { PATCH_ONE_PLACEMENT_ATTEMPT, placementAttempt } from '../placement-attempt';
import { ABORT_TYPES, resizeAttempt } from './attempt';
import { selectMoveDestinations } from './select';
import type { ResizeMove } from './steps';
import {
  destroyTarget,
  FailedOnDestination,
  flavorPatch,
  markMigrationFailed,
  resizeMove,
  restorePatch,
  restoreSource,
  rollsBack,
  setMigrationStatus,
  SourceNotRestored,
  sourceLost,
  sourceLostFailure,
} from './steps';
import type { Verification } from './verification';

/**
 * The patch id of Nova's failure paths of a move: a failed resize_instance or finish_resize ends the
 * instance in ERROR (with the fault, the migration `error`) instead of rolling it back to its source.
 */
export const PATCH_RESIZE_ERROR = 'resize-error-like-nova';

/** Where a move landed, once the instance is resized (VERIFY_RESIZE). */
export interface Moved {
  move: ResizeMove;
  dest: string;
  /** The placement attempt (child workflow run) that prepared the destination. */
  attempt: number;
  /** The instance as the move left it (resized). */
  instance: InstanceRecord;
}

/** The destination a placement attempt prepared, before the disk moves. */
interface Placed {
  dest: string;
  attempt: number;
  zone: string | null;
}

/** What the undo of the disk transfer found: the power state the source guest was restored to. */
interface Restored {
  powerState?: PowerStateType;
}

/** The move, on the frame: see the module comment. `planned` is the plan read before the lock. */
export function moveResize(
  req: ResizeMigrateRequest,
  planned: MigrationPlan,
  verification: Verification
): Promise<Moved> {
  let move: ResizeMove | undefined;
  const restored: Restored = {};
  return runStagedOperation({
    begin: {
      instanceId: req.instanceId,
      transition: planned.migrationType === 'resize' ? 'resize' : 'migrate',
      operation: 'resizeMigrate',
    },
    steps: async (op) => {
      move = await locked(req, planned, op, verification);
      await recordMigration(move);
      const placed = await placeDestination(move);
      await transferDisk(move, placed, restored);
      return { move, ...placed, ...(await finishOnDestination(move, placed)) };
    },
    // The success write only: the migration is `finished` once the last step is done.
    commit: (op, { move: moved, dest, attempt, zone, powerState }) =>
      Promise.resolve({
        done: { vmState: VmState.Resized, powerState, availabilityZone: zone ?? op.before.availabilityZone },
        result: (instance: InstanceRecord) => ({ move: moved, dest, attempt, instance }),
      }),
    failure: (err) => (err instanceof FailedOnDestination ? err.failure : err),
    undoing: 'rolling back to the source',
    keepsSteps: (err) => err instanceof FailedOnDestination,
    undoFailed: async (_op, failure, undoErr) => {
      if (!(move && undoErr instanceof SourceNotRestored)) throw undoErr;
      const state = await sourceLost(move, undoErr.failure);
      return { failure: sourceLostFailure(move, failure, undoErr.failure), state };
    },
    stableState: async (_op, err) => {
      if (!move) return undefined; // refused before anything moved: the instance as the lock found it
      return err instanceof FailedOnDestination ? errorOnDestination(move, err) : restoredPatch(move, restored, err);
    },
  });
}

/**
 * Once the lock is held: the progress the Updates and the placement attempts see, the plan read again if
 * the instance changed since it was planned, and the instance's host (refused without one).
 */
async function locked(
  req: ResizeMigrateRequest,
  planned: MigrationPlan,
  op: KernelOperation,
  verification: Verification
): Promise<ResizeMove> {
  verification.progress = op.progress;
  setHandler(placementProgressSignal, (p) => {
    op.progress.attempt = p.attempt;
    op.progress.step = p.step;
    if (!op.progress.hostsTried.includes(p.host)) op.progress.hostsTried.push(p.host);
  });
  const { before } = op;
  const unchanged =
    planned.instance.flavor === before.flavor &&
    planned.instance.host === before.host &&
    planned.instance.image === before.image;
  const plan = unchanged ? planned : await conductor.planMigration({ instanceId: req.instanceId, flavor: req.flavor });
  if (before.host === null) throw noHost(before, 'resizeMigrate');
  return resizeMove(req, op, plan, before.host, uuid4());
}

/** The migration record (pre-migrating), and the source allocation moved to the migration as consumer. */
async function recordMigration(move: ResizeMove): Promise<void> {
  const { op, plan, source, migrationId, instanceId } = move;
  op.compensations.push('mark the migration failed', () => markMigrationFailed(move));
  await conductor.createMigration({
    migrationId,
    instanceId,
    sourceHost: source,
    oldFlavor: plan.oldFlavor.name,
    newFlavor: plan.newFlavor.name,
    migrationType: plan.migrationType,
  });
  op.progress.step = 'moving the source allocation to the migration';
  op.compensations.push('move the allocation back to the instance', move.revertAllocation);
  await scheduler.moveAllocations({ from: instanceId, to: migrationId });
}

/** The scheduler's hosts, then one placement attempt per host until one prepared the resize. */
async function placeDestination(move: ResizeMove): Promise<Placed> {
  const { op, plan, req, source, migrationId, instanceId } = move;
  const { hosts, resources, hostZones } = await selectMoveDestinations(op, plan, req, source);
  op.progress.step = `preparing the resize on ${hosts[0] ?? '?'}`;
  const serverGroup = op.before.serverGroup;
  const prep = {
    instanceId,
    migrationId,
    actionId: op.actionId,
    hosts,
    sourceHost: source,
    oldFlavor: plan.oldFlavor,
    newFlavor: plan.newFlavor,
    image: plan.image,
    resources,
    timeouts: req.timeouts,
    ...(serverGroup ? { serverGroup } : {}),
  };
  const child = {
    workflowId: workflowIds.placementAttempt(instanceId, 'resize'),
    staticSummary: `place the resize of ${instanceId} from ${source} (${plan.oldFlavor.name} to ${plan.newFlavor.name})`,
    retry: placementAttemptRetry(hosts.length, ABORT_TYPES),
  };
  // Versioned: resizes started before the one placement-attempt child keep their resizeAttempt child.
  const placing = patched(PATCH_ONE_PLACEMENT_ATTEMPT)
    ? executeChild(placementAttempt, { ...child, args: [{ kind: 'resize', ...prep }] })
    : executeChild(resizeAttempt, { ...child, args: [prep] });
  const { host: dest, attempt } = await placing.catch((err: unknown) => {
    throw exhausted(move, err, hosts);
  });
  await setMigrationStatus(move, 'migrating', ['pre-migrating'], dest);
  return { dest, attempt, zone: hostZones[dest] ?? null };
}

/** On the source: the clean power-off and the disk transfer; the instance's host is then the destination. */
async function transferDisk(move: ResizeMove, { dest, attempt }: Placed, restored: Restored): Promise<void> {
  const { op, plan, req, source, migrationId, instanceId } = move;
  await runStep(op, {
    event: 'compute_resize_instance',
    label: `powering off and transferring the disk on ${source}`,
    taskState: Task.ResizeMigrating,
    host: source,
    compute: source,
    attempt,
    // The source guest back in place needs its allocation back first (Nova's finish_revert_resize).
    // NOTE(nova): a failed resize_instance ends the instance in ERROR with its allocation back on the
    // source; its guest is put back in place here too, powered off as libvirt's failed
    // migrate_disk_and_power_off leaves it (Nova leaves the disk's recovery to a hard reboot).
    undo: async (failure) => {
      await move.revertAllocation();
      try {
        restored.powerState = await restoreSource(move, op, move.powerOn && !errorsOnSource(move, failure), attempt);
      } catch (cause) {
        throw new SourceNotRestored(cause);
      }
    },
    run: () =>
      computeOn(source, req.timeouts).long.resizeInstance({
        instanceId,
        migrationId,
        newFlavor: plan.newFlavor,
        shutdownTimeoutSeconds: plan.image.properties.osShutdownTimeout,
      }),
  });
  await setMigrationStatus(move, 'post-migrating', ['migrating']);
  // NOTE(nova): resize_instance switches the instance's host to the destination once the disk has moved.
  await advance(op, Task.ResizeMigrated, `disk transferred to ${dest}`, {
    host: dest,
    powerState: PowerState.Shutdown,
  });
}

/** On the destination: the guest with the new flavor; the migration `finished`, the power state it left. */
async function finishOnDestination(
  move: ResizeMove,
  { dest, attempt }: Placed
): Promise<{ powerState: PowerStateType }> {
  const { op, plan, req, migrationId, instanceId } = move;
  // NOTE(nova): finish_resize applies the new flavor, then the driver's finish_migration.
  const { powerState } = await runStep(op, {
    event: 'compute_finish_resize',
    label: `finishing the resize on ${dest}`,
    taskState: Task.ResizeFinish,
    patch: flavorPatch(plan.newFlavor),
    host: dest,
    compute: dest,
    attempt,
    undo: () => destroyTarget(move, op, dest, attempt),
    run: () =>
      computeOn(dest, req.timeouts).long.finishResize({
        instanceId,
        migrationId,
        name: op.before.name,
        newFlavor: plan.newFlavor,
        image: plan.image,
        powerOn: move.powerOn,
      }),
  }).catch((err: unknown) => {
    throw errorsOut(move, err, 'compute_finish_resize') ? new FailedOnDestination(err, dest) : err;
  });
  await setMigrationStatus(move, 'finished', ['post-migrating']);
  return { powerState };
}

/** The instance once the move's undos ran: as it was on its source, or in ERROR there (Nova's). */
function restoredPatch(move: ResizeMove, restored: Restored, failure: unknown): InstancePatch {
  const patch = restorePatch(move, restored.powerState ?? move.op.before.powerState);
  return errorsOnSource(move, failure) ? { ...patch, vmState: VmState.Error } : patch;
}

/**
 * Whether a failed step ends the instance in ERROR as Nova's does (_error_out_instance_on_exception):
 * the step `event` failed on its host with a MigrationError (not a cancellation, not a host that did not
 * answer, not a rollback-type error such as a disk that cannot shrink: Nova's InstanceFaultRollback).
 */
function errorsOut(move: ResizeMove, failure: unknown, event: string): boolean {
  // The step that failed (the undos ran since may have added steps of their own that succeeded).
  const failed = [...move.op.journal.entries].reverse().find((e) => e.status === 'failed');
  if (failed?.event !== event) return false;
  if (failureType(failure) !== FailureType.MigrationError || rollsBack(failure)) return false;
  return patched(PATCH_RESIZE_ERROR);
}

function errorsOnSource(move: ResizeMove, failure: unknown): boolean {
  return errorsOut(move, failure, 'compute_resize_instance');
}

/**
 * NOTE(nova): a failed finish_resize leaves the instance in ERROR on its destination (a hard reboot
 * recovers it there) with the new flavor and its allocation there, and deletes the migration's
 * allocation on the source (_delete_allocation_after_move), the migration `error`. Nova leaves the
 * source's `_resize` files behind; here the source's moved-aside guest is deleted as well (nothing holds
 * resources for it any more), a best effort on a host that may not answer.
 */
async function errorOnDestination(move: ResizeMove, { dest }: FailedOnDestination): Promise<InstancePatch> {
  const { op, instanceId, migrationId, source } = move;
  op.progress.step = `the finish failed on ${dest}: the instance in error there`;
  await scheduler.releaseAllocations({ consumerId: migrationId });
  await computeOn(source, move.req.timeouts)
    .cleanup.confirmResize({ instanceId, migrationId })
    .catch((err: unknown) =>
      log.warn('could not delete the moved-aside guest on the source', { host: source, error: failureMessage(err) })
    );
  await markMigrationFailed(move);
  return { vmState: VmState.Error, host: dest };
}

/**
 * The failure of the placement: every destination failing its prep is MaxRetriesExceeded, naming the
 * hosts tried as the last run's failure carries them (else as the runs told, else the whole list).
 */
function exhausted(move: ResizeMove, err: unknown, hosts: string[]): unknown {
  if (isCancellation(err) || !isFailureOfType(err, FailureType.Rescheduled)) return err;
  const { op, instanceId } = move;
  const told = op.progress.hostsTried.length > 0 ? op.progress.hostsTried : hosts;
  const tried = hostsTriedBy(err, hosts) ?? told;
  return new MaxRetriesExceeded(instanceId, tried, `retrying resize failures for instance ${instanceId}`);
}
