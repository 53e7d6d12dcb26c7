/**
 * The QEMU driver's build, power, destroy and rebuild steps (Nova's libvirt spawn, power_off/_clean_shutdown,
 * power_on, destroy, get_info, and the compute manager's _rebuild_default_impl). Idempotent by instance id.
 */
import { createHash, randomUUID } from 'node:crypto';
import { access, mkdir, rm } from 'node:fs/promises';

import { HypervisorBusy, InstanceNotFound } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import type {
  BlockDeviceInfo,
  Guest,
  GuestFlavor,
  GuestImage,
  NetworkInfo,
  RebuildPreparation,
  SpawnOptions,
  SpawnRequest,
  SpawnResult,
} from '../driver';
import { ImageUnacceptable } from '../driver';
import { networkInfoFor } from '../guest';
import type { QemuHost } from './guest';
import {
  checkDiskFits,
  createOverlay,
  discardSavedState,
  launchGuest,
  powerStateOf,
  processAlive,
  queryStatus,
  removeGuestFiles,
  requireRecord,
  rootDiskFor,
  stopProcess,
  toGuest,
  waitForBoot,
} from './guest';
import type { GuestRecord } from './layout';

export function allocateNetworks(instanceId: string): NetworkInfo {
  return networkInfoFor(instanceId);
}

export function prepareBlockDevices(flavor: GuestFlavor, image: GuestImage): BlockDeviceInfo {
  checkDiskFits(flavor, image);
  return rootDiskFor(flavor, image);
}

/** ImageUnacceptable (the build aborts) when the image has no base here. */
async function requireBase(h: QemuHost, image: GuestImage): Promise<void> {
  try {
    await access(h.layout.base(image.name));
  } catch {
    throw new ImageUnacceptable(
      `Image ${image.name} is unacceptable to the hypervisor on ${h.host}: no base image ${h.layout.base(image.name)} (scripts/build-guest-images.sh builds them)`
    );
  }
}

/**
 * Launches the record's guest and waits for its boot line, holding a heavy-step slot (a boot costs about
 * 3 CPU-seconds under TCG). On failure the process is killed; the caller decides about the files.
 */
async function boot(h: QemuHost, dir: string, record: GuestRecord, options: SpawnOptions = {}): Promise<void> {
  const { signal, onProgress } = options;
  await h.limits.hold(
    signal,
    () => onProgress?.(1),
    async () => {
      const { consoleOffset } = await launchGuest(h, dir, record);
      try {
        await waitForBoot(h, dir, record, consoleOffset, { signal, onProgress });
      } catch (err) {
        await stopProcess(h, dir, record).catch(() => undefined);
        throw err;
      }
    }
  );
}

/**
 * Nova's spawn: a qcow2 overlay on the image's base, the guest launched, running and through its boot
 * line within the bound (else a DriverError, which reschedules, with the process and files removed). A
 * spawn of an instance whose guest was made already returns it (started if it was off): never two. A
 * half-made guest of a run that died is taken over.
 */
export async function spawn(h: QemuHost, request: SpawnRequest, options: SpawnOptions = {}): Promise<SpawnResult> {
  const { signal, onProgress } = options;
  const { instanceId } = request;
  signal?.throwIfAborted();
  checkDiskFits(request.flavor, request.image);
  const dir = h.layout.instanceDir(instanceId);
  const existing = await h.layout.readRecord(dir);
  if (existing?.status === 'active') {
    if (!(await processAlive(existing))) await boot(h, dir, existing, options);
    onProgress?.(100);
    return { guest: toGuest(existing, await powerStateOf(h, existing)), created: false };
  }
  if (existing?.status === 'incoming' || existing?.status === 'outgoing')
    throw new HypervisorBusy(h.host, `instance ${instanceId} is in a live migration here`);
  if (existing) await stopProcess(h, dir, existing);
  await requireBase(h, request.image);
  onProgress?.(0);

  const spawnId = randomUUID();
  const record: GuestRecord = {
    version: 1,
    instanceId,
    name: request.name,
    host: h.host,
    status: 'spawning',
    opId: spawnId,
    flavor: pickFlavor(request.flavor),
    image: { name: request.image.name, sizeGb: request.image.sizeGb },
    network: networkInfoFor(instanceId),
    blockDevices: rootDiskFor(request.flavor, request.image),
    createdAt: existing?.createdAt ?? new Date().toISOString(),
    ...(request.adminPassword !== undefined ? { adminPasswordSet: true } : {}),
    ...(request.userData !== undefined
      ? { userDataSha256: createHash('sha256').update(request.userData).digest('hex') }
      : {}),
    process: null,
  };
  await mkdir(dir, { recursive: true });
  try {
    await createOverlay(h, dir, request.flavor, request.image, request.ownDisk);
    await h.layout.writeRecord(dir, record);
    await boot(h, dir, record, options);
    const current = await h.layout.readRecord(dir);
    // NOTE(nova): an instance deleted during its build ends the build with InstanceNotFound.
    if (!current) throw new InstanceNotFound(instanceId);
    record.status = 'active';
    await h.layout.writeRecord(dir, record);
  } catch (err) {
    await discardHalfMade(h, dir, spawnId);
    throw err;
  }
  onProgress?.(100);
  return { guest: toGuest(record, PowerState.Running), created: true };
}

