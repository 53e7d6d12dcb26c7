/** One resize or cold migration on the kernel: the move, its rollback (the compensation stack), confirm and revert. */
import { executeChild, isCancellation, log, patched, uuid4 } from '@temporalio/workflow';

import type { SelectDestinationsResult } from '../../activities/scheduler';
import type { Flavor } from '../../domain/catalogue';
import { FailureType } from '../../domain/errors';
import type { InstancePatch, InstanceRecord, PowerState as PowerStateType } from '../../domain/instance';
import type { MigrationPlan, MigrationRecord, ResizeMigrationStatus } from '../../domain/migration';
import { PowerState, TaskState as Task, VmState } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import type { ComputeTimeoutsInput, ResizeMigrateRequest } from '../../domain/schemas';
import { placementAttemptRetry } from '../../shared/activity-options';
import type { ResizeOutcome } from '../../shared/messages';
import { workflowIds } from '../../shared/task-queues';
import { failureMessage, failureType, isFailureOfType, typedFailure } from '../lib/failures';
import type { KernelOperation } from '../lib/kernel';
import { once, runStep, withKernel } from '../lib/kernel';
import type { Operation } from '../lib/operation';
import { advance, beginOperation, completeOperation, failOperation } from '../lib/operation';
import { computeOn, conductor, scheduler } from '../lib/proxies';
import { PATCH_ONE_PLACEMENT_ATTEMPT, placementAttempt } from '../placement-attempt';
import { ABORT_TYPES, resizeAttempt } from './attempt';

/** One resize or cold migration of one instance: the move, its rollback, the confirm and the revert. */
export class ResizeRun {
  readonly migrationId = uuid4();
  private readonly instanceId: string;
  private dest?: string;
  /** The placement attempt (child workflow run) that prepared the destination. */
  private destAttempt = 1;
  private hosts: string[] = [];
  private hostZones: Record<string, string> = {};
  private resized?: InstanceRecord;
  /** The power state the source guest was restored to by a rollback. */
  private restoredPower?: PowerStateType;
  /**
   * NOTE(nova): revert_allocation_for_migration; it replaces whatever the instance holds (the claim on the
   * destination), and does nothing when the allocation never moved. Once per run, whoever needs it first.
   */
  private readonly revertAllocation = once(async () => {
    await scheduler.moveAllocations({ from: this.migrationId, to: this.instanceId });
  });

  constructor(
    private readonly req: ResizeMigrateRequest,
    private readonly op: KernelOperation,
    private readonly plan: MigrationPlan,
    private readonly source: string
  ) {
    this.instanceId = op.instanceId;
  }

  /** NOTE(nova): finish_migration(power_on = old_vm_state != STOPPED): a stopped instance stays stopped. */
  private get powerOn(): boolean {
    return this.op.before.vmState !== VmState.Stopped;
  }

  /** Everything up to VERIFY_RESIZE; any failure leaves the rollback to the caller. */
  async move(): Promise<InstanceRecord> {
    const { op, plan, req, source, migrationId, instanceId } = this;
    // Each undo is pushed before its step, and is safe when the step never applied.
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

    const { hosts, resources } = await this.selectDestinations();
    op.progress.step = `preparing the resize on ${hosts[0] ?? '?'}`;
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
    };
    const child = {
      workflowId: workflowIds.placementAttempt(instanceId, 'resize'),
      staticSummary: `place the resize of ${instanceId} from ${source} (${plan.oldFlavor.name} to ${plan.newFlavor.name})`,
      retry: placementAttemptRetry(hosts.length, ABORT_TYPES),
    };
    // Versioned: resizes started before the one placement-attempt child keep their resizeAttempt child.
    const { host: dest, attempt } = patched(PATCH_ONE_PLACEMENT_ATTEMPT)
      ? await executeChild(placementAttempt, { ...child, args: [{ kind: 'resize', ...prep }] })
      : await executeChild(resizeAttempt, { ...child, args: [prep] });
    this.dest = dest;
    this.destAttempt = attempt;
    await this.setMigrationStatus('migrating', ['pre-migrating'], dest);

