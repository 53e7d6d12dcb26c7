/**
 * The fake hypervisor's live migration (libvirt's, as Nova's virt driver drives it): the destination
 * gets an empty guest that receives memory (`migrating`, carrying the migration id as its spawnId), the
 * source copies the guest's memory in rounds at the host's bandwidth while the running guest dirties
 * pages at its dirty rate, and switches over once what is left would take no longer than the allowed
 * downtime (stepped up over the first rounds to the maximum, as Nova's live_migration_downtime_steps):
 * the source guest is paused for that last copy, which is the migration's downtime. A copy that has not
 * converged within the completion timeout (seconds per GiB of RAM) is aborted; force-complete pauses the
 * guest, so nothing is dirtied and the next round converges. The guest runs on the source throughout;
 * after the switch-over it is paused there, and only post_live_migration_at_destination runs it on the
 * destination: never two running guests.
 */
import { performance } from 'node:perf_hooks';

import { InstanceNotFound, LiveMigrationAborted, MigrationPreCheckError } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import type {
  CheckLiveMigrationDestination,
  HostCpu,
  InstanceRequest,
  LiveMigrationOptions,
  LiveMigrationProgress,
  LiveMigrationRequest,
  LiveMigrationResult,
  MigrationRequest,
  PreLiveMigrationRequest,
  ReceiveOptions,
} from '../driver';
import { DriverError } from '../driver';
import type { FakeHost } from './build';
import type { FakeGuest } from './guest-store';
import {
  forgetResources,
  guestFlavorImage,
  logConsole,
  networkInfoFor,
  requireGuest,
  rootDiskFor,
} from './guest-store';
import { delay, SPAWN_PROGRESS_INTERVAL_MS, throwIfAborted, waitForAbort } from './spawn-clock';

/** Memory copied per second when faults.json does not say. */
export const DEFAULT_BANDWIDTH_MB_PER_SECOND = 2048;
/** Memory a running guest dirties per second when faults.json does not say. */
export const DEFAULT_DIRTY_MB_PER_SECOND = 64;

/** The live migrations on this host (by instance): what force-complete reaches. */
export interface LiveJobs {
  readonly forced: Set<string>;
  /** liveMigration calls under way, from their first moment (Nova's active_migrations). */
  readonly migrating: Set<string>;
  /** Copies running. */
  readonly running: Set<string>;
  /** Images whose guests dirty memory faster than any copy (a precopy never converges unforced). */
  readonly memoryDirtyingImages: ReadonlySet<string>;
}

export function newLiveJobs(memoryDirtyingImages: Iterable<string>): LiveJobs {
  return {
    forced: new Set(),
    migrating: new Set(),
    running: new Set(),
    memoryDirtyingImages: new Set(memoryDirtyingImages),
  };
}

export function checkCanLiveMigrateSource(
  h: FakeHost & { cpu: HostCpu },
  { instanceId }: InstanceRequest
): Promise<HostCpu> {
  return h.guests.readInstance(instanceId).then((state) => {
    const guest = state.guests[instanceId];
    if (!guest) throw new InstanceNotFound(instanceId);
    if (guest.status !== 'active')
      throw new MigrationPreCheckError(`instance ${instanceId} is ${guest.status} on ${h.host}, not running`);
    if (guest.powerState !== PowerState.Running && guest.powerState !== PowerState.Paused)
      throw new MigrationPreCheckError(
        `instance ${instanceId} is ${guest.powerState} on ${h.host}: only a running or paused guest moves live`
      );
    return h.cpu;
  });
}

/**
 * The destination's pre-checks: not the source itself, the same CPU architecture and every CPU feature
 * the source offers (the guest may use any of them), and no guest of the instance here already. The
 * storage mode was checked against the capabilities by the caller (the fake's hosts share no storage, so
 * only a block migration moves the disks). An injected `liveMigration.checkDestinationFailNext` fails it.
 * Writes nothing.
 */
