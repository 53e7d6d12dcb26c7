/**
 * The QEMU driver's resize and cold migration (Nova's libvirt migrate_disk_and_power_off, finish_migration,
 * confirm_migration, finish_revert_migration). The instance path is shared by every host, so the source
 * moves its directory aside as `<id>_resize` and copies the disk back into `<id>/` (Nova's copy_image on a
 * shared path); the destination grows it with `qemu-img resize` and launches it with the new flavor.
 */
import { access, copyFile, mkdir, open, rename, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { PowerState } from '../../domain/instance';
import type {
  FinishMigrationRequest,
  MigrateDiskOptions,
  MigrateDiskRequest,
  MigrateDiskResult,
  PrepareResizeRequest,
  SpawnResult,
} from '../driver';
import { DriverError, ResizeRefused } from '../driver';
import { networkInfoFor } from '../guest';
import { requestShutdown } from './build';
import type { QemuHost } from './guest';
import {
  checkDiskFits,
  execFileAsync,
  launchGuest,
  powerStateOf,
  processAlive,
  removeGuestFiles,
  requireRecord,
  rootDiskFor,
  rootDiskGb,
  stopProcess,
  toGuest,
  waitForBoot,
} from './guest';
import type { GuestRecord } from './layout';

/** Nova's CONF.compute.shutdown_retry_interval. */
export const DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS = 10;

/** Destination (prep_resize): the image fits the new flavor, and a same-host move changes the flavor. */
export function prepareResize(h: QemuHost, request: PrepareResizeRequest): Promise<void> {
  checkDiskFits(request.newFlavor, request.image);
  if (request.sourceHost === h.host && request.oldFlavor.name === request.newFlavor.name)
    throw new DriverError(`Unable to migrate instance ${request.instanceId} to the current host (${h.host})`);
  return Promise.resolve();
}

/**
 * Nova's _clean_shutdown then _destroy: the ACPI power button, re-sent every retry interval, polled each
 * second up to the timeout; then the process is destroyed whatever the guest did. Returns how it ended.
 */
export async function cleanShutdown(
  h: QemuHost,
  instanceId: string,
  timeoutSeconds: number,
  retryIntervalSeconds: number,
  signal?: AbortSignal,
  onWait?: () => void
): Promise<'clean' | 'forced'> {
  const dir = h.layout.instanceDir(instanceId);
  const record = await requireRecord(h, instanceId);
  let ended: 'clean' | 'forced' = 'clean';
  if ((await powerStateOf(h, record)) !== PowerState.Shutdown) {
    const started = Date.now();
    let lastSent = -Infinity;
    ended = 'forced';
    while (Date.now() - started < timeoutSeconds * 1000) {
      signal?.throwIfAborted();
      if (Date.now() - lastSent >= retryIntervalSeconds * 1000) {
        lastSent = Date.now();
        await requestShutdown(h, instanceId);
      }
      onWait?.();
      await sleep(Math.min(1000, Math.max(10, timeoutSeconds * 1000 - (Date.now() - started))));
      if (!(await processAlive(record))) {
        ended = 'clean';
        break;
      }
    }
  }
  await stopProcess(h, dir, record);
  return ended;
}

/**
 * Source: refuses a smaller disk (before touching anything), powers the guest off cleanly, moves its
 * directory aside as `<id>_resize` and copies the disk into a new `<id>/`. Idempotent: a directory moved
 * aside with the disk copied returns at once (`transferred: false`). Aborting stops it with the guest off.
 */
export async function migrateDiskAndPowerOff(
  h: QemuHost,
  request: MigrateDiskRequest,
  options: MigrateDiskOptions
): Promise<MigrateDiskResult> {
  const { instanceId, newFlavor } = request;
  const { signal, onProgress } = options;
  signal?.throwIfAborted();
  const dir = h.layout.instanceDir(instanceId);
  const aside = h.layout.resizeDir(instanceId);
  const asideRecord = await h.layout.readRecord(aside);
  if (!asideRecord) {
    const record = await requireRecord(h, instanceId);
    const oldDisk = rootDiskGb(record.flavor, record.image);
    // NOTE(nova): libvirt refuses to shrink a root disk (ResizeError "Unable to resize disk down.") before
    // it powers anything off.
    if (newFlavor.diskGb > 0 && oldDisk > newFlavor.diskGb)
      throw new ResizeRefused(
        `Unable to resize disk down: instance ${instanceId} has a ${oldDisk} GB root disk, flavor ${newFlavor.name} ${newFlavor.diskGb} GB`
      );
    onProgress?.('powering-off', 0);
    await cleanShutdown(
      h,
      instanceId,
      options.shutdownTimeoutSeconds,
      (options as { shutdownRetryIntervalSeconds?: number }).shutdownRetryIntervalSeconds ??
        DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS,
      signal,
      () => onProgress?.('powering-off', 0)
    );
    signal?.throwIfAborted();
    await rename(dir, aside);
  }
  const kept = asideRecord ?? (await h.layout.readRecord(aside));
  if (!kept) throw new DriverError(`instance ${instanceId} has no guest moved aside on ${h.host}`);
  const diskGb = rootDiskGb(kept.flavor, kept.image);
  const target = h.layout.disk(dir);
  // The copy lands under a temporary name: a disk in place is a whole one (a retried call).
  if (asideRecord && (await exists(target))) {
    onProgress?.('transferring', 100);
    return { transferred: false, diskGb };
  }
  onProgress?.('transferring', 0);
  await mkdir(dir, { recursive: true });
  const temp = `${target}.part`;
  await copyDisk(h.layout.disk(aside), temp, h.diskCopyBytesPerSecond, signal, (percent) =>
    onProgress?.('transferring', percent)
  );
  await rename(temp, target);
  onProgress?.('transferring', 100);
  return { transferred: true, diskGb };
}

/**
 * The disk copied whole at full speed, or, throttled ($QEMU_DISK_COPY_KB), in 64 KiB chunks at that rate
 * with the progress reported after each (the step's heartbeat).
 */
async function copyDisk(
  from: string,
  to: string,
  bytesPerSecond: number | undefined,
  signal: AbortSignal | undefined,
  onProgress: (percent: number) => void
): Promise<void> {
  if (!bytesPerSecond) return copyFile(from, to);
  const source = await open(from, 'r');
  try {
    const target = await open(to, 'w');
    try {
      const { size } = await source.stat();
      const chunk = Buffer.alloc(64 * 1024);
      const started = Date.now();
      for (let done = 0; done < size;) {
        signal?.throwIfAborted();
        const { bytesRead } = await source.read(chunk, 0, chunk.length, done);
        if (bytesRead === 0) break;
        await target.write(chunk, 0, bytesRead, done);
        done += bytesRead;
        onProgress(Math.floor((done * 100) / size));
        const due = started + (done * 1000) / bytesPerSecond - Date.now();
        if (due > 0) await sleep(due);
      }
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Destination (finish_migration): the transferred disk grown to the new flavor's root disk, the guest
 * launched with the new vCPUs and memory (and through its boot line) when `powerOn`, else left off.
 * Idempotent by migration id.
 */
export async function finishMigration(h: QemuHost, request: FinishMigrationRequest): Promise<SpawnResult> {
  const { instanceId, migrationId, flavor, image } = request;
  checkDiskFits(flavor, image);
  const dir = h.layout.instanceDir(instanceId);
  const existing = await h.layout.readRecord(dir);
  if (existing?.opId === migrationId && existing.status === 'active') {
    if (request.powerOn && !(await processAlive(existing))) await bootRecord(h, dir, existing);
    return { guest: toGuest(existing, await powerStateOf(h, existing)), created: false };
  }
  if (existing && existing.opId !== migrationId)
    throw new DriverError(`a guest of instance ${instanceId} already exists on ${h.host}`);
  if (!(await exists(h.layout.disk(dir))))
    throw new DriverError(`the disk of instance ${instanceId} was not transferred to ${h.host}`);
  const record: GuestRecord = {
    version: 1,
    instanceId,
    name: request.name,
    host: h.host,
    status: 'active',
    opId: migrationId,
    flavor: { name: flavor.name, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb },
    image: { name: image.name, sizeGb: image.sizeGb },
    network: networkInfoFor(instanceId),
    blockDevices: rootDiskFor(flavor, image),
    createdAt: new Date().toISOString(),
    process: null,
  };
  const disk = h.layout.disk(dir);
  const info = await execFileAsync('qemu-img', ['info', '--output=json', '-U', disk]);
  const virtualSize = (JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size'];
  const wanted = rootDiskGb(flavor, image) * 1024 ** 3;
  if (wanted > virtualSize) await execFileAsync('qemu-img', ['resize', '-q', disk, String(wanted)]);
  await h.layout.writeRecord(dir, record);
  if (request.powerOn) await bootRecord(h, dir, record);
  return { guest: toGuest(record, await powerStateOf(h, record)), created: true };
}

async function bootRecord(h: QemuHost, dir: string, record: GuestRecord): Promise<void> {
  await h.limits.hold(undefined, undefined, async () => {
    const { consoleOffset } = await launchGuest(h, dir, record);
    try {
      await waitForBoot(h, dir, record, consoleOffset);
    } catch (err) {
      await stopProcess(h, dir, record).catch(() => undefined);
      throw err;
    }
  });
}

/** Source (confirm_migration → _cleanup_resize): the directory moved aside deleted. */
export async function confirmMigration(h: QemuHost, instanceId: string): Promise<boolean> {
  const aside = h.layout.resizeDir(instanceId);
  const record = await h.layout.readRecord(aside);
  if (!record) return false;
  await stopProcess(h, aside, record);
  await rm(aside, { recursive: true, force: true });
  return true;
}

/** Destination (revert_resize: destroy): this migration's guest destroyed, its files removed. */
export async function destroyMigrationTarget(h: QemuHost, instanceId: string, migrationId: string): Promise<boolean> {
  const dir = h.layout.instanceDir(instanceId);
  const record = await h.layout.readRecord(dir);
  if (record?.opId !== migrationId) return false;
  await stopProcess(h, dir, record);
  await removeGuestFiles(h, dir);
  return true;
}

/**
 * Source (finish_revert_migration): the directory moved aside put back (a target of this migration still
 * in the way removed first), the guest started when `powerOn`. Idempotent.
 */
export async function finishRevertMigration(
  h: QemuHost,
  instanceId: string,
  migrationId: string,
  powerOn: boolean
): Promise<PowerState> {
  const dir = h.layout.instanceDir(instanceId);
  const aside = h.layout.resizeDir(instanceId);
  const asideRecord = await h.layout.readRecord(aside);
  if (asideRecord) {
    const inTheWay = await h.layout.readRecord(dir);
    if (inTheWay && inTheWay.opId !== migrationId)
      throw new DriverError(`a guest of instance ${instanceId} already exists on ${h.host}`);
    if (inTheWay) await stopProcess(h, dir, inTheWay);
    // Nova removes the instance directory the move made before it renames _resize back.
    await rm(dir, { recursive: true, force: true });
    await rename(aside, dir);
  }
  const record = await requireRecord(h, instanceId);
  if (powerOn && !(await processAlive(record))) await bootRecord(h, dir, record);
  return powerStateOf(h, record);
}
