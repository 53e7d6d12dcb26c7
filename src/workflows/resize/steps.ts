/**
 * What a resize's move, its failure and its decisions share: the move itself (its migration, its source,
 * its plan), the migration record's status, the instance's allocation moved back, and the compute steps
 * that put the guest back on its source or remove it from the destination.
 */
import { isCancellation, log } from '@temporalio/workflow';

import type { Flavor } from '../../domain/catalogue';
import { FailureType } from '../../domain/errors';
import type { InstancePatch, PowerState as PowerStateType } from '../../domain/instance';
import { VmState } from '../../domain/instance';
import type { MigrationPlan, MigrationRecord, ResizeMigrationStatus } from '../../domain/migration';
import type { ResizeMigrateRequest } from '../../domain/schemas';
import { applicationCause, failureMessage, failureSaying, failureType } from '../lib/failures';
import type { KernelOperation } from '../lib/kernel';
import { once, runStep } from '../lib/kernel';
import { computeOn, conductor, scheduler } from '../lib/proxies';

/** One resize or cold migration of one instance, as its steps, undos and decisions see it. */
export interface ResizeMove {
  readonly req: ResizeMigrateRequest;
  /** The move's operation (the lock, the instance as it found it, the live progress). */
  readonly op: KernelOperation;
  readonly plan: MigrationPlan;
  readonly instanceId: string;
  readonly migrationId: string;
  /** The instance's host before the move. */
  readonly source: string;
  /** NOTE(nova): finish_migration(power_on = old_vm_state != STOPPED): a stopped instance stays stopped. */
  readonly powerOn: boolean;
  /**
   * NOTE(nova): revert_allocation_for_migration; it replaces whatever the instance holds (the claim on the
   * destination), and does nothing when the allocation never moved. Once per move, whoever needs it first.
   */
  readonly revertAllocation: () => Promise<void>;
}

/** The move of `op`'s instance from `source` with `plan`. */
export function resizeMove(
  req: ResizeMigrateRequest,
  op: KernelOperation,
  plan: MigrationPlan,
  source: string,
  migrationId: string
): ResizeMove {
  const { instanceId } = op;
  return {
    req,
    op,
    plan,
    instanceId,
    migrationId,
    source,
    powerOn: op.before.vmState !== VmState.Stopped,
    revertAllocation: once(async () => {
      await scheduler.moveAllocations({ from: migrationId, to: instanceId });
    }),
  };
}

/**
 * Revert on the destination: destroys the guest the move made there. A destination that does not answer
 * keeps that (powered) guest until it is cleaned up by hand; the instance goes back to its source anyway.
 */
export async function destroyTarget(
  move: ResizeMove,
  current: KernelOperation,
  dest: string,
  attempt: number
): Promise<void> {
  const { instanceId, migrationId } = move;
  await runStep(current, {
    event: 'compute_revert_resize',
    label: `destroying the guest the move made on ${dest}`,
    host: dest,
    compute: dest,
    attempt,
    run: () => computeOn(dest, move.req.timeouts).cleanup.revertResize({ instanceId, migrationId }),
  }).catch((err: unknown) =>
    log.warn('could not destroy the guest on the destination', { host: dest, error: failureMessage(err) })
  );
}

/** finish_revert_resize on the source: the guest back in place, powered on when asked. */
export async function restoreSource(
  move: ResizeMove,
  current: KernelOperation,
  powerOn: boolean,
  attempt: number
): Promise<PowerStateType> {
  const { instanceId, migrationId, source } = move;
  const restored = await runStep(current, {
    event: 'compute_finish_revert_resize',
    label: `putting the guest back in place on ${source}`,
    host: source,
    compute: source,
    attempt,
    run: () => computeOn(source, move.req.timeouts).short.finishRevertResize({ instanceId, migrationId, powerOn }),
  });
  return restored.powerState;
}

/**
 * The instance cannot be put back on its source: it holds no allocation any more (neither as itself nor
 * through the migration), the migration is `error`, and it ends `error` on its source (the state
 * returned) with `sourceLostFailure`.
 */
export async function sourceLost(move: ResizeMove, cause: unknown): Promise<InstancePatch> {
  const { instanceId, migrationId, source } = move;
  log.error('the instance could not be restored on its source', { instanceId, source, error: failureMessage(cause) });
  await scheduler.releaseAllocations({ consumerId: migrationId });
  await scheduler.releaseAllocations({ consumerId: instanceId });
  await markMigrationFailed(move);
  return { vmState: VmState.Error, host: source, ...flavorPatch(move.plan.oldFlavor) };
}

/** The failure of a move or a revert whose instance its source could not take back (see sourceLost). */
export function sourceLostFailure(move: ResizeMove, failure: unknown, cause: unknown): unknown {
  if (isCancellation(failure)) return failure;
  const reason =
    failure === cause
      ? failureMessage(cause)
      : `${failureMessage(failure)}; the instance could not be restored on ${move.source}: ${failureMessage(cause)}`;
  return failureSaying(failure, reason, failureType(cause) ?? FailureType.MigrationError);
}

/** The instance as it was before the move: its vm state, source host, zone and old flavor. */
export function restorePatch(move: ResizeMove, powerState: PowerStateType): InstancePatch {
  const { before } = move.op;
  return {
    vmState: before.vmState,
    powerState,
    host: move.source,
    availabilityZone: before.availabilityZone,
    ...flavorPatch(move.plan.oldFlavor),
  };
}

/** Moves the migration record on, as a compare-and-swap from `expect`. */
export function setMigrationStatus(
  move: ResizeMove,
  status: ResizeMigrationStatus,
  expect: ResizeMigrationStatus[],
  destHost?: string
): Promise<MigrationRecord> {
  return conductor.updateMigration({ migrationId: move.migrationId, status, destHost, expectStatus: expect });
}

/** Marks the migration `error` (a rollback or a failed decision); a failure to do so is only logged. */
export async function markMigrationFailed({ migrationId }: ResizeMove): Promise<void> {
  await conductor
    .updateMigration({ migrationId, status: 'error' })
    .catch((err: unknown) =>
      log.warn('could not mark the migration failed', { migrationId, error: failureMessage(err) })
    );
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