export async function checkCanLiveMigrateDestination(
  h: FakeHost & { cpu: HostCpu },
  request: CheckLiveMigrationDestination
): Promise<void> {
  const { instanceId, sourceHost, sourceCpu } = request;
  if (sourceHost === h.host)
    throw new MigrationPreCheckError(`Unable to migrate instance ${instanceId} to the current host (${h.host})`);
  if (sourceCpu.architecture !== h.cpu.architecture)
    throw new MigrationPreCheckError(
      `CPU architecture of ${h.host} (${h.cpu.architecture}) is not ${sourceCpu.architecture}, the source's`
    );
  const missing = sourceCpu.traits.filter((t) => !h.cpu.traits.includes(t));
  if (missing.length > 0)
    throw new MigrationPreCheckError(`the CPU of ${h.host} lacks ${missing.join(', ')}, which the source's offers`);
  const existing = (await h.guests.readInstance(instanceId)).guests[instanceId];
  if (existing) throw new MigrationPreCheckError(`a guest of instance ${instanceId} already exists on ${h.host}`);
  if (await h.faults.consumeLiveMigrationFault('checkDestinationFailNext'))
    throw new MigrationPreCheckError(`check_can_live_migrate_destination failed on ${h.host}: injected fault`);
}

/** Plugs the port and makes the empty guest that receives the memory. Idempotent by migration id. */
export function preLiveMigration(h: FakeHost, request: PreLiveMigrationRequest): Promise<void> {
  const { instanceId, migrationId, flavor, image } = request;
  return h.guests.mutate(instanceId, (state, at) => {
    const current = state.guests[instanceId];
    if (current?.spawnId === migrationId) return;
    if (current) throw new DriverError(`a guest of instance ${instanceId} already exists on ${h.host}`);
    const network = state.networks[instanceId] ?? networkInfoFor(instanceId);
    const blockDevices = rootDiskFor(flavor, image);
    const guest: FakeGuest = {
      instanceId,
      name: request.name,
      host: h.host,
      status: 'migrating',
      spawnId: migrationId,
      ...guestFlavorImage(flavor, image),
      powerState: PowerState.Paused,
      network,
      blockDevices,
      createdAt: new Date(at).toISOString(),
      shutdownRequestedAt: null,
      boots: 0,
      console: [],
    };
    logConsole(guest, at, `incoming live migration ${migrationId}`);
    state.guests[instanceId] = guest;
    state.networks[instanceId] = network;
    state.blockDevices[instanceId] = blockDevices;
  });
}

/** The destination receiving: progress every interval until aborted, or silent (`receiveHangNext`). */
export async function receiveLiveMigration(
  h: FakeHost,
  { instanceId, migrationId }: MigrationRequest,
  options: ReceiveOptions
): Promise<never> {
  const guest = (await h.guests.readInstance(instanceId)).guests[instanceId];
  if (guest?.spawnId !== migrationId) throw new DriverError(`no incoming guest of instance ${instanceId} on ${h.host}`);
  const hang = await h.faults.consumeLiveMigrationFault('receiveHangNext');
  for (let beat = 0; ; beat++) {
    // A hanging destination answers once, then goes silent (it died mid-copy).
    if (hang && beat === 1) return waitForAbort(options.signal);
    options.onProgress?.();
    await delay(SPAWN_PROGRESS_INTERVAL_MS * 5, options.signal);
  }
}

/**
 * The copy, on the source. Idempotent: a guest already paused for this migration's switch-over (a retry
 * after the answer was lost) returns at once with `switched: false`.
 */
export async function liveMigration(
  h: FakeHost & { live: LiveJobs },
  request: LiveMigrationRequest,
  options: LiveMigrationOptions
): Promise<LiveMigrationResult> {
  const { instanceId } = request;
  throwIfAborted(options.signal);
  // From here a force-complete is taken, and the copy switches over at once when it begins.
  h.live.migrating.add(instanceId);
  try {
    return await copy(h, request, options);
  } finally {
    h.live.migrating.delete(instanceId);
    h.live.forced.delete(instanceId);
  }
}

