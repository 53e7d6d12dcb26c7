/**
 * The QEMU driver's live migration, Nova's libvirt driver mapped onto QMP: the destination is a QEMU
 * started with `-incoming defer` in the shared instance directory, listening on a loopback port; the source
 * runs `migrate` and polls `query-migrate` every 0.5 s (Nova's _live_migration_monitor), reporting each
 * poll as progress, stepping `downtime-limit` up, cancelling (`migrate_cancel`) after the completion
 * timeout. Force-complete is post-copy when permitted, else the source paused (Nova's
 * live_migration_force_complete). The full capability list is sent to both ends every time (capabilities
 * stick to a migrated-in QEMU), and auto-converge is never on (it corrupted guests under TCG).
 */
import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { LiveMigrationAborted } from '../../domain/errors';
import type {
  HostCpu,
  LiveMigrationOptions,
  LiveMigrationProgress,
  LiveMigrationRequest,
  LiveMigrationResult,
  PreLiveMigrationRequest,
  ReceiveOptions,
} from '../driver';
import { DriverError } from '../driver';
import { networkInfoFor } from '../guest';
import type { QemuHost } from './guest';
import {
  guestMemoryMb,
  launchGuest,
  processAlive,
  queryStatus,
  removeGuestFiles,
  requireRecord,
  rootDiskFor,
  stopProcess,
} from './guest';
import type { GuestRecord } from './layout';
import type { MigrateInfo } from './live-end';
import { cancelCopy } from './live-end';
import type { QmpClient } from './qmp';

export {
  postLiveMigration,
  postLiveMigrationAtDestination,
  rollbackLiveMigration,
  rollbackLiveMigrationAtDestination,
} from './live-end';

/**
 * What a host's live migrations share: the liveMigration calls under way here, the copies QEMU runs, and
 * the force-completes asked (false: queued until the copy runs, true: applied).
 */
export interface LiveHost extends QemuHost {
  readonly cpu: HostCpu;
  /** Nova's live_migration_permit_post_copy: force-complete switches to post-copy. */
  readonly permitPostCopy: boolean;
  /** QEMU's max-bandwidth, bytes/s (Nova's live_migration_bandwidth); undefined: no cap, as libvirt's. */
  readonly maxBandwidthBytes: number | undefined;
  /** Instances whose liveMigration call runs here, from its first moment (Nova's active_migrations). */
  readonly migrating: Set<string>;
  readonly copying: Set<string>;
  readonly forced: Map<string, boolean>;
}

const POLL_MS = 500;
/**
 * The copy's max-bandwidth when none is configured: no cap. Nova's live_migration_bandwidth 0 leaves the
 * speed to the hypervisor, and libvirt raises QEMU's own default (128 MiB/s, which held a 256 MiB guest's
 * copy at about 0.7 s) to its maximum before a migration (QEMU_DOMAIN_MIG_BANDWIDTH_MAX); 1 TiB/s is
 * beyond any copy here (the same as a suspend's save).
 */
export const UNCAPPED_BANDWIDTH_BYTES = 1024 ** 4;
/** The `MIGRATION` event statuses that end (or change the nature of) a copy: polled at once. */
const ENDS = new Set(['completed', 'failed', 'cancelled', 'postcopy-active']);

/** Every capability QEMU knows, off, but `events` and (when permitted) `postcopy-ram`: never auto-converge. */
async function setCapabilities(qmp: QmpClient, postCopy: boolean): Promise<void> {
  const known = await qmp.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
  const on = new Set(['events', ...(postCopy ? ['postcopy-ram'] : [])]);
  await qmp.execute('migrate-set-capabilities', {
    capabilities: known.map((c) => ({ capability: c.capability, state: on.has(c.capability) })),
  });
}

