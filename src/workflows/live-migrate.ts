/**
 * liveMigrate: Nova's live migration (ComputeTaskManager.live_migrate_instance's LiveMigrationTask plus
 * the computes' pre_live_migration, live_migration, post_live_migration and their rollback), made
 * durable. From `active` (the guest running, or paused) only.
 *
 * 1. Checks that write nothing: the instance has a host, its guest runs, a requested host is not its own,
 *    the source is up. Then the operation lock (task state `migrating`, action `live-migration`), the
 *    migration record (`live-migration`, accepted) and the source allocation moved to the migration.
 * 2. The destination: selectDestinations (the source excluded; a requested host filtered unless `force`),
 *    then each candidate as one run of the placementAttempt child (`kind: live`): claim an alternate, the
 *    source and destination pre-checks on the hosts' queues. A failed pre-check moves to the next
 *    alternate, at most `migrateMaxRetries` times (-1, the default: until the hosts run out); running out
 *    fails MigrationPreCheckError.
 * 3. pre_live_migration on the destination (preparing), then the copy (running): the source copies the
 *    memory in rounds (one heartbeating activity, its progress in its heartbeat details) while the
 *    destination receives (a heartbeating activity too, so a destination that dies mid-copy is a
 *    heartbeat timeout). Updates: `forceComplete` pauses the guest so the copy converges;
 *    `abortLiveMigration` stops it. The guest runs on the source until the switch-over pause, whose
 *    length is the migration's downtime.
 * 4. After the switch-over (not cancellable): post_live_migration_at_destination (the guest runs there),
 *    post_live_migration on the source (its guest removed), the migration's source allocation freed, the
 *    migration completed, the instance `active` on the destination.
 *
 * Failure, abort or cancellation before the switch-over rolls back: the destination's guest and port
 * removed, the source guest resumed, the allocation back on the source only; the instance `active` on the
 * source, with a fault; the migration `error` (or `cancelled` when aborted). A failure after it leaves the
 * instance `error` on the destination, holding its allocation there only, with no guest running anywhere
 * (the source's stays paused for the reconciler): never two running guests.
 */
import type { ApplicationFailure } from '@temporalio/workflow';
import {
  CancellationScope,
  condition,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  uuid4,
} from '@temporalio/workflow';

import type { ComputeActivities } from '../activities/compute';

import { FailureType } from '../domain/errors';
import { PowerState, VmState } from '../domain/instance';
import type { LiveMigrationStatus, MigrationPlan, MigrationRecord } from '../domain/migration';
import type { LiveMigrateInput, LiveMigrateRequest } from '../domain/schemas';
import { liveMigrationAttempts, LiveMigrateInputSchema } from '../domain/schemas';
import { computeLongStep, placementAttemptRetry } from '../shared/activity-options';
import type { LiveMigrateResult, LiveMigrationOutcome } from '../shared/messages';
import { abortLiveMigrationUpdate, forceCompleteUpdate } from '../shared/messages';
import { computeTaskQueue, workflowIds } from '../shared/task-queues';
import {
  failureMessage,
  failureType,
  isFailureOfType,
  noHost,
  parseInput,
  timeoutType,
  typedFailure,
} from './lib/failures';
import type { KernelOperation } from './lib/kernel';
import { once, runStep, withKernel } from './lib/kernel';
import { beginOperation, completeOperation, failOperation, recordStep } from './lib/operation';
import { preliminaryProgress } from './lib/progress';
import { computeOn, conductor, scheduler } from './lib/proxies';
import { LIVE_ABORT_TYPES } from './live/attempt';
import { PAUSE_EVENT } from './pause';
import { placementAttempt } from './placement-attempt';

export const LIVE_EVENTS = {
  select: 'conductor_live_migrate_instance',
  pre: 'compute_pre_live_migration',
  copy: 'compute_live_migration',
  postDest: 'compute_post_live_migration_at_destination',
  postSource: 'compute_post_live_migration',
  rollbackDest: 'compute_rollback_live_migration_at_destination',
  rollbackSource: 'compute_rollback_live_migration',
  abort: 'compute_live_migration_abort',
  forceComplete: 'compute_live_migration_force_complete',
} as const;

/**
 * The copy's cancellation waits for the source's answer, and `abortLiveMigration` answers what happened:
 * `aborted: false` when the copy switched over before the cancel reached it (it then finishes).
 */