async function copy(
  h: FakeHost & { live: LiveJobs },
  request: LiveMigrationRequest,
  options: LiveMigrationOptions
): Promise<LiveMigrationResult> {
  const { instanceId, migrationId, maxDowntimeMs, downtimeSteps, completionTimeoutSecondsPerGb } = request;
  const { signal, onProgress } = options;
  const guest = requireGuest(await h.guests.readInstance(instanceId), instanceId);
  // Switched over for this migration and no copy running: an earlier try of this call got there (a
  // retry). A guest paused before the copy (a paused instance) is copied like any other.
  if (guest.switchedOverFor === migrationId && !h.live.running.has(instanceId))
    return { rounds: 0, copiedMb: 0, downtimeMs: 0, forced: false, switched: false };
  const faults = (await h.faults.get()).liveMigration ?? {};
  const bandwidth = faults.bandwidthMbPerSecond ?? DEFAULT_BANDWIDTH_MB_PER_SECOND;
  // A memory-dirtying image dirties twice what the link copies: only a forced completion converges.
  const dirtyRate = h.live.memoryDirtyingImages.has(guest.image.name)
    ? Math.max(2 * bandwidth, faults.dirtyMbPerSecond ?? 0)
    : (faults.dirtyMbPerSecond ?? DEFAULT_DIRTY_MB_PER_SECOND);
  const fail = await h.faults.consumeLiveMigrationFault('failNext');
  const memoryMb = guest.flavor.memoryMb;
  const timeoutMs = completionTimeoutSecondsPerGb * Math.max(1, memoryMb / 1024) * 1000;
  const started = performance.now();
  h.live.running.add(instanceId);
  try {
    let remaining = memoryMb;
    let copied = 0;
    for (let round = 1; ; round++) {
      const forced = h.live.forced.has(instanceId);
      const paused = forced;
      const allowed = Math.round(maxDowntimeMs * Math.min(1, round / Math.max(1, downtimeSteps)));
      const roundMs = (remaining / bandwidth) * 1000;
      // Where the copy is `spent` ms into the round: what this round copied so far counts at once (a
      // newcomer watching a long first round sees it move, not 0% until the round ends), and what the
      // running guest dirtied meanwhile is left to copy again.
      const progress = (spent = 0): LiveMigrationProgress => {
        const share = roundMs > 0 ? Math.min(1, spent / roundMs) : 0;
        const dirtied = paused ? 0 : (dirtyRate * spent) / 1000;
        const left = Math.min(memoryMb, remaining * (1 - share) + dirtied);
        return {
          round,
          memoryMb,
          remainingMb: Math.round(left),
          copiedMb: Math.round(copied + remaining * share),
          dirtyMbPerSecond: paused ? 0 : dirtyRate,
          allowedDowntimeMs: allowed,
          percent: Math.max(0, Math.min(99, Math.floor((1 - left / memoryMb) * 100))),
        };
      };
      onProgress?.(progress());
      if (forced || roundMs <= allowed) {
        // Switch-over: the guest pauses here while the rest is copied.
        await h.guests.mutate(instanceId, (state) => {
          const switched = requireGuest(state, instanceId);
          switched.powerState = PowerState.Paused;
          switched.switchedOverFor = migrationId;
        });
        await delay(Math.max(1, roundMs), signal);
        copied += remaining;
        return { rounds: round, copiedMb: Math.round(copied), downtimeMs: Math.round(roundMs), forced, switched: true };
      }
      if (performance.now() - started + roundMs > timeoutMs)
        throw new LiveMigrationAborted(
          instanceId,
          `not converged within the completion timeout (${Math.round(timeoutMs / 1000)} s: ${completionTimeoutSecondsPerGb} s per GiB of RAM); ${Math.round(remaining)} MB left, dirtied at ${dirtyRate} MB/s against ${bandwidth} MB/s`
        );
      // One round: `remaining` is copied while the running guest dirties pages, in slices so progress,
      // force-complete and aborts are seen within an interval.
      const sliceMs = Math.min(SPAWN_PROGRESS_INTERVAL_MS, roundMs);
      let spent = 0;
      while (spent < roundMs) {
        const step = Math.min(sliceMs, roundMs - spent);
        await delay(Math.max(1, step), signal);
        spent += step;
        if (fail && spent >= roundMs / 2)
          throw new DriverError(
            `live migration of instance ${instanceId} from ${h.host} failed: injected fault (liveMigration.failNext)`
          );
        onProgress?.(progress(spent));
        if (h.live.forced.has(instanceId)) break;
      }
      copied += remaining * (spent / roundMs);
      remaining = h.live.forced.has(instanceId)
        ? remaining * (1 - spent / roundMs)
        : Math.min(memoryMb, (dirtyRate * roundMs) / 1000);
    }
  } finally {
    h.live.running.delete(instanceId);
  }
}

