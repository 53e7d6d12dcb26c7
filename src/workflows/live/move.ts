/**
 * The live migration up to its switch-over (Nova's LiveMigrationTask._execute, then the computes'
 * pre_live_migration and live_migration), as steps on the kernel, each undo pushed before its step: the
 * source checked, the migration record with the source allocation moved to it (the conductor's own local
 * activity), the destination (the scheduler's choice, started beside the source's liveness question and
 * awaited with its answer, then each candidate checked in this workflow, the first candidate's source
 * check started beside the selection), pre_live_migration on the destination, the copy. The migration's
 * writes and its steps' events are local activities, each event written beside the next write. A
 * failure, an abort or a cancellation here is undone by the frame.
 */
import { CancellationScope, log } from '@temporalio/workflow';

import type { SelectDestinationsResult } from '../../activities/scheduler';
import {
  ComputeHostUnavailable,
  FailureType,
  InstanceInvalidState,
  MigrationPreCheckError,
  NoValidHost,
} from '../../domain/errors';
import { PowerState, VmState } from '../../domain/instance';
import type { LiveMigrationStatus, MigrationPlan, MigrationRecord } from '../../domain/migration';
import { liveMigrationAttempts } from '../../domain/schemas';
import { failureMessage, isFailureOfType, noHost } from '../lib/failures';
import type { KernelOperation } from '../lib/kernel';
import { runStep } from '../lib/kernel';
import { settleEvents } from '../lib/operation';
import { computeOn, conductorLocal, scheduler, withActivitySummary } from '../lib/proxies';
import { PAUSE_EVENT } from '../pause';
import type { FirstSourceCheck } from './attempt';
import { checkLiveInline } from './attempt';
import type { LiveControl } from './control';
import { abortIfAsked } from './control';
import type { CopyResult } from './copy';
import { copyMemory } from './copy';
import { LIVE_EVENTS } from './names';

/** The destination the attempts settled on: its host, the attempt that passed, the hosts' zones. */
export interface Destination {
  source: string;
  dest: string;
  attempt: number;
  hostZones: Record<string, string>;
}

/** Everything up to the switch-over: where the guest went and what the copy did. */
export async function moveLive(
  live: LiveControl,
  planned: MigrationPlan,
  op: KernelOperation
): Promise<{ to: Destination; copy: CopyResult }> {
  live.op = op;
  // The source's liveness answer is awaited with the selection (chooseAmong).
  const source = movableSource(live, op);
  await reserve(live, op, source, planned);
  const to = await chooseDestination(live, op, source, planned);
  const { dest, attempt } = to;
  const { req, migrationId } = live;
  const { instanceId } = req;
  await setStatus(live, 'preparing', ['accepted'], dest);
  await runStep(op, {
    event: LIVE_EVENTS.pre,
    label: `preparing ${dest} to receive the guest`,
    host: dest,
    compute: dest,
    attempt,
    undo: () => rollbackDestination(live, op, dest, attempt),
    run: () =>
      computeOn(dest, req.timeouts).short.preLiveMigration({
        instanceId,
        migrationId,
        name: op.before.name,
        flavor: planned.oldFlavor,
        image: planned.image,
      }),
  });
  abortIfAsked(live);
  await setStatus(live, 'running', ['preparing']);
  abortIfAsked(live);
  const copy = await runStep(op, {
    event: LIVE_EVENTS.copy,
    label: `copying the memory from ${source} to ${dest}`,
    host: source,
    compute: source,
    attempt,
    undo: () => resumeSource(live, op, source, attempt),
    details: (r) =>
      `switched over after ${r.rounds} round(s), ${r.copiedMb} MB copied, downtime ${r.downtimeMs} ms${r.forced ? ' (force-completed)' : ''}`,
    run: () => copyMemory(live, source, dest),
  });
  return { to, copy };
}

/** The instance has a host, and its guest runs (or is paused): the source (its liveness not asked here). */
function movableSource(live: LiveControl, op: KernelOperation): string {
  const { before } = op;
  if (before.host === null) throw noHost(before, 'liveMigrate');
  const source = before.host;
  live.source = source;
  if (before.powerState !== PowerState.Running && before.powerState !== PowerState.Paused)
    throw new InstanceInvalidState(
      live.req.instanceId,
      'powerState',
      before.powerState,
      'liveMigrate',
      ` while it is in powerState ${before.powerState}: only a running or paused guest moves live`
    );
  return source;
}