export const PATCH_LIVE_ABORT_ANSWERS_OUTCOME = 'live-abort-answers-outcome';

/**
 * The abort and the force-complete Updates record their step (`compute_live_migration_abort`,
 * `compute_live_migration_force_complete`), which writes Nova's live_migration_abort and
 * live_migration_force_complete notifications. Histories recorded before it record no such step.
 */
export const PATCH_LIVE_ABORT_FORCE_EVENTS = 'live-abort-force-complete-events';

/**
 * After the switch-over the workflow goes on at once: the destination's receiving step is cancelled but
 * not waited for (its worker learns of the cancel on its next heartbeat, up to a second later, and it
 * only watched the incoming QEMU). Before it, every switch-over waited that second.
 */
export const PATCH_LIVE_RECEIVER_NOT_AWAITED = 'live-receiver-not-awaited';

/**
 * A failure after the switch-over (the destination's post step lost with its killed worker) still removes
 * the source's paused guest before the instance goes to error on the destination, as Nova's
 * _post_live_migration cleans the source whether or not post_live_migration_at_destination succeeded.
 * Histories recorded before it leave the source guest to the host's reconciliation.
 */
export const PATCH_LIVE_ERROR_CLEANS_SOURCE = 'live-error-after-switch-cleans-source';

/**
 * Live-migrates one instance and returns its record on the destination, with `liveMigration`: the
 * migration, the downtime, the copy's rounds. Fails typed: InvalidRequest, InstanceNotFound,
 * InstanceInvalidState (not active, another operation holds it, no guest running), ComputeHostUnavailable
 * (the source is down), NoValidHost, MigrationPreCheckError (every destination failed its checks),
 * LiveMigrationAborted (aborted, or not converged in time), MigrationError.
 */
export async function liveMigrate(input: LiveMigrateInput): Promise<LiveMigrateResult> {
  const req = parseInput(LiveMigrateInputSchema, input);
  const { instanceId } = req;
  preliminaryProgress(instanceId, 'liveMigrate', 'checking the request');
  const run = new LiveRun(req);
  setHandler(forceCompleteUpdate, () => run.forceComplete(), { validator: () => run.requireCopying('forceComplete') });
  setHandler(abortLiveMigrationUpdate, () => run.abort(), {
    validator: () => run.requireCopying('abortLiveMigration'),
  });

  // Checks that write nothing: a request that can only fail is refused before the lock.
  const planned = await conductor.planMigration({ instanceId }).catch((err: unknown) => {
    if (isCancellation(err)) throw err;
    throw typedFailure(failureType(err) ?? FailureType.InvalidRequest, failureMessage(err));
  });
  const current = planned.instance;
  if (current.host !== null && req.host === current.host)
    throw typedFailure(
      FailureType.InvalidRequest,
      `Invalid request: host: ${req.host} is the current host of instance ${instanceId} (UnableToMigrateToSelf)`
    );

  const op = withKernel(
    await CancellationScope.nonCancellable(() =>
      beginOperation({ instanceId, transition: 'liveMigrate', operation: 'liveMigrate' })
    )
  );
  run.op = op;
  let switched: CopyResult;
  try {
    switched = await run.move(planned);
  } catch (err) {
    return CancellationScope.nonCancellable(() => run.rollBack(err));
  }
  // After the switch-over the guest's memory is on the destination: finish, whatever happens to the workflow.
  return CancellationScope.nonCancellable(() => run.finish(switched));
}

interface CopyResult {
  rounds: number;
  copiedMb: number;
  downtimeMs: number;
  forced: boolean;
}

/** One live migration of one instance: its move, rollback and finish. */
class LiveRun {
  readonly migrationId = uuid4();
  op?: KernelOperation;
  private source = '';
  private dest?: string;
  private attempt = 1;
  private hostZones: Record<string, string> = {};
  private copying = false;
  private aborted = false;
  private copyScope?: CancellationScope;
  /** Patched: the copy's cancellation waits for the source's answer (it may have switched over). */
  private copyAnswersCancel = false;
  private copyEnded?: 'switched' | 'failed';
  private migrationCreated = false;
  private readonly moveAllocationBack = once(async () => {
    await scheduler.moveAllocations({ from: this.migrationId, to: this.req.instanceId });
  });

  constructor(private readonly req: LiveMigrateRequest) {}

  private get kernel(): KernelOperation {
    if (!this.op) throw typedFailure(FailureType.MigrationError, 'the live migration has not started');
    return this.op;
  }

