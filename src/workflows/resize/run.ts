/** One resize or cold migration on the kernel: the move (each step with its undo), how it fails, confirm and revert. */
import { executeChild, isCancellation, log, patched } from '@temporalio/workflow';

import { FailureType } from '../../domain/errors';
import type { InstancePatch, InstanceRecord, PowerState as PowerStateType } from '../../domain/instance';
import { PowerState, TaskState as Task, VmState } from '../../domain/instance';
import { placementAttemptRetry } from '../../shared/activity-options';
import type { ResizeOutcome } from '../../shared/messages';
import { workflowIds } from '../../shared/task-queues';
import { failureMessage, failureType, isFailureOfType, typedFailure } from '../lib/failures';
import type { KernelOperation } from '../lib/kernel';
import { rollBackAndFail, runStep, withKernel } from '../lib/kernel';
import { advance, beginOperation, completeOperation, failOperation } from '../lib/operation';
import { computeOn, conductor, scheduler } from '../lib/proxies';
import { PATCH_ONE_PLACEMENT_ATTEMPT, placementAttempt } from '../placement-attempt';
import { ABORT_TYPES, resizeAttempt } from './attempt';
import { selectMoveDestinations } from './select';
import { FailedOnDestination, flavorPatch, MigrationSteps, rollsBack, SourceNotRestored } from './steps';

/**
 * The patch id of Nova's failure paths of a move: a failed resize_instance or finish_resize ends the
 * instance in ERROR (with the fault, the migration `error`) instead of rolling it back to its source.
 */
export const PATCH_RESIZE_ERROR = 'resize-error-like-nova';

/** The patch id of the confirm's check that the source host is up (Nova refuses a confirm otherwise). */
export const PATCH_CONFIRM_SOURCE_UP = 'confirm-checks-source-up';

/** Where a move landed, once the instance is resized (VERIFY_RESIZE). */
export interface Moved {
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

/** One resize or cold migration of one instance: the move, how it fails, the confirm and the revert. */
export class ResizeRun extends MigrationSteps {
  /** The power state the source guest was restored to by the move's undo (read once the undos ran). */
  private restoredPower?: PowerStateType;

  /** The operation's live progress (what getProgress answers). */
  get progress(): KernelOperation['progress'] {
    return this.op.progress;
  }

  /** Everything up to VERIFY_RESIZE, each step's undo pushed before it; a failure is ended by `fail`. */
  async move(): Promise<Moved> {
    await this.recordMigration();
    const placed = await this.placeDestination();
    await this.transferDisk(placed);
    return this.finishOnDestination(placed);
  }

  /** The migration record (pre-migrating), and the source allocation moved to the migration as consumer. */
  private async recordMigration(): Promise<void> {
    const { op, plan, source, migrationId, instanceId } = this;
    op.compensations.push('mark the migration failed', () => this.markMigrationFailed());
    await conductor.createMigration({
      migrationId,
      instanceId,
      sourceHost: source,
      oldFlavor: plan.oldFlavor.name,
      newFlavor: plan.newFlavor.name,
      migrationType: plan.migrationType,
    });
    op.progress.step = 'moving the source allocation to the migration';
    op.compensations.push('move the allocation back to the instance', this.revertAllocation);
    await scheduler.moveAllocations({ from: instanceId, to: migrationId });
  }