/** The source is up (the answer asked beside the lock, else asked now); ComputeHostUnavailable if not. */
async function sourceIsUp(live: LiveControl, source: string): Promise<void> {
  const asked = live.sourceUp?.host === source ? live.sourceUp.up : undefined;
  const up = await (asked ?? scheduler.isHostUp({ host: source }));
  if (!up.up) throw new ComputeHostUnavailable(source, `${up.reason} (the source of a live migration must be up)`);
}

/** The migration record (`accepted`), and the source allocation moved to it (Nova's MigrationTask). */
async function reserve(live: LiveControl, op: KernelOperation, source: string, planned: MigrationPlan) {
  const { migrationId, req } = live;
  const { instanceId } = req;
  await conductorLocal.createMigration({
    migrationId,
    instanceId,
    sourceHost: source,
    oldFlavor: planned.oldFlavor.name,
    newFlavor: planned.oldFlavor.name,
    migrationType: 'live-migration',
  });
  live.phase = 'accepted';
  op.progress.step = 'moving the source allocation to the migration';
  op.compensations.push('move the allocation back to the instance', async () => {
    await scheduler.moveAllocations({ from: migrationId, to: instanceId });
  });
  // The conductor moves it itself, a local activity in this workflow task; the liveness answer is
  // awaited with the selection (chooseAmong).
  // NOTE(nova): Nova's LiveMigrationTask checks the source is up before it replaces the allocation and
  // before select_destinations; here the answer is awaited only beside the selection, and a source
  // found down has the selection's claim released and the allocation moved back by its undo.
  await conductorLocal.replaceAllocationWithMigration({ instanceId, migrationId });
}

/** selectDestinations (the source excluded), then the candidates, each checked in turn. */
async function chooseDestination(
  live: LiveControl,
  op: KernelOperation,
  source: string,
  planned: MigrationPlan
): Promise<Destination> {
  const { req } = live;
  const { instanceId } = req;
  // The early check in a scope of its own, cancelled if the source is found down (its task would
  // otherwise wait on the down host's queue until its schedule-to-start timeout).
  const early = new CancellationScope();
  // The first destination's source check, which asks nothing of the destination, started beside the
  // selection; its step (and event) stays the first attempt's.
  // NOTE(nova): Nova's destination asks the source's check_can_live_migrate_source from its own check,
  // after select_destinations; here the first one runs while the scheduler selects.
  const startCheck = () =>
    withActivitySummary(`check can live migrate source on ${source}, attempt 1`, () =>
      computeOn(source, req.timeouts).short.checkCanLiveMigrateSource({ instanceId })
    );
  const firstSourceCheck = early.run(startCheck);
  firstSourceCheck.catch(() => undefined); // awaited by the first attempt, or below
  try {
    return await chooseAmong(live, op, source, planned, firstSourceCheck, early);
  } catch (err) {
    // No attempt took the early check: it is settled before the failure goes on (no activity left).
    await firstSourceCheck.catch(() => undefined);
    throw err;
  }
}

/** chooseDestination's selection and attempts (the first source check, started early, passed on). */
async function chooseAmong(
  live: LiveControl,
  op: KernelOperation,
  source: string,
  planned: MigrationPlan,
  firstSourceCheck: FirstSourceCheck,
  early: CancellationScope
): Promise<Destination> {
  const { req, migrationId } = live;
  const { instanceId } = req;
  const { before } = op;
  const selecting = runStep(op, {
    event: LIVE_EVENTS.select,
    label: 'selecting destinations',
    host: source,
    attempt: 0,
    details: (s) => `hosts: ${(s.selections[0]?.hosts ?? []).join(', ')}`,
    run: () =>
      scheduler.selectDestinations({
        instanceIds: [instanceId],
        flavor: planned.oldFlavor,
        image: planned.image,
        availabilityZone: before.availabilityZone ?? undefined,
        schedulerHints: before.serverGroup ? { group: before.serverGroup } : {},
        ignoreHosts: [source],
        ...(req.force ? { forcedHost: req.host } : { requestedHost: req.host }),
        // NOTE(nova): migrate_max_retries alternates after the first; a requested host is the only one.
        maxAttempts: req.host ? 1 : liveMigrationAttempts(req.migrateMaxRetries),
      }),
  });
  const selected = await withSourceUp(live, source, selecting, early);
  const hosts = selected.selections[0]?.hosts ?? [];
  if (hosts.length === 0) throw NoValidHost.for(`the live migration of instance ${instanceId}`);
  // 'auto' goes to the destination's check, which resolves it against its driver's storage.
  const checks = {
    instanceId,
    migrationId,
    actionId: op.actionId,
    hosts,
    sourceHost: source,
    flavor: planned.oldFlavor,
    image: planned.image,
    resources: selected.resources,
    blockMigration: req.blockMigration,
    timeouts: req.timeouts,
    ...(before.serverGroup ? { serverGroup: before.serverGroup } : {}),
  };
  const { host: dest, attempt } = await checkLiveInline(op, checks, firstSourceCheck).catch((err: unknown) => {
    throw searchFailure(instanceId, err, hosts);
  });
  op.progress.hostsTried = hosts.slice(0, attempt);
  return { source, dest, attempt, hostZones: selected.hostZones };
}