/** The destination QEMU started with `-incoming defer`, capabilities set, listening. Idempotent by migration id. */
export async function preLiveMigration(h: LiveHost, request: PreLiveMigrationRequest): Promise<void> {
  const { instanceId, migrationId, flavor, image } = request;
  const dir = h.layout.instanceDir(instanceId);
  const existing = await h.layout.readRecord(dir);
  if (existing?.opId === migrationId && existing.status === 'incoming' && (await processAlive(existing))) return;
  if (existing && existing.opId !== migrationId)
    throw new DriverError(`a guest of instance ${instanceId} already exists on ${h.host}`);
  if (existing) await stopProcess(h, dir, existing);
  const record: GuestRecord = {
    version: 1,
    instanceId,
    name: request.name,
    host: h.host,
    status: 'incoming',
    opId: migrationId,
    flavor: { name: flavor.name, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb },
    image: { name: image.name, sizeGb: image.sizeGb },
    network: networkInfoFor(instanceId),
    blockDevices: rootDiskFor(flavor, image),
    createdAt: new Date().toISOString(),
    process: null,
  };
  const { proc } = await launchGuest(h, dir, record, { incoming: true });
  try {
    const qmp = await h.monitors.get(proc);
    await setCapabilities(qmp, h.permitPostCopy);
    await qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const info = await qmp.execute<MigrateInfo>('query-migrate');
    const port = info['socket-address']?.find((a) => a.port)?.port;
    if (!port) throw new DriverError(`the incoming QEMU of instance ${instanceId} reports no port`);
    record.incomingUri = `tcp:127.0.0.1:${port}`;
    await h.layout.writeRecord(dir, record);
  } catch (err) {
    await stopProcess(h, dir, record).catch(() => undefined);
    await removeGuestFiles(h, dir);
    throw err;
  }
}

/**
 * The destination while the copy runs: progress every second while its QEMU lives; silent once it is gone
 * (its heartbeat times out, as a dead host's would), until aborted.
 */
export async function receiveLiveMigration(
  h: LiveHost,
  instanceId: string,
  migrationId: string,
  options: ReceiveOptions
): Promise<never> {
  const record = await h.layout.readRecord(h.layout.instanceDir(instanceId));
  if (record?.opId !== migrationId) throw new DriverError(`no incoming guest of instance ${instanceId} on ${h.host}`);
  for (;;) {
    options.signal?.throwIfAborted();
    if (await processAlive(record)) options.onProgress?.();
    await sleep(1000, undefined, { signal: options.signal }).catch(() => undefined);
  }
}

/** The destination of this migration: its record in the shared instance directory. */
async function incomingOf(h: LiveHost, instanceId: string, migrationId: string): Promise<GuestRecord | undefined> {
  const dir = h.layout.instanceDir(instanceId);
  for (const name of await readdir(dir)) {
    const m = /^guest\.(.+)\.json$/.exec(name);
    if (!m?.[1] || m[1] === h.host) continue;
    const r = await h.layout.readRecord(dir, m[1]).catch(() => undefined);
    if (r?.opId === migrationId && r.status === 'incoming') return r;
  }
  return undefined;
}

function mb(bytes: number | undefined): number {
  return Math.round((bytes ?? 0) / (1024 * 1024));
}

/**
 * The copy, on the source. Idempotent: a retry re-attaches to a copy still running, and a guest already
 * switched over for this migration returns at once (`switched: false`).
 */
export async function liveMigration(
  h: LiveHost,
  request: LiveMigrationRequest,
  options: LiveMigrationOptions
): Promise<LiveMigrationResult> {
  const { instanceId } = request;
  options.signal?.throwIfAborted();
  // From here a force-complete is taken (queued until the copy runs), as Nova's driver takes one once
  // the instance is in its active_migrations, before libvirt's copy begins.
  h.migrating.add(instanceId);
  try {
    return await migrate(h, request, options);
  } finally {
    h.migrating.delete(instanceId);
    h.forced.delete(instanceId);
  }
}