  /** The Updates' validator: accepted only while the memory is being copied. */
  requireCopying(method: string): void {
    if (this.copying) return;
    // NOTE(nova): Nova refuses an abort of a migration that is not running with InvalidMigrationState (400).
    const p = this.op?.progress;
    const where = p ? ` (vmState ${p.vmState}, taskState ${p.taskState ?? 'None'}: ${p.step})` : '';
    throw typedFailure(
      FailureType.InstanceInvalidState,
      `Cannot '${method}' instance ${this.req.instanceId}: no live migration is copying its memory${where}`
    );
  }

  async forceComplete(): Promise<{ forced: boolean }> {
    const call = () =>
      computeOn(this.source, this.req.timeouts).short.liveMigrationForceComplete({ instanceId: this.req.instanceId });
    const forced = patched(PATCH_LIVE_ABORT_FORCE_EVENTS)
      ? await recordStep(this.kernel, LIVE_EVENTS.forceComplete, call, {
          host: this.source,
          details: (f) => (f.forced ? 'the guest paused so that the copy converges' : 'the copy had already ended'),
        })
      : await call();
    if (forced.forced) this.kernel.progress.step = `force-completing: the guest is paused on ${this.source}`;
    return forced;
  }

  async abort(): Promise<{ aborted: boolean }> {
    if (!patched(PATCH_LIVE_ABORT_FORCE_EVENTS)) return this.abortCopy();
    return recordStep(this.kernel, LIVE_EVENTS.abort, () => this.abortCopy(), {
      host: this.source,
      details: (a) => (a.aborted ? 'the copy cancelled' : 'not aborted: the copy had switched over'),
    });
  }

  private async abortCopy(): Promise<{ aborted: boolean }> {
    this.aborted = true;
    this.copyScope?.cancel();
    if (!this.copyAnswersCancel) return { aborted: true };
    // What really happened: a copy that switched over before the cancel reached it is not aborted; the
    // workflow then finishes the migration. NOTE(nova): Nova refuses such an abort (InvalidMigrationState,
    // 400) when it sees the migration past `running`; here the race is answered `aborted: false`.
    await condition(() => this.copyEnded !== undefined);
    return { aborted: this.copyEnded !== 'switched' };
  }