/**
 * The selection with the source's liveness answer, both settled before either failure goes on. A source
 * found down (ComputeHostUnavailable) cancels the early source check and releases the claim the
 * selection made.
 */
async function withSourceUp(
  live: LiveControl,
  source: string,
  selecting: Promise<SelectDestinationsResult>,
  early: CancellationScope
): Promise<SelectDestinationsResult> {
  const [up, selected] = await Promise.allSettled([sourceIsUp(live, source), selecting]);
  if (up.status === 'rejected') {
    early.cancel();
    const claimed = selected.status === 'fulfilled' ? selected.value.selections[0]?.hosts[0] : undefined;
    if (claimed !== undefined) await scheduler.releaseAllocations({ consumerId: live.req.instanceId, host: claimed });
    throw up.reason;
  }
  if (selected.status === 'rejected') throw selected.reason;
  return selected.value;
}

/** Every destination failed its pre-checks: MigrationPreCheckError naming them; anything else as it is. */
function searchFailure(instanceId: string, err: unknown, hosts: string[]): unknown {
  if (!isFailureOfType(err, FailureType.Rescheduled, FailureType.MaxRetriesExceeded)) return err;
  return new MigrationPreCheckError(
    `no destination passed the live-migration checks for instance ${instanceId} (hosts tried: ${hosts.join(', ')}); last: ${failureMessage(err)}`,
    { hostsTried: hosts }
  );
}

/** The migration's status, compare-and-swapped from `expect`; the phase the Updates see follows it. */
export async function setStatus(
  live: LiveControl,
  status: LiveMigrationStatus,
  expect: LiveMigrationStatus[],
  destHost?: string
): Promise<MigrationRecord> {
  // The events of the steps before it written beside it.
  const [migration] = await Promise.all([
    conductorLocal.updateMigration({
      migrationId: live.migrationId,
      status,
      destHost,
      expectStatus: expect,
      method: 'liveMigrate',
    }),
    settleEvents(live.op),
  ]);
  if (status === 'preparing' || status === 'running') live.phase = status;
  return migration;
}

/** The undo of pre_live_migration: the half-received guest and its port removed from the destination. */
async function rollbackDestination(live: LiveControl, op: KernelOperation, dest: string, attempt: number) {
  const { instanceId, timeouts } = live.req;
  await runStep(op, {
    event: LIVE_EVENTS.rollbackDest,
    label: `removing the half-received guest from ${dest}`,
    host: dest,
    compute: dest,
    attempt,
    run: () =>
      computeOn(dest, timeouts).cleanup.rollbackLiveMigrationAtDestination({
        instanceId,
        migrationId: live.migrationId,
      }),
  }).catch((err: unknown) =>
    // A dead destination keeps its empty guest; its reconciliation removes it (the instance lives elsewhere).
    log.warn('could not clean the destination', { host: dest, error: failureMessage(err) })
  );
}

/** The undo of the copy: the guest resumed on the source (paused again if it was paused). */
async function resumeSource(live: LiveControl, op: KernelOperation, source: string, attempt: number) {
  const { instanceId, timeouts } = live.req;
  await runStep(op, {
    event: LIVE_EVENTS.rollbackSource,
    label: `resuming the guest on ${source}`,
    host: source,
    compute: source,
    attempt,
    run: () => computeOn(source, timeouts).short.rollbackLiveMigration({ instanceId }),
  });
  if (op.before.vmState === VmState.Paused) await pauseAgain(live, op, source, attempt);
}

/**
 * A paused instance (Nova's live_migrate allows PAUSED) stays paused: its guest, run on by the
 * destination's post step or the source's rollback, is paused again there.
 * NOTE(nova): libvirt keeps a paused domain paused through the migration; the drivers here run the
 * received (or rolled-back) guest on, so it runs for the moment between the two steps.
 */
export function pauseAgain(
  live: LiveControl,
  op: KernelOperation,
  host: string,
  attempt: number
): Promise<{ powerState: PowerState }> {
  return runStep(op, {
    event: PAUSE_EVENT,
    label: `pausing the guest again on ${host}`,
    host,
    compute: host,
    attempt,
    run: () => computeOn(host, live.req.timeouts).short.pauseInstance({ instanceId: live.req.instanceId }),
  });
}
