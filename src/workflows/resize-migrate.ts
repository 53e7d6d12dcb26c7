/**
 * resizeMigrate: Nova's resize (a new flavor) and cold migration (the same flavor, optionally to a
 * requested host), made durable: ComputeTaskManager.migrate_server's MigrationTask plus the compute's
 * prep_resize, resize_instance, finish_resize, then confirm_resize or revert_resize.
 *
 * 1. The operation lock (resize_prep, from active or stopped; action `resize` or `migrate`), then the
 *    migration record (pre-migrating) and the instance's source allocation moved to the migration as
 *    consumer (Nova's replace_allocation_with_migration).
 * 2. selectDestinations with the new flavor, never the current host unless `allowSameHost`; the scheduler
 *    claims the destination for the instance. Each prep on a destination is one run of the `resizeAttempt`
 *    child workflow whose RetryPolicy.maximumAttempts is the reschedule budget (as for builds): run N uses
 *    host N, claims it when it is an alternate, and a reschedulable failure releases that claim and fails
 *    the run retryable. A requested host is never rescheduled elsewhere.
 * 3. On the source: clean power-off and the disk transfer (one heartbeating activity; resize_migrating →
 *    resize_migrated, the instance's host is now the destination). On the destination: the guest with the
 *    new flavor (resize_finish), running only if the instance was. The instance is then `resized`
 *    (VERIFY_RESIZE) and the migration `finished`.
 * 4. The workflow waits, on a durable timer, for the `confirmResize` or `revertResize` Update; nobody
 *    deciding within `confirmWindowSeconds` confirms it (0: wait indefinitely). Confirm (action
 *    `confirmResize`) deletes the source guest and frees the migration's allocation; revert (action
 *    `revertResize`) destroys the destination guest, moves the migration's allocation back to the
 *    instance and puts it back on its source with its old flavor, running if it was.
 *
 * Failures: a scheduling failure (NoValidHost, MaxRetriesExceeded when every destination failed its prep)
 * or any failure before VERIFY_RESIZE rolls back to the source in a non-cancellable scope: the destination
 * guest destroyed, the allocation moved back (which also drops the destination's claim), the source guest
 * back in place and powered on if it was; the instance is as it was, with a fault, the migration `error`.
 * Only when the source itself cannot take the instance back does it end `error`, and then with no
 * allocation at all (what the placement audit expects of an instance in error).
 *
 * Cancelling before VERIFY_RESIZE rolls back the same way; cancelling while the resize awaits its
 * confirmation reverts it (the workflow then ends cancelled); a confirm or revert under way completes.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  executeChild,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';

import type { SelectDestinationsResult } from '../activities/scheduler';
import type { Flavor, Image } from '../domain/catalogue';
import { FailureType } from '../domain/errors';
import type { InstancePatch, InstanceRecord, PowerState as PowerStateType } from '../domain/instance';
import type { MigrationPlan, MigrationRecord, ResizeMigrationStatus } from '../domain/migration';
import { PowerState, TaskState as Task, VmState } from '../domain/instance';
import type { Resources } from '../domain/resources';
import type { ComputeTimeoutsInput, ResizeMigrateInput, ResizeMigrateRequest } from '../domain/schemas';
import { ResizeMigrateInputSchema } from '../domain/schemas';
import { placementAttemptRetry } from '../shared/activity-options';
import type { OperationProgress, ResizeMigrateResult, ResizeOutcome } from '../shared/messages';
import {
  confirmResizeUpdate,
  getProgressQuery,
  placementProgressSignal,
  revertResizeUpdate,
  resizeResult,
} from '../shared/messages';
import { workflowIds } from '../shared/task-queues';
import { failureMessage, failureType, isFailureOfType, parseInput, timeoutType, typedFailure } from './lib/failures';
import { tagInstance } from './lib/instance-attributes';
import type { KernelOperation } from './lib/kernel';
import { once, runStep, withKernel } from './lib/kernel';
import type { Operation } from './lib/operation';
import { advance, beginOperation, completeOperation, failOperation } from './lib/operation';
import { computeOn, conductor, scheduler } from './lib/proxies';

/** Failure types that end a placement attempt at once: no other host can fix them. */
const ABORT_TYPES = [
  FailureType.MigrationError,
  FailureType.InvalidRequest,
  FailureType.InstanceNotFound,
  FailureType.InstanceInvalidState,
];