  /** Everything up to the switch-over; a failure leaves the rollback to the caller. */
  async move(planned: MigrationPlan): Promise<CopyResult> {
    const op = this.kernel;
    const { req, migrationId } = this;
    const { instanceId } = req;
    const before = op.before;
    if (before.host === null) throw noHost(before, 'liveMigrate');
    this.source = before.host;
    if (before.powerState !== PowerState.Running && before.powerState !== PowerState.Paused)
      throw typedFailure(
        FailureType.InstanceInvalidState,
        `Cannot 'liveMigrate' instance ${instanceId} while it is in powerState ${before.powerState}: only a running or paused guest moves live`
      );
    const up = await scheduler.isHostUp({ host: this.source });
    if (!up.up)
      throw typedFailure(
        FailureType.ComputeHostUnavailable,
        `Compute host ${this.source} is unavailable: ${up.reason} (the source of a live migration must be up)`
      );

    await conductor.createMigration({
      migrationId,
      instanceId,
      sourceHost: this.source,
      oldFlavor: planned.oldFlavor.name,
      newFlavor: planned.oldFlavor.name,
      migrationType: 'live-migration',
    });
    this.migrationCreated = true;
    op.progress.step = 'moving the source allocation to the migration';
    op.compensations.push('move the allocation back to the instance', this.moveAllocationBack);
    await scheduler.moveAllocations({ from: instanceId, to: migrationId });

    // 2. The destination, its alternates tried by the placement-attempt child.
    const selected = await runStep(op, {
      event: LIVE_EVENTS.select,
      label: 'selecting destinations',
      host: this.source,
      attempt: 0,
      details: (s) => `hosts: ${(s.selections[0]?.hosts ?? []).join(', ')}`,
      run: () =>
        scheduler.selectDestinations({
          instanceIds: [instanceId],
          flavor: planned.oldFlavor,
          image: planned.image,
          availabilityZone: before.availabilityZone ?? undefined,
          schedulerHints: before.serverGroup ? { group: before.serverGroup } : {},
          ignoreHosts: [this.source],
          ...(req.force ? { forcedHost: req.host } : { requestedHost: req.host }),
          // NOTE(nova): no late server-group check on the destination (Nova's _validate_instance_group_policy
          // in check_can_live_migrate_destination and pre_live_migration); the scheduler's filters decide.
          // NOTE(nova): migrate_max_retries alternates after the first; a requested host is the only one.
          maxAttempts: req.host ? 1 : liveMigrationAttempts(req.migrateMaxRetries),
        }),
    });
    const hosts = selected.selections[0]?.hosts ?? [];
    if (hosts.length === 0)
      throw typedFailure(
        FailureType.NoValidHost,
        `No valid host was found for the live migration of instance ${instanceId}.`
      );
    this.hostZones = selected.hostZones;
    // 'auto' goes to the destination's check, which resolves it against its driver's storage (only the
    // argument changes, not the commands: running workflows replay as before).
    const blockMigration = req.blockMigration;
    const { host: dest, attempt } = await executeChild(placementAttempt, {
      workflowId: workflowIds.placementAttempt(instanceId, 'live'),
      staticSummary: `pre-check the live migration of ${instanceId} from ${this.source}`,
      retry: placementAttemptRetry(hosts.length, LIVE_ABORT_TYPES),
      args: [
        {
          kind: 'live',
          instanceId,
          migrationId,
          actionId: op.actionId,
          hosts,
          sourceHost: this.source,
          flavor: planned.oldFlavor,
          image: planned.image,
          resources: selected.resources,
          blockMigration,
          timeouts: req.timeouts,
        },
      ],
    }).catch((err: unknown) => {
      throw this.searchFailure(err, hosts);
    });
    this.dest = dest;
    this.attempt = attempt;
    op.progress.hostsTried = hosts.slice(0, attempt);
    await this.setStatus('preparing', ['accepted'], dest);

    // 3. pre_live_migration, then the copy.
    await runStep(op, {
      event: LIVE_EVENTS.pre,
      label: `preparing ${dest} to receive the guest`,
      host: dest,
      compute: dest,
      attempt,
      undo: () => this.rollbackDestination(op, dest),
      run: () =>
        computeOn(dest, req.timeouts).short.preLiveMigration({
          instanceId,
          migrationId,
          name: before.name,
          flavor: planned.oldFlavor,
          image: planned.image,
        }),
    });
    await this.setStatus('running', ['preparing']);
    return runStep(op, {
      event: LIVE_EVENTS.copy,
      label: `copying the memory from ${this.source} to ${dest}`,
      host: this.source,
      compute: this.source,
      attempt,
      undo: () => this.resumeSource(op),
      details: (r) =>
        `switched over after ${r.rounds} round(s), ${r.copiedMb} MB copied, downtime ${r.downtimeMs} ms${r.forced ? ' (force-completed)' : ''}`,
      run: () => this.copy(dest),
    });
  }

  /**
   * The copy on the source while the destination receives. Whichever ends first decides: the copy
   * switching over ends the receiving; the destination going silent (heartbeat timeout) stops the copy;
   * an abort or a cancellation stops both.
   */
  private async copy(dest: string): Promise<CopyResult> {
    const { req, migrationId, source } = this;
    const { instanceId } = req;
    const receiveScope = new CancellationScope();
    const copyScope = new CancellationScope();
    this.copyScope = copyScope;
    this.copying = true;
    const receiving = receiveScope.run(() =>
      receiverOn(dest, req.timeouts).receiveLiveMigration({ instanceId, migrationId })
    );
    this.copyAnswersCancel = patched(PATCH_LIVE_ABORT_ANSWERS_OUTCOME);
    const compute = computeOn(source, req.timeouts);
    const copier = this.copyAnswersCancel ? compute.longAwaitingCancel : compute.long;
    const copied = copyScope.run(() =>
      copier.liveMigration({
        instanceId,
        migrationId,
        maxDowntimeMs: req.maxDowntimeMs,
        downtimeSteps: req.downtimeSteps,
        completionTimeoutSecondsPerGb: req.completionTimeoutSecondsPerGb,
      })
    );
    const lost = receiving.then(
      () => new Error('the destination stopped receiving'),
      (err: unknown) => err
    );
    try {
      const first = await Promise.race([copied.then((r) => ({ copied: r })), lost.then((err) => ({ lost: err }))]);
      if ('copied' in first) {
        this.copyEnded = 'switched';
        return first.copied;
      }
      // The destination went away (or failed) mid-copy: stop the copy, wait for it, roll back.
      copyScope.cancel();
      await copied.catch(() => undefined);
      const timedOut = timeoutType(first.lost);
      throw typedFailure(
        FailureType.MigrationError,
        timedOut
          ? `Migration error: destination ${dest} stopped answering during the copy (${timedOut} timeout)`
          : `Migration error: destination ${dest} failed during the copy: ${failureMessage(first.lost)}`
      );
    } catch (err) {
      if (this.aborted && isCancellation(err))
        throw typedFailure(
          FailureType.LiveMigrationAborted,
          `Live migration of instance ${instanceId} aborted: by the operator (abortLiveMigration)`
        );
      throw err;
    } finally {
      this.copyEnded ??= 'failed';
      this.copying = false;
      receiveScope.cancel();
      // Its failure is handled (`lost`); a switched-over copy does not wait for the cancel to land.
      if (this.copyEnded !== 'switched' || !patched(PATCH_LIVE_RECEIVER_NOT_AWAITED))
        await receiving.catch(() => undefined);
    }
  }