function pickFlavor(flavor: GuestFlavor): GuestFlavor {
  return { name: flavor.name, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb };
}

/** Tears down the half-made guest of this spawn run (not a newer run's), its process and files. */
async function discardHalfMade(h: QemuHost, dir: string, spawnId: string): Promise<void> {
  const record = await h.layout.readRecord(dir).catch(() => undefined);
  if (record && (record.opId !== spawnId || record.status !== 'spawning')) return;
  if (record) await stopProcess(h, dir, record).catch(() => undefined);
  await rm(h.layout.disk(dir), { force: true });
  await removeGuestFiles(h, dir);
}

/**
 * Nova's destroy: the guest's QEMU quit (then SIGKILL by pid) and its files removed, the moved-aside
 * copy of a resize too; `false` when this host had no guest of the instance. Idempotent.
 */
export async function destroy(h: QemuHost, instanceId: string): Promise<boolean> {
  let existed = false;
  for (const dir of [h.layout.instanceDir(instanceId), h.layout.resizeDir(instanceId)]) {
    const record = await h.layout.readRecord(dir);
    if (!record) continue;
    existed = true;
    await stopProcess(h, dir, record);
    await removeGuestFiles(h, dir);
  }
  return existed;
}

/** Sends the ACPI power button (`system_powerdown`) and returns the power state right after, without waiting. */
export async function requestShutdown(h: QemuHost, instanceId: string): Promise<PowerState> {
  const record = await requireRecord(h, instanceId);
  if (!record.process || !(await processAlive(record))) return PowerState.Shutdown;
  const qmp = await h.monitors.get(record.process);
  await qmp.execute('system_powerdown', undefined, 5000).catch(() => undefined);
  return powerStateOf(h, record);
}

/** Forced power-off (virDomainDestroy): quit, then SIGTERM/SIGKILL by pid. Idempotent. */
export async function powerOff(h: QemuHost, instanceId: string): Promise<PowerState> {
  const record = await requireRecord(h, instanceId);
  const dir = h.layout.instanceDir(instanceId);
  await stopProcess(h, dir, record);
  // A suspended guest's saved memory goes with it (libvirt's destroy undefines its managed save).
  await discardSavedState(h, dir, record);
  return PowerState.Shutdown;
}

/**
 * Boots a stopped guest from the same disk (Nova's power_on is a hard reboot: a new QEMU process), and
 * waits for its boot line. A running guest stays running; a paused one is resumed.
 */
export async function powerOn(h: QemuHost, instanceId: string, options: SpawnOptions = {}): Promise<PowerState> {
  const record = await requireRecord(h, instanceId);
  const dir = h.layout.instanceDir(instanceId);
  if (record.process && (await processAlive(record))) {
    const status = await queryStatus(h, record.process);
    if (status === 'paused') await (await h.monitors.get(record.process)).execute('cont');
    if (status !== 'shutdown') return powerStateOf(h, record);
    await stopProcess(h, dir, record);
  }
  // A boot from the disk: a suspended guest's saved memory is stale from now on.
  await discardSavedState(h, dir, record);
  await boot(h, dir, record, options);
  return PowerState.Running;
}

export async function getPowerState(h: QemuHost, instanceId: string): Promise<PowerState> {
  return powerStateOf(h, await requireRecord(h, instanceId));
}

/**
 * Every guest whose record names this host, by instance id: a resize's copy moved aside included (off),
 * as the fake lists it, so the host's reconciliation sees it.
 */
/** Every guest's power state by instance id, its moved-aside (`_resize`) copy left out. */
export async function getPowerStates(h: QemuHost): Promise<Record<string, PowerState>> {
  const states: Record<string, PowerState> = {};
  for (const dir of await h.layout.ownedDirs()) {
    if (dir.endsWith('_resize')) continue;
    const record = await h.layout.readRecord(dir).catch(() => undefined);
    if (record) states[record.instanceId] = await powerStateOf(h, record);
  }
  return states;
}

export async function listGuests(h: QemuHost): Promise<Guest[]> {
  const guests: Guest[] = [];
  for (const dir of await h.layout.ownedDirs()) {
    const record = await h.layout.readRecord(dir).catch(() => undefined);
    if (record) guests.push(toGuest(record, await powerStateOf(h, record)));
  }
  return guests.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
}

/**
 * Nova's rebuild_block_device_mapping for a rebuild (the guest is here) or an evacuation (it is not):
 * checks the image fits first (leaving the guest as it was), then destroys the guest here and deletes its
 * disk, so the spawn that follows makes a new overlay from the new image (the boot counter restarts).
 */
export async function prepareRebuild(
  h: QemuHost,
  instanceId: string,
  flavor: GuestFlavor,
  image: GuestImage
): Promise<RebuildPreparation> {
  checkDiskFits(flavor, image);
  await requireBase(h, image);
  const dir = h.layout.instanceDir(instanceId);
  const record = await h.layout.readRecord(dir);
  if (record) {
    await stopProcess(h, dir, record);
    await h.layout.removeRecord(dir);
  }
  // An evacuated guest's source may still run on the old disk: unlinking leaves it its open file.
  await rm(h.layout.disk(dir), { force: true });
  return {
    removedGuest: record !== undefined,
    network: networkInfoFor(instanceId),
    blockDevices: rootDiskFor(flavor, image),
  };
}