async function migrate(
  h: LiveHost,
  request: LiveMigrationRequest,
  options: LiveMigrationOptions
): Promise<LiveMigrationResult> {
  const { instanceId, migrationId, maxDowntimeMs, downtimeSteps, completionTimeoutSecondsPerGb } = request;
  const { signal, onProgress } = options;
  const dir = h.layout.instanceDir(instanceId);
  const record = await requireRecord(h, instanceId);
  if (record.status === 'outgoing' && record.opId === migrationId)
    return { rounds: 0, copiedMb: 0, downtimeMs: 0, forced: false, switched: false };
  if (!record.process || !(await processAlive(record)))
    throw new DriverError(`the guest of instance ${instanceId} is not running on ${h.host}`);
  const qmp = await h.monitors.get(record.process);
  // What is copied: the guest's memory (its flavor's, capped); the timeout counts the flavor's, as Nova's.
  const memoryMb = guestMemoryMb(h, record.flavor);
  const timeoutMs = completionTimeoutSecondsPerGb * Math.max(1, record.flavor.memoryMb / 1024) * 1000;
  const allowed = (round: number): number =>
    Math.round(maxDowntimeMs * Math.min(1, Math.max(1, round) / Math.max(1, downtimeSteps)));

  return h.limits.hold(signal, undefined, async () => {
    const ends = watchEnds(qmp);
    try {
      return await copyAndWatch(ends);
    } finally {
      ends.stop();
    }
  });

  async function copyAndWatch(ends: EndWatch): Promise<LiveMigrationResult> {
    let info = await qmp.execute<MigrateInfo>('query-migrate');
    if (!(await isOwnCopy(h, record, migrationId, info))) {
      const incoming = await incomingOf(h, instanceId, migrationId);
      if (!incoming?.incomingUri)
        throw new DriverError(`no destination is listening for migration ${migrationId} of instance ${instanceId}`);
      await setCapabilities(qmp, h.permitPostCopy);
      await qmp.execute('migrate-set-parameters', {
        'downtime-limit': allowed(0),
        'max-bandwidth': h.maxBandwidthBytes ?? UNCAPPED_BANDWIDTH_BYTES,
      });
      // Recorded first: a retry after this worker died re-attaches to the copy instead of starting one.
      record.outgoing = migrationId;
      await h.layout.writeRecord(dir, record);
      await qmp.execute('migrate', { uri: incoming.incomingUri });
    }
    h.copying.add(instanceId);
    const started = Date.now();
    let limit = allowed(0);
    try {
      for (;;) {
        info = await qmp.execute<MigrateInfo>('query-migrate');
        const ram = info.ram;
        const round = ram?.['dirty-sync-count'] ?? 0;
        const progress: LiveMigrationProgress = {
          round,
          memoryMb,
          remainingMb: mb(ram?.remaining),
          copiedMb: mb(ram?.transferred),
          dirtyMbPerSecond: mb((ram?.['dirty-pages-rate'] ?? 0) * (ram?.['page-size'] ?? 4096)),
          allowedDowntimeMs: limit,
          percent: ram?.total ? Math.min(99, Math.floor((1 - ram.remaining / ram.total) * 100)) : 0,
        };
        // A force-complete asked before the copy ran is applied once QEMU copies.
        if (info.status === 'active' && h.forced.get(instanceId) === false) await applyForce(h, qmp, instanceId);
        const forced = h.forced.get(instanceId) === true;
        switch (info.status) {
          case 'completed': {
            record.status = 'outgoing';
            record.opId = migrationId;
            await h.layout.writeRecord(dir, record);
            onProgress?.({ ...progress, remainingMb: 0, percent: 100 });
            return {
              rounds: round,
              copiedMb: mb(ram?.transferred),
              downtimeMs: info.downtime ?? 0,
              forced,
              switched: true,
            };
          }
          case 'failed':
          case 'cancelled':
            throw new DriverError(
              `live migration of instance ${instanceId} from ${h.host} ${info.status}: ${info['error-desc'] ?? 'no reason given'}`
            );
          default:
            break;
        }
        onProgress?.(progress);
        if (signal?.aborted) throw signal.reason;
        // Nova's downtime steps: the limit rises with the rounds up to the maximum.
        if (allowed(round) !== limit) {
          limit = allowed(round);
          await qmp.execute('migrate-set-parameters', { 'downtime-limit': limit });
        }
        // NOTE(nova): never in post-copy, as should_trigger_timeout_action.
        if (info.status !== 'postcopy-active' && Date.now() - started > timeoutMs)
          throw new LiveMigrationAborted(
            instanceId,
            `not converged within the completion timeout (${Math.round(timeoutMs / 1000)} s: ${completionTimeoutSecondsPerGb} s per GiB of RAM); ${progress.remainingMb} MB left, dirtied at ${progress.dirtyMbPerSecond} MB/s`
          );
        // The next poll in 0.5 s (Nova's monitor interval), or at once when QEMU reports the end.
        await ends.next(POLL_MS);
      }
    } catch (err) {
      const final = await cancelCopy(qmp, instanceId, h.forced.get(instanceId) === true);
      if (final.status !== 'completed') throw err;
      // The copy switched over before migrate_cancel reached it: the guest runs on the destination, and
      // the answer says so (Nova refuses to abort a migration that has switched over).
      record.status = 'outgoing';
      record.opId = migrationId;
      await h.layout.writeRecord(dir, record);
      const ram = final.ram;
      return {
        rounds: ram?.['dirty-sync-count'] ?? 0,
        copiedMb: mb(ram?.transferred),
        downtimeMs: final.downtime ?? 0,
        forced: h.forced.get(instanceId) === true,
        switched: true,
      };
    } finally {
      h.copying.delete(instanceId);
    }
  }
}