    await runStep(op, {
      event: 'compute_resize_instance',
      label: `powering off and transferring the disk on ${source}`,
      taskState: Task.ResizeMigrating,
      host: source,
      compute: source,
      attempt,
      // The source guest back in place needs its allocation back first (Nova's finish_revert_resize).
      undo: async () => {
        await this.revertAllocation();
        try {
          this.restoredPower = await this.restoreSource(op);
        } catch (cause) {
          throw new SourceNotRestored(cause);
        }
      },
      run: () =>
        resizeComputeOn(source, req.timeouts).move.resizeInstance({
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

    // NOTE(nova): finish_resize applies the new flavor, then the driver's finish_migration.
    const { powerState } = await runStep(op, {
      event: 'compute_finish_resize',
      label: `finishing the resize on ${dest}`,
      taskState: Task.ResizeFinish,
      patch: flavorPatch(plan.newFlavor),
      host: dest,
      compute: dest,
      attempt,
      undo: () => this.destroyTarget(op, dest),
      run: () =>
        resizeComputeOn(dest, req.timeouts).move.finishResize({
          instanceId,
          migrationId,
          name: op.before.name,
          newFlavor: plan.newFlavor,
          image: plan.image,
          powerOn: this.powerOn,
        }),
    });
    await this.setMigrationStatus('finished', ['post-migrating']);
    this.resized = await completeOperation(op, {
      vmState: VmState.Resized,
      powerState,
      availabilityZone: this.hostZones[dest] ?? op.before.availabilityZone,
    });
    return this.resized;
  }

  /** Nova's select_destinations for the move: the new flavor, the current host excluded unless allowed. */
  private async selectDestinations(): Promise<{ hosts: string[]; resources: Resources }> {
    const { op, plan, req, source, instanceId } = this;
    let selected: SelectDestinationsResult | undefined;
    await runStep(op, {
      event: 'conductor_migrate_server',
      label: 'selecting destinations',
      host: source,
      attempt: 0,
      run: async () => {
        selected = await scheduler.selectDestinations({
          instanceIds: [instanceId],
          flavor: plan.newFlavor,
          image: plan.image,
          // The instance stays in its availability zone (the zone it was booted into is not kept apart).
          availabilityZone: op.before.availabilityZone ?? undefined,
          schedulerHints: op.before.serverGroup ? { group: op.before.serverGroup } : {},
          // NOTE(nova): no late server-group check on a resize destination (prep_resize's); the filters decide.
          // NOTE(nova): the API adds the instance's host to ignore_hosts unless allow_resize_to_same_host.
          ignoreHosts: req.allowSameHost ? [] : [source],
          requestedHost: req.host,
          // NOTE(nova): a targeted cold migration (a requested host) is never rescheduled elsewhere.
          maxAttempts: req.host ? 1 : req.maxAttempts,
        });
      },
    });
    const hosts = selected?.selections[0]?.hosts ?? [];
    if (!selected || hosts.length === 0)
      throw typedFailure(FailureType.NoValidHost, `No valid host was found for the move of instance ${instanceId}.`);
    this.hosts = hosts;
    this.hostZones = selected.hostZones;
    return { hosts, resources: selected.resources };
  }

  /**
   * Undoes a move that failed or was cancelled before VERIFY_RESIZE, then fails the operation (a
   * cancellation is rethrown). Back on the source where it can; else error with no allocation left.
   * Runs in a non-cancellable scope; every step is idempotent and safe when its forward step never ran.
   */
  // NOTE(nova): a failed resize_instance / finish_resize is ERROR in Nova; here the resize rolls back (old
  // state, the fault recorded, the migration error), ERROR only when the source guest cannot be restored.
  async rollBack(err: unknown): Promise<never> {
    const { op } = this;
    const failure = this.failureOf(err);
    op.progress.step = 'rolling back to the source';
    try {
      await op.compensations.rollBack(failure);
    } catch (e) {
      if (e instanceof SourceNotRestored) return this.errorOut(op, failure, e.failure);
      throw e;
    }
    return failOperation(op, failure, this.restorePatch(this.restoredPower ?? op.before.powerState));
  }

  /** confirmResize (user or automatic): the source guest goes and the migration's allocation is freed. */
  // NOTE(nova): Nova refuses a confirm while the source is down; here it fails ComputeHostUnavailable (the
  // instance stays on its destination with the fault; the source's reconcileHost removes the aside guest).
  async confirm(automatic: boolean): Promise<ResizeOutcome> {
    const { instanceId, migrationId, source, req } = this;
    const resized = this.resizedRecord();
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
        attempt: this.destAttempt,
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
  async revert(automatic: boolean): Promise<ResizeOutcome> {
    const { instanceId } = this;
    const r = withKernel(await beginOperation({ instanceId, transition: 'revertResize', operation: 'resizeMigrate' }));
    r.progress.step = 'reverting';
    let powerState: PowerStateType;
    try {
      await this.setMigrationStatus('reverting', ['finished']);
      if (this.dest) await this.destroyTarget(r, this.dest);
      // NOTE(nova): finish_revert_resize moves the migration's allocation back to the instance, which
      // replaces the instance's allocation on the destination.
      await this.revertAllocation();
      powerState = await this.restoreSource(r);
    } catch (err) {
      return this.errorOut(r, err, err);
    }
    const migration = await this.setMigrationStatus('reverted', ['reverting']);
    const instance = await completeOperation(r, this.restorePatch(powerState));
    return { decision: 'reverted', automatic, instance, migration };
  }

  /**
   * Revert on the destination: destroys the guest the move made there. A destination that does not answer
   * keeps that (powered) guest until it is cleaned up by hand; the instance goes back to its source anyway.
   */
  private async destroyTarget(current: KernelOperation, dest: string): Promise<void> {
    const { instanceId, migrationId } = this;
    await runStep(current, {
      event: 'compute_revert_resize',
      label: `destroying the guest the move made on ${dest}`,
      host: dest,
      compute: dest,
      attempt: this.destAttempt,
      run: () => computeOn(dest, this.req.timeouts).cleanup.revertResize({ instanceId, migrationId }),
    }).catch((err: unknown) =>
      log.warn('could not destroy the guest on the destination', { host: dest, error: failureMessage(err) })
    );
  }

  /** finish_revert_resize on the source: the guest back in place, powered on if it was running. */
  private async restoreSource(current: KernelOperation): Promise<PowerStateType> {
    const { instanceId, migrationId, source } = this;
    const restored = await runStep(current, {
      event: 'compute_finish_revert_resize',
      label: `putting the guest back in place on ${source}`,
      host: source,
      compute: source,
      attempt: this.destAttempt,
      run: () =>
        computeOn(source, this.req.timeouts).short.finishRevertResize({
          instanceId,
          migrationId,
          powerOn: this.powerOn,
        }),
    });
    return restored.powerState;
  }

  /**
   * The instance cannot be put back on its source: it ends `error`, holding no allocation (neither as
   * itself nor through the migration), and the migration `error`.
   */
  private async errorOut(current: Operation, failure: unknown, cause: unknown): Promise<never> {
    const { instanceId, migrationId, source } = this;
    log.error('the instance could not be restored on its source', {
      instanceId,
      source,
      error: failureMessage(cause),
    });
    await scheduler.releaseAllocations({ consumerId: migrationId });
    await scheduler.releaseAllocations({ consumerId: instanceId });
    await this.markMigrationFailed();
    const reason =
      failure === cause
        ? failureMessage(cause)
        : `${failureMessage(failure)}; the instance could not be restored on ${source}: ${failureMessage(cause)}`;
    const typed = isCancellation(failure)
      ? failure
      : typedFailure(failureType(failure) ?? failureType(cause) ?? FailureType.MigrationError, reason);
    return failOperation(current, typed, { vmState: VmState.Error, host: source, ...flavorPatch(this.plan.oldFlavor) });
  }

  /** The instance as it was before the move: its vm state, source host, zone and old flavor. */
  private restorePatch(powerState: PowerStateType): InstancePatch {
    const { before } = this.op;
    return {
      vmState: before.vmState,
      powerState,
      host: this.source,
      availabilityZone: before.availabilityZone,
      ...flavorPatch(this.plan.oldFlavor),
    };
  }

  /** The failure the operation ends with: every destination failing its prep is MaxRetriesExceeded. */
  private failureOf(err: unknown): unknown {
    if (isCancellation(err) || !isFailureOfType(err, FailureType.Rescheduled)) return err;
    const tried = this.op.progress.hostsTried.length > 0 ? this.op.progress.hostsTried : this.hosts;
    return typedFailure(
      FailureType.MaxRetriesExceeded,
      `Exceeded maximum number of retries. Exhausted all hosts available for retrying resize failures for instance ${this.instanceId}. Hosts tried: ${tried.join(', ')}.`,
      { instanceId: this.instanceId, hostsTried: tried }
    );
  }

  /** Moves the migration record on, as a compare-and-swap from `expect`. */
  private async setMigrationStatus(
    status: ResizeMigrationStatus,
    expect: ResizeMigrationStatus[],
    destHost?: string
  ): Promise<MigrationRecord> {
    return conductor.updateMigration({ migrationId: this.migrationId, status, destHost, expectStatus: expect });
  }

  /** Marks the migration `error` (a rollback or a failed decision); a failure to do so is only logged. */
  private async markMigrationFailed(): Promise<void> {
    await conductor
      .updateMigration({ migrationId: this.migrationId, status: 'error' })
      .catch((err: unknown) =>
        log.warn('could not mark the migration failed', { migrationId: this.migrationId, error: failureMessage(err) })
      );
  }

  private resizedRecord(): InstanceRecord {
    if (!this.resized) throw typedFailure(FailureType.MigrationError, 'the resize has not finished');
    return this.resized;
  }
}

/** The source could not take the instance back during a rollback: the move ends in error instead. */
class SourceNotRestored extends Error {
  constructor(readonly failure: unknown) {
    super('the source could not take the instance back');
  }
}

/** The instance fields that follow its flavor. */
function flavorPatch(flavor: Flavor): InstancePatch {
  return { flavor: flavor.name, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb };
}

/**
 * Compute proxies for one host, plus `move`: the heartbeating steps of the move itself, whose cancellation
 * is waited for, so a rollback never races a disk transfer or a finish still running on the host.
 */
function resizeComputeOn(host: string, timeouts: ComputeTimeoutsInput) {
  const compute = computeOn(host, timeouts);
  return { ...compute, move: compute.long };
}