  /** The scheduler's hosts, then one placement attempt per host until one prepared the resize. */
  private async placeDestination(): Promise<Placed> {
    const { op, plan, req, source, migrationId, instanceId } = this;
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
      throw this.exhausted(err, hosts);
    });
    await this.setMigrationStatus('migrating', ['pre-migrating'], dest);
    return { dest, attempt, zone: hostZones[dest] ?? null };
  }

  /** On the source: the clean power-off and the disk transfer; the instance's host is then the destination. */
  private async transferDisk({ dest, attempt }: Placed): Promise<void> {
    const { op, plan, req, source, migrationId, instanceId } = this;
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
        await this.revertAllocation();
        try {
          this.restoredPower = await this.restoreSource(op, this.powerOn && !this.errorsOnSource(failure), attempt);
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
    await this.setMigrationStatus('post-migrating', ['migrating']);
    // NOTE(nova): resize_instance switches the instance's host to the destination once the disk has moved.
    await advance(op, Task.ResizeMigrated, `disk transferred to ${dest}`, {
      host: dest,
      powerState: PowerState.Shutdown,
    });
  }

  /** On the destination: the guest with the new flavor; the instance is then resized (VERIFY_RESIZE). */
  private async finishOnDestination({ dest, attempt, zone }: Placed): Promise<Moved> {
    const { op, plan, req, migrationId, instanceId } = this;
    // NOTE(nova): finish_resize applies the new flavor, then the driver's finish_migration.
    const { powerState } = await runStep(op, {
      event: 'compute_finish_resize',
      label: `finishing the resize on ${dest}`,
      taskState: Task.ResizeFinish,
      patch: flavorPatch(plan.newFlavor),
      host: dest,
      compute: dest,
      attempt,
      undo: () => this.destroyTarget(op, dest, attempt),
      run: () =>
        computeOn(dest, req.timeouts).long.finishResize({
          instanceId,
          migrationId,
          name: op.before.name,
          newFlavor: plan.newFlavor,
          image: plan.image,
          powerOn: this.powerOn,
        }),
    }).catch((err: unknown) => {
      throw this.errorsOut(err, 'compute_finish_resize') ? new FailedOnDestination(err, dest) : err;
    });
    await this.setMigrationStatus('finished', ['post-migrating']);
    const instance = await completeOperation(op, {
      vmState: VmState.Resized,
      powerState,
      availabilityZone: zone ?? op.before.availabilityZone,
    });
    return { dest, attempt, instance };
  }

  /**
   * Ends a move that failed or was cancelled before VERIFY_RESIZE (a cancellation is rethrown): its undos
   * run (last step first) and the instance is back on its source as it was, with the fault, the migration
   * `error`; in ERROR there when the source's disk transfer failed (Nova's); in ERROR on the destination
   * when its finish failed (no undo: Nova's finish_resize failure); in ERROR with no allocation left when
   * the source cannot take the instance back. Runs in a non-cancellable scope.
   */
  async fail(err: unknown): Promise<never> {
    const { op } = this;
    if (err instanceof FailedOnDestination) return this.errorOnDestination(err);
    op.progress.step = 'rolling back to the source';
    return rollBackAndFail(op, err, () => this.restoredPatch(err)).catch((e: unknown) => {
      if (e instanceof SourceNotRestored) return this.errorOut(op, err, e.failure);
      throw e;
    });
  }

  /** The instance once the move's undos ran: as it was on its source, or in ERROR there (Nova's). */
  private restoredPatch(failure: unknown): InstancePatch {
    const patch = this.restorePatch(this.restoredPower ?? this.op.before.powerState);
    return this.errorsOnSource(failure) ? { ...patch, vmState: VmState.Error } : patch;
  }

  /**
   * Whether a failed step ends the instance in ERROR as Nova's does (_error_out_instance_on_exception):
   * the step `event` failed on its host with a MigrationError (not a cancellation, not a host that did not
   * answer, not a rollback-type error such as a disk that cannot shrink: Nova's InstanceFaultRollback).
   */
  private errorsOut(failure: unknown, event: string): boolean {
    // The step that failed (the undos ran since may have added steps of their own that succeeded).
    const failed = [...this.op.journal.entries].reverse().find((e) => e.status === 'failed');
    if (failed?.event !== event) return false;
    if (failureType(failure) !== FailureType.MigrationError || rollsBack(failure)) return false;
    return patched(PATCH_RESIZE_ERROR);
  }

  private errorsOnSource(failure: unknown): boolean {
    return this.errorsOut(failure, 'compute_resize_instance');
  }

  /**
   * NOTE(nova): a failed finish_resize leaves the instance in ERROR on its destination (a hard reboot
   * recovers it there) with the new flavor and its allocation there, and deletes the migration's
   * allocation on the source (_delete_allocation_after_move), the migration `error`. Nova leaves the
   * source's `_resize` files behind; here the source's moved-aside guest is deleted as well (nothing holds
   * resources for it any more), a best effort on a host that may not answer.
   */
  private async errorOnDestination({ failure, dest }: FailedOnDestination): Promise<never> {
    const { op, instanceId, migrationId, source } = this;
    op.progress.step = `the finish failed on ${dest}: the instance in error there`;
    await scheduler.releaseAllocations({ consumerId: migrationId });
    await computeOn(source, this.req.timeouts)
      .cleanup.confirmResize({ instanceId, migrationId })
      .catch((err: unknown) =>
        log.warn('could not delete the moved-aside guest on the source', { host: source, error: failureMessage(err) })
      );
    await this.markMigrationFailed();
    return failOperation(op, failure, { vmState: VmState.Error, host: dest });
  }

  /**
   * NOTE(nova): the API refuses a confirm while the source's compute service is down (ServiceUnavailable,
   * 409): a typed refusal, nothing changed; the resize still awaits its decision. Versioned.
   */
  async checkSourceUp(): Promise<void> {
    if (!patched(PATCH_CONFIRM_SOURCE_UP)) return;
    const state = await scheduler.isHostUp({ host: this.source });
    if (state.up) return;
    throw typedFailure(
      FailureType.InstanceInvalidState,
      `Cannot 'confirmResize' instance ${this.instanceId}: the compute service of its source host ${this.source} is down (${state.reason}). Service is unavailable at this time.`
    );
  }

  /** confirmResize (user or automatic): the source guest goes and the migration's allocation is freed. */
  // NOTE(nova): an automatic confirm or a delete's confirm while the source is down fails
  // ComputeHostUnavailable (the instance stays on its destination with the fault; the source's
  // reconcileHost removes the aside guest); a user's confirm is refused first (checkSourceUp).
  async confirm({ instance: resized, attempt }: Moved, automatic: boolean): Promise<ResizeOutcome> {
    const { instanceId, migrationId, source, req } = this;
    const c = withKernel(await beginOperation({ instanceId, transition: 'confirmResize', operation: 'resizeMigrate' }));
    c.progress.step = automatic ? 'confirming automatically (confirm window over)' : 'confirming';
    // NOTE(nova): confirm leaves the instance stopped when its guest is shut down, else active.
    const vmState = resized.powerState === PowerState.Shutdown ? VmState.Stopped : VmState.Active;
    try {
      await this.setMigrationStatus('confirming', ['finished']);
      await runStep(c, {
        event: 'compute_confirm_resize',
        label: c.progress.step,
        host: source,
        compute: source,
        attempt,
        run: () => computeOn(source, req.timeouts).short.confirmResize({ instanceId, migrationId }),
      });
    } catch (err) {
      // NOTE(nova): the migration's allocation is deleted even when the confirm fails
      // (_delete_allocation_after_move); the instance lives on, on its destination.
      await scheduler.releaseAllocations({ consumerId: migrationId });
      await this.markMigrationFailed();
      return failOperation(c, err, { vmState, powerState: resized.powerState });
    }
    await scheduler.releaseAllocations({ consumerId: migrationId });
    const migration = await this.setMigrationStatus('confirmed', ['confirming']);
    const instance = await completeOperation(c, { vmState });
    return { decision: 'confirmed', automatic, instance, migration };
  }

  /** revertResize: the destination guest goes, the instance is back on its source as it was. */
  async revert({ dest, attempt }: Moved, automatic: boolean): Promise<ResizeOutcome> {
    const { instanceId } = this;
    const r = withKernel(await beginOperation({ instanceId, transition: 'revertResize', operation: 'resizeMigrate' }));
    r.progress.step = 'reverting';
    let powerState: PowerStateType;
    try {
      await this.setMigrationStatus('reverting', ['finished']);
      await this.destroyTarget(r, dest, attempt);
      // NOTE(nova): finish_revert_resize moves the migration's allocation back to the instance, which
      // replaces the instance's allocation on the destination.
      await this.revertAllocation();
      powerState = await this.restoreSource(r, this.powerOn, attempt);
    } catch (err) {
      return this.errorOut(r, err, err);
    }
    const migration = await this.setMigrationStatus('reverted', ['reverting']);
    const instance = await completeOperation(r, this.restorePatch(powerState));
    return { decision: 'reverted', automatic, instance, migration };
  }

  /** The failure of the placement: every destination failing its prep is MaxRetriesExceeded. */
  private exhausted(err: unknown, hosts: string[]): unknown {
    if (isCancellation(err) || !isFailureOfType(err, FailureType.Rescheduled)) return err;
    const tried = this.op.progress.hostsTried.length > 0 ? this.op.progress.hostsTried : hosts;
    return typedFailure(
      FailureType.MaxRetriesExceeded,
      `Exceeded maximum number of retries. Exhausted all hosts available for retrying resize failures for instance ${this.instanceId}. Hosts tried: ${tried.join(', ')}.`,
      { instanceId: this.instanceId, hostsTried: tried }
    );
  }
}