interface EndWatch {
  /** Resolves after `ms`, or at once when QEMU reported an end since the last call. */
  next(ms: number): Promise<void>;
  stop(): void;
}

/**
 * QEMU's `MIGRATION` events that end a copy, caught from before `migrate` on: one sent between a poll's
 * answer and the next wait still wakes that wait (a copy of an idle guest ends in about 0.1 s, often
 * while the first poll's answer is handled, and a missed event cost the whole 0.5 s interval).
 */
function watchEnds(qmp: QmpClient): EndWatch {
  let seen = false;
  let wake: (() => void) | undefined;
  const stop = qmp.onEvent((e) => {
    if (e.event !== 'MIGRATION' || !ENDS.has(String(e.data?.status))) return;
    seen = true;
    wake?.();
  });
  return {
    async next(ms: number): Promise<void> {
      if (!seen)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      wake = undefined;
      seen = false;
    },
    stop,
  };
}

/**
 * Is QEMU's current migration state this migration's copy (a retry re-attaches)? Only when this host
 * started it (its record says so) and it runs, or completed with the guest left here `postmigrate`: a
 * migrated-in QEMU reports its incoming migration `completed` too, while it runs.
 */
async function isOwnCopy(h: LiveHost, record: GuestRecord, migrationId: string, info: MigrateInfo): Promise<boolean> {
  if (record.outgoing !== migrationId || !record.process) return false;
  if (info.status === 'active' || info.status === 'postcopy-active' || info.status === 'device') return true;
  return info.status === 'completed' && (await queryStatus(h, record.process)) === 'postmigrate';
}

/**
 * Force-complete: post-copy when permitted, else the guest paused so the copy converges; asked while the
 * liveMigration call waits for its slot or sets the copy up, queued and applied once QEMU copies (Nova's
 * monitor takes the force-complete queued for it). False: no live migration of the instance runs here.
 */
export async function forceCompleteLiveMigration(h: LiveHost, instanceId: string): Promise<boolean> {
  if (!h.migrating.has(instanceId)) return false;
  if (!h.forced.has(instanceId)) h.forced.set(instanceId, false);
  if (!h.copying.has(instanceId)) return true;
  const record = await requireRecord(h, instanceId);
  if (!record.process) return false;
  await applyForce(h, await h.monitors.get(record.process), instanceId);
  return true;
}

/** Applies a queued force-complete once (the copy's poll and the request may both get here). */
async function applyForce(h: LiveHost, qmp: QmpClient, instanceId: string): Promise<void> {
  if (h.forced.get(instanceId) !== false) return;
  h.forced.set(instanceId, true);
  if (h.permitPostCopy) await qmp.execute('migrate-start-postcopy');
  else await qmp.execute('stop');
}
