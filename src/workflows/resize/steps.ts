/**
 * What a resize's move, its failure and its decisions share: the migration record, the instance's
 * allocation moved back, and the compute steps that put the guest back on its source or remove it from
 * the destination.
 */
import { isCancellation, log, uuid4 } from '@temporalio/workflow';

import type { Flavor } from '../../domain/catalogue';
import { FailureType } from '../../domain/errors';
import type { InstancePatch, PowerState as PowerStateType } from '../../domain/instance';
import { VmState } from '../../domain/instance';
import type { MigrationPlan, MigrationRecord, ResizeMigrationStatus } from '../../domain/migration';
import type { ResizeMigrateRequest } from '../../domain/schemas';
import { applicationCause, failureMessage, failureType, typedFailure } from '../lib/failures';
import type { KernelOperation } from '../lib/kernel';
import { once, runStep } from '../lib/kernel';
import type { Operation } from '../lib/operation';
import { failOperation } from '../lib/operation';
import { computeOn, conductor, scheduler } from '../lib/proxies';

/** One move's migration and the steps on its source and destination that its undos and decisions use. */
export abstract class MigrationSteps {
  readonly migrationId = uuid4();
  protected readonly instanceId: string;
  /**
   * NOTE(nova): revert_allocation_for_migration; it replaces whatever the instance holds (the claim on the
   * destination), and does nothing when the allocation never moved. Once per run, whoever needs it first.
   */
  protected readonly revertAllocation = once(async () => {
    await scheduler.moveAllocations({ from: this.migrationId, to: this.instanceId });
  });

  constructor(
    protected readonly req: ResizeMigrateRequest,
    protected readonly op: KernelOperation,
    protected readonly plan: MigrationPlan,
    protected readonly source: string
  ) {
    this.instanceId = op.instanceId;
  }

  /** NOTE(nova): finish_migration(power_on = old_vm_state != STOPPED): a stopped instance stays stopped. */
  protected get powerOn(): boolean {
    return this.op.before.vmState !== VmState.Stopped;
  }

  /**
   * Revert on the destination: destroys the guest the move made there. A destination that does not answer
   * keeps that (powered) guest until it is cleaned up by hand; the instance goes back to its source anyway.
   */
  protected async destroyTarget(current: KernelOperation, dest: string, attempt: number): Promise<void> {
    const { instanceId, migrationId } = this;
    await runStep(current, {
      event: 'compute_revert_resize',
      label: `destroying the guest the move made on ${dest}`,
      host: dest,
      compute: dest,
      attempt,
      run: () => computeOn(dest, this.req.timeouts).cleanup.revertResize({ instanceId, migrationId }),
    }).catch((err: unknown) =>
      log.warn('could not destroy the guest on the destination', { host: dest, error: failureMessage(err) })
    );
  }

  /** finish_revert_resize on the source: the guest back in place, powered on when asked. */
  protected async restoreSource(current: KernelOperation, powerOn: boolean, attempt: number): Promise<PowerStateType> {
    const { instanceId, migrationId, source } = this;
    const restored = await runStep(current, {
      event: 'compute_finish_revert_resize',
      label: `putting the guest back in place on ${source}`,
      host: source,
      compute: source,
      attempt,
      run: () => computeOn(source, this.req.timeouts).short.finishRevertResize({ instanceId, migrationId, powerOn }),
    });
    return restored.powerState;
  }

  /**
   * The instance cannot be put back on its source: it ends `error`, holding no allocation (neither as
   * itself nor through the migration), and the migration `error`.
   */
  protected async errorOut(current: Operation, failure: unknown, cause: unknown): Promise<never> {
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
  protected restorePatch(powerState: PowerStateType): InstancePatch {
    const { before } = this.op;
    return {
      vmState: before.vmState,
      powerState,
      host: this.source,
      availabilityZone: before.availabilityZone,
      ...flavorPatch(this.plan.oldFlavor),
    };
  }

  /** Moves the migration record on, as a compare-and-swap from `expect`. */
  protected async setMigrationStatus(
    status: ResizeMigrationStatus,
    expect: ResizeMigrationStatus[],
    destHost?: string
  ): Promise<MigrationRecord> {
    return conductor.updateMigration({ migrationId: this.migrationId, status, destHost, expectStatus: expect });
  }

  /** Marks the migration `error` (a rollback or a failed decision); a failure to do so is only logged. */
  protected async markMigrationFailed(): Promise<void> {
    await conductor
      .updateMigration({ migrationId: this.migrationId, status: 'error' })
      .catch((err: unknown) =>
        log.warn('could not mark the migration failed', { migrationId: this.migrationId, error: failureMessage(err) })
      );
  }
}

/** The source could not take the instance back during a rollback: the move ends in error instead. */
export class SourceNotRestored extends Error {
  constructor(readonly failure: unknown) {
    super('the source could not take the instance back');
  }
}

/** The finish failed on the destination the way Nova leaves in ERROR there: no undo runs. */
export class FailedOnDestination extends Error {
  constructor(
    readonly failure: unknown,
    readonly dest: string
  ) {
    super(failureMessage(failure));
  }
}

/** A MigrationError the compute marked as leaving the instance as it was (Nova's InstanceFaultRollback). */
export function rollsBack(failure: unknown): boolean {
  const details: unknown = applicationCause(failure)?.details?.[0];
  return typeof details === 'object' && details !== null && (details as { rollback?: unknown }).rollback === true;
}

/** The instance fields that follow its flavor. */
export function flavorPatch(flavor: Flavor): InstancePatch {
  return { flavor: flavor.name, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb };
}