  /** After the switch-over: the guest runs on the destination, the source is cleaned, the migration completed. */
  async finish(copy: CopyResult): Promise<LiveMigrateResult> {
    const op = this.kernel;
    const { req, migrationId } = this;
    const { instanceId } = req;
    const dest = this.dest ?? '';
    try {
      await this.setStatus('post-migrating', ['running']);
      let { powerState } = await runStep(op, {
        event: LIVE_EVENTS.postDest,
        label: `starting the guest on ${dest}`,
        host: dest,
        compute: dest,
        attempt: this.attempt,
        run: () => computeOn(dest, req.timeouts).short.postLiveMigrationAtDestination({ instanceId, migrationId }),
      });
      if (op.before.vmState === VmState.Paused) ({ powerState } = await this.pauseAgain(dest));
      await this.removeSourceGuest(op);
      await scheduler.releaseAllocations({ consumerId: migrationId });
      const migration = await conductor.updateMigration({
        migrationId,
        status: 'completed',
        expectStatus: ['post-migrating'],
        method: 'liveMigrate',
        downtimeMs: copy.downtimeMs,
      });
      const instance = await completeOperation(op, {
        vmState: op.before.vmState === VmState.Paused ? VmState.Paused : VmState.Active,
        powerState,
        host: dest,
        availabilityZone: this.hostZones[dest] ?? op.before.availabilityZone,
      });
      return { ...instance, liveMigration: outcome(migration, copy) };
    } catch (err) {
      if (patched(PATCH_LIVE_ERROR_CLEANS_SOURCE)) await this.removeSourceGuest(op);
      return this.errorAfterSwitch(op, err, dest);
    }
  }

  /** post_live_migration on the source (idempotent); a host that does not answer reconciles it later. */
  private async removeSourceGuest(op: KernelOperation): Promise<void> {
    const { req, migrationId, source } = this;
    const { instanceId } = req;
    await runStep(op, {
      event: LIVE_EVENTS.postSource,
      label: `removing the guest from ${source}`,
      host: source,
      compute: source,
      attempt: this.attempt,
      run: () => computeOn(source, req.timeouts).cleanup.postLiveMigration({ instanceId, migrationId }),
    }).catch((err: unknown) =>
      // The guest is paused there; the host's reconciliation removes it (the instance lives elsewhere).
      log.warn('could not remove the source guest', { host: source, error: failureMessage(err) })
    );
  }

  /**
   * Undoes a live migration that failed, was aborted or cancelled before the switch-over, then fails
   * the operation. The instance stays (or is back) on its source, running.
   */
  async rollBack(err: unknown): Promise<never> {
    const op = this.kernel;
    const cancelled = this.aborted || isCancellation(err) || isFailureOfType(err, FailureType.LiveMigrationAborted);
    op.progress.step = 'rolling back to the source';
    await op.compensations.rollBack(err);
    await this.markMigration(cancelled ? 'cancelled' : 'error');
    return failOperation(op, err, {
      vmState: op.before.vmState,
      powerState: op.before.powerState,
      host: op.before.host,
      availabilityZone: op.before.availabilityZone,
    });
  }