async function setPower(h: FakeHost, instanceId: string, powerState: PowerState): Promise<void> {
  await h.guests.mutate(instanceId, (state) => {
    requireGuest(state, instanceId).powerState = powerState;
  });
}

/**
 * Force-complete: the guest is paused now and the copy converges on its next slice; asked before the
 * copy runs, the copy switches over as it begins. False: no live migration of the instance runs here.
 */
export async function forceCompleteLiveMigration(
  h: FakeHost & { live: LiveJobs },
  { instanceId }: InstanceRequest
): Promise<boolean> {
  if (!h.live.migrating.has(instanceId)) return false;
  h.live.forced.add(instanceId);
  if (h.live.running.has(instanceId)) await setPower(h, instanceId, PowerState.Paused);
  return true;
}

/** The received guest runs. Idempotent; an injected `liveMigration.postFailNext` fails it. */
export async function postLiveMigrationAtDestination(
  h: FakeHost,
  { instanceId, migrationId }: MigrationRequest
): Promise<PowerState> {
  const current = (await h.guests.readInstance(instanceId)).guests[instanceId];
  if (current?.spawnId === migrationId && current.status === 'active') return current.powerState;
  if (await h.faults.consumeLiveMigrationFault('postFailNext'))
    throw new DriverError(`post_live_migration_at_destination failed on ${h.host}: injected fault`);
  const wait = (await h.faults.get()).slow?.postLiveMigrationAtDestination ?? 0;
  if (wait > 0) await delay(wait * 1000, undefined);
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = state.guests[instanceId];
    if (guest?.spawnId !== migrationId) throw new InstanceNotFound(instanceId);
    guest.status = 'active';
    guest.powerState = PowerState.Running;
    logConsole(guest, at, `live migration ${migrationId} switched over: running here`);
    return guest.powerState;
  });
}

/** The source guest goes, with its port and disks here. False when it was gone already. */
export async function postLiveMigration(h: FakeHost, { instanceId, migrationId }: MigrationRequest): Promise<boolean> {
  const wait = (await h.faults.get()).slow?.postLiveMigration ?? 0;
  if (wait > 0) await delay(wait * 1000, undefined);
  return h.guests.mutate(instanceId, (state) => {
    const guest = state.guests[instanceId];
    if (!guest || guest.spawnId === migrationId) return false;
    delete state.guests[instanceId];
    forgetResources(state, instanceId);
    return true;
  });
}

/** The half-received guest goes (only this migration's). False when there was none. */
export function rollbackLiveMigrationAtDestination(
  h: FakeHost,
  { instanceId, migrationId }: MigrationRequest
): Promise<boolean> {
  return h.guests.mutate(instanceId, (state) => {
    const guest = state.guests[instanceId];
    if (guest?.spawnId !== migrationId) return false;
    delete state.guests[instanceId];
    forgetResources(state, instanceId);
    return true;
  });
}

/** The source guest resumed: running, as it was before the copy paused it. */
export function rollbackLiveMigration(
  h: FakeHost & { live: LiveJobs },
  { instanceId }: InstanceRequest
): Promise<PowerState> {
  h.live.forced.delete(instanceId);
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = requireGuest(state, instanceId);
    delete guest.switchedOverFor;
    if (guest.powerState === PowerState.Paused) {
      guest.powerState = PowerState.Running;
      logConsole(guest, at, 'live migration rolled back: resumed');
    }
    return guest.powerState;
  });
}