type Decision = ResizeOutcome['decision'];

/**
 * Resizes or cold-migrates one instance and returns its instance record, with how the resize ended under
 * `resize`: confirmed (by an Update or automatically after the confirm window) or reverted, and the
 * migration record. The Updates answer with the same outcome. Fails with a typed
 * failure and the instance as it was (with a fault): InvalidRequest, InstanceInvalidState,
 * InstanceNotFound, NoValidHost, MaxRetriesExceeded, MigrationError.
 */
export async function resizeMigrate(input: ResizeMigrateInput): Promise<ResizeMigrateResult> {
  const req = parseInput(ResizeMigrateInputSchema, input);
  const { instanceId } = req;
  // getProgress answers from the first workflow task on; beginOperation then installs the live progress.
  const checking: OperationProgress = {
    instanceId,
    operation: 'resizeMigrate',
    vmState: VmState.Building,
    taskState: null,
    powerState: PowerState.NoState,
    host: null,
    attempt: 0,
    step: 'checking the request',
    hostsTried: [],
  };
  setHandler(getProgressQuery, () => checking);
  const verification = new Verification(instanceId);
  setHandler(confirmResizeUpdate, () => verification.handle('confirmed'), {
    validator: () => verification.validate('confirmed'),
  });
  setHandler(revertResizeUpdate, () => verification.handle('reverted'), {
    validator: () => verification.validate('reverted'),
  });

  // NOTE(nova): the API checks the flavor before it changes anything: a bad request writes nothing.
  const planned = await conductor.planMigration({ instanceId, flavor: req.flavor }).catch((err: unknown) => {
    if (isCancellation(err)) throw err; // nothing was changed yet
    throw typedFailure(failureType(err) ?? FailureType.InvalidRequest, failureMessage(err));
  });
  Object.assign(checking, {
    vmState: planned.instance.vmState,
    taskState: planned.instance.taskState,
    powerState: planned.instance.powerState,
    host: planned.instance.host,
    step: 'taking the operation lock',
  });
  verification.progress = checking;
  // The lock is taken whole or not at all: a cancellation waits for the compare-and-swap to answer.
  const op = withKernel(
    await CancellationScope.nonCancellable(() =>
      beginOperation({
        instanceId,
        transition: planned.migrationType === 'resize' ? 'resize' : 'migrate',
        operation: 'resizeMigrate',
      })
    )
  );
  verification.progress = op.progress;
  setHandler(placementProgressSignal, (p) => {
    op.progress.attempt = p.attempt;
    op.progress.step = p.step;
    if (!op.progress.hostsTried.includes(p.host)) op.progress.hostsTried.push(p.host);
  });

  let run: ResizeRun;
  try {
    // Planned before the lock; planned again if the instance changed in between.
    const before = op.before;
    const unchanged =
      planned.instance.flavor === before.flavor &&
      planned.instance.host === before.host &&
      planned.instance.image === before.image;
    const plan = unchanged ? planned : await conductor.planMigration({ instanceId, flavor: req.flavor });
    if (before.host === null)
      throw typedFailure(
        FailureType.InstanceInvalidState,
        `Cannot 'resizeMigrate' instance ${instanceId} while it has no host`
      );
    run = new ResizeRun(req, op, plan, before.host);
  } catch (err) {
    return CancellationScope.nonCancellable(() => failOperation(op, err));
  }

  try {
    await run.move();
  } catch (err) {
    return CancellationScope.nonCancellable(() => run.rollBack(err));
  }

  // VERIFY_RESIZE: wait for a decision, or decide by ourselves when the window ends.
  verification.open();
  const windowSeconds = req.confirmWindowSeconds;
  op.progress.step =
    windowSeconds > 0
      ? `awaiting confirmResize or revertResize (confirmed automatically after ${windowSeconds} s)`
      : 'awaiting confirmResize or revertResize';
  let cancelled: Error | undefined;
  try {
    if (windowSeconds > 0) {
      const decided = await condition(() => verification.decision !== undefined, windowSeconds * 1000);
      // NOTE(nova): _poll_unconfirmed_resizes confirms resizes left unconfirmed past resize_confirm_window.
      if (!decided) verification.decide('confirmed', true);
    } else {
      await condition(() => verification.decision !== undefined);
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelling a resize that awaits its confirmation undoes it: the instance goes back as it was.
    cancelled = err instanceof Error ? err : new CancelledFailure('resizeMigrate cancelled');
    verification.decide('reverted', false);
  }

  // Once decided, the confirm or revert runs to its end whatever happens to the workflow.
  return CancellationScope.nonCancellable(async () => {
    const decision = verification.decision ?? { decision: 'confirmed' as const, automatic: true };
    let outcome: ResizeOutcome;
    try {
      outcome =
        decision.decision === 'confirmed'
          ? await run.confirm(decision.automatic)
          : await run.revert(decision.automatic);
    } catch (err) {
      verification.fail(err);
      await condition(allHandlersFinished);
      throw err;
    }
    verification.settle(outcome);
    await condition(allHandlersFinished);
    if (cancelled) throw cancelled;
    return resizeResult(outcome);
  });
}

/**
 * The decision of a resized instance, as the confirmResize / revertResize Updates see it. Validators
 * accept only while the resize awaits its confirmation, or a repeat of the decision already taken (which
 * then returns the same outcome and changes nothing).
 */
class Verification {
  decision?: { decision: Decision; automatic: boolean };
  /** The live progress of the operation, to name the instance's state in a rejection. */
  progress?: OperationProgress;
  private awaiting = false;
  private outcome?: ResizeOutcome;
  private failure?: ApplicationFailure;

  constructor(private readonly instanceId: string) {}

  validate(kind: Decision): void {
    const method = kind === 'confirmed' ? 'confirmResize' : 'revertResize';
    if (this.decision) {
      if (this.decision.decision === kind) return;
      throw typedFailure(
        FailureType.InstanceInvalidState,
        `Cannot '${method}' instance ${this.instanceId}: its resize was already ${this.decision.decision}`
      );
    }
    if (!this.awaiting) {
      const p = this.progress;
      const where = p ? ` while it is in vmState ${p.vmState} (taskState ${p.taskState ?? 'None'})` : '';
      throw typedFailure(
        FailureType.InstanceInvalidState,
        `Cannot '${method}' instance ${this.instanceId}${where}: no resize awaits confirmation`
      );
    }
  }

  /** The Update's body: takes the decision (unless one was taken) and returns its outcome once settled. */
  async handle(kind: Decision): Promise<ResizeOutcome> {
    this.decide(kind, false);
    // The caller gets the outcome even if the workflow is cancelled meanwhile (the decision still runs).
    await CancellationScope.nonCancellable(() =>
      condition(() => this.outcome !== undefined || this.failure !== undefined)
    );
    if (this.outcome) return this.outcome;
    throw this.failure ?? typedFailure(FailureType.MigrationError, 'the resize ended without an outcome');
  }

  decide(kind: Decision, automatic: boolean): void {
    this.decision ??= { decision: kind, automatic };
  }

  open(): void {
    this.awaiting = true;
  }

  settle(outcome: ResizeOutcome): void {
    this.outcome = outcome;
  }

  fail(err: unknown): void {
    // An Update handler may fail only with a TemporalFailure (anything else fails the workflow task).
    this.failure = isCancellation(err)
      ? typedFailure(FailureType.MigrationError, 'the resize was cancelled')
      : typedFailure(failureType(err) ?? FailureType.MigrationError, failureMessage(err));
  }
}

/** One resize or cold migration of one instance: the move, its rollback, the confirm and the revert. */
class ResizeRun {
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
    const { host: dest, attempt } = await executeChild(resizeAttempt, {
      workflowId: workflowIds.placementAttempt(instanceId, 'resize'),
      args: [
        {
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
        },
      ],
      retry: placementAttemptRetry(hosts.length, ABORT_TYPES),
    });
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

export interface ResizeAttemptInput {
  instanceId: string;
  migrationId: string;
  actionId: string;
  /** The chosen host then the alternates; run N of this workflow uses hosts[N-1]. */
  hosts: string[];
  sourceHost: string;
  oldFlavor: Flavor;
  newFlavor: Flavor;
  image: Image;
  /** What the instance claims on a destination (the new flavor's resources). */
  resources: Resources;
  timeouts: ComputeTimeoutsInput;
}

/**
 * One placement attempt of a resize on one destination (Nova's prep_resize there). The first host was
 * claimed by the scheduler; an alternate is claimed here. A reschedulable failure (prep failed, alternate
 * full, host silent) releases this host's claim and fails the run as retryable `Rescheduled`, so the
 * server starts the next run on the next alternate; an abort (MigrationError …) fails it non-retryable.
 */
export async function resizeAttempt(input: ResizeAttemptInput): Promise<{ host: string; attempt: number }> {
  const { attempt, parent } = workflowInfo();
  const { instanceId, migrationId, actionId } = input;
  const assigned = input.hosts[attempt - 1];
  if (!assigned)
    throw typedFailure(
      FailureType.MaxRetriesExceeded,
      `Exceeded maximum number of retries. Exhausted all hosts available for retrying resize failures for instance ${instanceId}. Hosts tried: ${input.hosts.join(', ')}.`
    );
  const host: string = assigned;
  tagInstance({ instanceId, host });
  const parentHandle = parent ? getExternalWorkflowHandle(parent.workflowId, parent.runId) : undefined;
  const compute = computeOn(host, input.timeouts);
  let claimed = attempt === 1;

  /** One step of this attempt: tell the parent, run it, record its event for this attempt. */
  async function step(event: string, run: () => Promise<unknown>): Promise<void> {
    const startedAt = new Date().toISOString();
    await parentHandle?.signal(placementProgressSignal, {
      attempt,
      host,
      taskState: Task.ResizePrep,
      step: `${event} on ${host}`,
    });
    const base = { actionId, event, attempt, host, startedAt };
    try {
      await run();
      await conductor.recordEvent({ ...base, result: 'Success', finishedAt: new Date().toISOString() });
    } catch (err) {
      const details = failureMessage(err);
      await CancellationScope.nonCancellable(() =>
        conductor.recordEvent({ ...base, result: 'Error', details, finishedAt: new Date().toISOString() })
      );
      throw err;
    }
  }

  try {
    if (!claimed) {
      // Set first: a claim that applied but reported a failure is released below all the same.
      claimed = true;
      await step('conductor_claim_alternate', () =>
        scheduler.claimResources({ consumerId: instanceId, host, resources: input.resources })
      );
    }
    await step('compute_prep_resize', () =>
      compute.short.prepResize({
        instanceId,
        migrationId,
        sourceHost: input.sourceHost,
        oldFlavor: input.oldFlavor,
        newFlavor: input.newFlavor,
        image: input.image,
      })
    );
    return { host, attempt };
  } catch (err) {
    // NOTE(nova): prep_resize reverts the allocation before it reschedules.
    await CancellationScope.nonCancellable(async () => {
      if (claimed) await scheduler.releaseAllocations({ consumerId: instanceId, host });
    });
    if (isCancellation(err)) throw err;
    const message = failureMessage(err);
    if (isFailureOfType(err, ...ABORT_TYPES))
      throw typedFailure(failureType(err) ?? FailureType.MigrationError, message);
    const timeout = timeoutType(err);
    const reason = timeout ? `compute host ${host} did not respond (${timeout} timeout)` : message;
    throw ApplicationFailure.create({
      type: FailureType.Rescheduled,
      message: `Resize of instance ${instanceId} on ${host} failed (attempt ${attempt} of ${input.hosts.length}): ${reason}`,
      nonRetryable: false,
      details: [{ host, attempt }],
    });
  }
}