  /**
   * After the switch-over nothing can go back: the instance is `error` on the destination, holding its
   * allocation there only (the migration's on the source is freed), its guest running nowhere.
   */
  private async errorAfterSwitch(op: KernelOperation, err: unknown, dest: string): Promise<never> {
    log.error('live migration failed after the switch-over', {
      instanceId: this.req.instanceId,
      error: failureMessage(err),
    });
    await scheduler.releaseAllocations({ consumerId: this.migrationId });
    await this.markMigration('error');
    const failure: ApplicationFailure = typedFailure(
      failureType(err) ?? FailureType.MigrationError,
      `${failureMessage(err)} (after the switch-over: the instance is in error on ${dest})`
    );
    return failOperation(op, failure, { vmState: VmState.Error, powerState: PowerState.NoState, host: dest });
  }

  /** Every destination failed its pre-checks: MigrationPreCheckError naming them; anything else as it is. */
  private searchFailure(err: unknown, hosts: string[]): unknown {
    if (!isFailureOfType(err, FailureType.Rescheduled, FailureType.MaxRetriesExceeded)) return err;
    return typedFailure(
      FailureType.MigrationPreCheckError,
      `Migration pre-check error: no destination passed the live-migration checks for instance ${this.req.instanceId} (hosts tried: ${hosts.join(', ')}); last: ${failureMessage(err)}`,
      { hostsTried: hosts }
    );
  }

  private async rollbackDestination(op: KernelOperation, dest: string): Promise<void> {
    const { instanceId } = this.req;
    await runStep(op, {
      event: LIVE_EVENTS.rollbackDest,
      label: `removing the half-received guest from ${dest}`,
      host: dest,
      compute: dest,
      attempt: this.attempt,
      run: () =>
        computeOn(dest, this.req.timeouts).cleanup.rollbackLiveMigrationAtDestination({
          instanceId,
          migrationId: this.migrationId,
        }),
    }).catch((err: unknown) =>
      // A dead destination keeps its empty guest; its reconciliation removes it (the instance lives elsewhere).
      log.warn('could not clean the destination', { host: dest, error: failureMessage(err) })
    );
  }

  private async resumeSource(op: KernelOperation): Promise<void> {
    const { instanceId } = this.req;
    await runStep(op, {
      event: LIVE_EVENTS.rollbackSource,
      label: `resuming the guest on ${this.source}`,
      host: this.source,
      compute: this.source,
      attempt: this.attempt,
      run: () => computeOn(this.source, this.req.timeouts).short.rollbackLiveMigration({ instanceId }),
    });
    if (op.before.vmState === VmState.Paused) await this.pauseAgain(this.source);
  }

  /**
   * A paused instance (Nova's live_migrate allows PAUSED) stays paused: its guest, run on by the
   * destination's post step or the source's rollback, is paused again there.
   * NOTE(nova): libvirt keeps a paused domain paused through the migration; the drivers here run the
   * received (or rolled-back) guest on, so it runs for the moment between the two steps.
   */
  private pauseAgain(host: string): Promise<{ powerState: PowerState }> {
    const { instanceId } = this.req;
    return runStep(this.kernel, {
      event: PAUSE_EVENT,
      label: `pausing the guest again on ${host}`,
      host,
      compute: host,
      attempt: this.attempt,
      run: () => computeOn(host, this.req.timeouts).short.pauseInstance({ instanceId }),
    });
  }

  private setStatus(
    status: LiveMigrationStatus,
    expect: LiveMigrationStatus[],
    destHost?: string
  ): Promise<MigrationRecord> {
    return conductor.updateMigration({
      migrationId: this.migrationId,
      status,
      destHost,
      expectStatus: expect,
      method: 'liveMigrate',
    });
  }

  private async markMigration(status: 'error' | 'cancelled'): Promise<void> {
    if (!this.migrationCreated) return;
    await conductor
      .updateMigration({ migrationId: this.migrationId, status, method: 'liveMigrate' })
      .catch((err: unknown) => log.warn('could not mark the migration', { status, error: failureMessage(err) }));
  }
}

/**
 * The destination's receiving, tried once: a destination that went silent mid-copy has lost the copy,
 * and a retry there would only wait on a dead host.
 */
function receiverOn(host: string, timeouts: LiveMigrateRequest['timeouts']) {
  return proxyActivities<ComputeActivities>({
    taskQueue: computeTaskQueue(host),
    ...computeLongStep(timeouts),
    retry: { maximumAttempts: 1 },
  });
}

function outcome(migration: MigrationRecord, copy: CopyResult): LiveMigrationOutcome {
  return { migration, downtimeMs: copy.downtimeMs, rounds: copy.rounds, copiedMb: copy.copiedMb, forced: copy.forced };
}
