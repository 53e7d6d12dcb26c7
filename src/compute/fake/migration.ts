/**
 * The fake hypervisor's resize and cold-migration steps: Nova's virt driver calls of a move. Like libvirt,
 * the source keeps the migrated guest's files aside as `<instanceId>_resize` (powered off) until the resize
 * is confirmed (then they are deleted) or reverted (then they are put back); the destination's guest
 * carries the migration id as its `spawnId`, which is what makes every step idempotent and safe on a
 * same-host resize (both guests on one host). Driver failures are DriverError or FlavorDiskSmallerThanImage;
 * the compute activities classify.
 */
import { performance } from 'node:perf_hooks';

import { PowerState } from '../../domain/instance';
import type {
  FinishMigrationRequest,
  FinishRevertMigrationRequest,
  InstanceRequest,
  MigrateDiskOptions,
  MigrateDiskRequest,
  MigrateDiskResult,
  MigrationRequest,
  PrepareResizeRequest,
  SpawnResult,
} from '../driver';
import { DriverError, ResizeRefused } from '../driver';
import type { FakeHost } from './build';
import { getPowerState, powerOff, requestShutdown } from './build';
import type { FakeGuest } from './guest-store';
import {
  asideKey,
  bootGuest,
  checkDiskFits,
  forgetResources,
  guestFlavorImage,
  logConsole,
  networkInfoFor,
  powerOnGuest,
  publicGuest,
  requireGuest,
  rootDiskFor,
} from './guest-store';
import { delay, runProgressClock, SPAWN_PROGRESS_INTERVAL_MS, throwIfAborted } from './spawn-clock';

export { asideKey };

/**
 * Checks that this host can take the instance (Nova's prep_resize on the destination): the image fits
 * the new flavor's root disk (FlavorDiskSmallerThanImage), and a same-host move changes the flavor
 * (DriverError, like Nova's UnableToMigrateToSelf). Writes nothing; an injected `prepResize.failNext`
 * fails it with a DriverError.
 */
export async function prepareResize(h: FakeHost, request: PrepareResizeRequest): Promise<void> {
  checkDiskFits(request.newFlavor, request.image);
  if (request.sourceHost === h.host && request.oldFlavor.name === request.newFlavor.name)
    throw new DriverError(`Unable to migrate instance ${request.instanceId} to the current host (${h.host})`);
  if (await h.faults.consumeResizeFault('prepResize'))
    throw new DriverError(`Resize claim failed on ${h.host}: injected fault (prepResize.failNext)`);
}

/**
 * The source's half of a move (Nova's migrate_disk_and_power_off): refuses to shrink the root disk
 * (before touching the guest), powers the guest off cleanly (an ACPI request, then a forced power-off
 * after `shutdownTimeoutSeconds`), transfers the disk over `spawnSeconds` with progress, then moves the
 * guest aside as `<instanceId>_resize`. Aborting (the signal) stops it with the guest powered off and
 * still in place. Idempotent: a guest already moved aside returns at once with `transferred: false`.
 */
export async function migrateDiskAndPowerOff(
  h: FakeHost,
  request: MigrateDiskRequest,
  options: MigrateDiskOptions
): Promise<MigrateDiskResult> {
  const { instanceId, migrationId, newFlavor } = request;
  const { signal, onProgress } = options;
  throwIfAborted(signal);
  const aside = asideKey(instanceId);
  const state = await h.guests.readInstance(instanceId);
  const current = state.guests[instanceId];
  const movedAside = state.guests[aside];
  if (movedAside && (!current || current.spawnId === migrationId)) {
    onProgress?.('transferring', 100);
    return { transferred: false, diskGb: movedAside.flavor.diskGb };
  }
  const guest = requireGuest(state, instanceId);
  // NOTE(nova): libvirt refuses to shrink a root disk (ResizeError "Unable to resize disk down.") before
  // it powers anything off, and the instance goes back to its old state.
  if (newFlavor.diskGb > 0 && guest.flavor.diskGb > newFlavor.diskGb)
    throw new ResizeRefused(
      `Unable to resize disk down: instance ${instanceId} has a ${guest.flavor.diskGb} GB root disk, flavor ${newFlavor.name} ${newFlavor.diskGb} GB`
    );
  const fail = await h.faults.consumeResizeFault('migrateDisk');

  if (guest.powerState === PowerState.Running) {
    onProgress?.('powering-off', 0);
    const deadline = performance.now() + options.shutdownTimeoutSeconds * 1000;
    let power = await requestShutdown(h, { instanceId });
    while (power === PowerState.Running && performance.now() < deadline) {
      await delay(Math.max(1, Math.min(SPAWN_PROGRESS_INTERVAL_MS, deadline - performance.now())), signal);
      onProgress?.('powering-off', 0);
      power = await getPowerState(h, { instanceId });
    }
    if (power === PowerState.Running) await powerOff(h, { instanceId });
  }

  await runProgressClock({
    totalMs: h.spawnSeconds * 1000,
    signal,
    onProgress: (percent) => onProgress?.('transferring', percent),
    strike: fail
      ? () =>
          Promise.reject(
            new DriverError(
              `Disk transfer of instance ${instanceId} from ${h.host} failed: injected fault (migrateDisk.failNext)`
            )
          )
      : undefined,
  });

  await h.guests.mutate(instanceId, (s, at) => {
    const g = s.guests[instanceId];
    if (!g || g.spawnId === migrationId) return;
    logConsole(g, at, `disk moved aside for migration ${migrationId}`);
    s.guests[aside] = g;
    delete s.guests[instanceId];
  });
  return { transferred: true, diskGb: guest.flavor.diskGb };
}

/**
 * The destination's half (Nova's finish_migration): creates the guest from the transferred disk with
 * the new flavor, on the instance's port, running only when `powerOn` (a stopped instance stays
 * stopped). Idempotent by migration id: the guest this migration made is returned (`created: false`).
 * A guest of the instance from anything else already here is a DriverError.
 */
export async function finishMigration(h: FakeHost, request: FinishMigrationRequest): Promise<SpawnResult> {
  const { instanceId, migrationId, flavor, image } = request;
  checkDiskFits(flavor, image);
  const existing = (await h.guests.readInstance(instanceId)).guests[instanceId];
  if (existing?.spawnId === migrationId) return { guest: publicGuest(existing), created: false };
  if (await h.faults.consumeResizeFault('finishResize'))
    throw new DriverError(`Hypervisor error while finishing the migration on ${h.host}: injected fault`);
  return h.guests.mutate(instanceId, (state, at): SpawnResult => {
    const current = state.guests[instanceId];
    if (current?.spawnId === migrationId) return { guest: publicGuest(current), created: false };
    if (current) throw new DriverError(`a guest of instance ${instanceId} already exists on ${h.host}`);
    const network = state.networks[instanceId] ?? networkInfoFor(instanceId);
    const blockDevices = rootDiskFor(flavor, image);
    const guest: FakeGuest = {
      instanceId,
      name: request.name,
      host: h.host,
      status: 'active',
      spawnId: migrationId,
      ...guestFlavorImage(flavor, image),
      powerState: PowerState.Shutdown,
      network,
      blockDevices,
      createdAt: new Date(at).toISOString(),
      shutdownRequestedAt: null,
      boots: 0,
      console: [`[${new Date(at).toISOString()}] disk received for migration ${migrationId}: flavor ${flavor.name}`],
    };
    if (request.powerOn) bootGuest(guest, at);
    state.guests[instanceId] = guest;
    state.networks[instanceId] = network;
    state.blockDevices[instanceId] = blockDevices;
    return { guest: publicGuest(guest), created: true };
  });
}

/**
 * Confirm on the source (Nova's confirm_migration): deletes the guest moved aside, and the instance's
 * port and disks here unless the instance lives on here (a same-host resize). Idempotent: false when
 * there was nothing to delete.
 */
export function confirmMigration(h: FakeHost, { instanceId }: InstanceRequest): Promise<boolean> {
  return h.guests.mutate(instanceId, (state) => {
    const aside = asideKey(instanceId);
    const existed = aside in state.guests;
    delete state.guests[aside];
    if (!(instanceId in state.guests)) forgetResources(state, instanceId);
    return existed;
  });
}

/**
 * Revert on the destination (Nova's revert_resize: destroy): deletes the guest this migration made here,
 * and the instance's port and disks unless its moved-aside guest is here too (a same-host resize).
 * Idempotent: false when there was no such guest.
 */
export function destroyMigrationTarget(h: FakeHost, { instanceId, migrationId }: MigrationRequest): Promise<boolean> {
  return h.guests.mutate(instanceId, (state) => {
    const guest = state.guests[instanceId];
    if (guest?.spawnId !== migrationId) return false;
    delete state.guests[instanceId];
    if (!(asideKey(instanceId) in state.guests)) forgetResources(state, instanceId);
    return true;
  });
}

/**
 * Finishes a revert (or a rollback) on the source (Nova's finish_revert_migration): puts the moved-aside
 * guest back with its port and disk (a same-host target of this migration still in the way is deleted
 * first) and powers it on when `powerOn`. Returns the guest's power state; InstanceNotFound when the
 * host has no guest of the instance at all. Idempotent.
 */
export function finishRevertMigration(
  h: FakeHost,
  { instanceId, migrationId, powerOn }: FinishRevertMigrationRequest
): Promise<PowerState> {
  return h.guests.mutate(instanceId, (state, at) => {
    const key = asideKey(instanceId);
    if (state.guests[instanceId]?.spawnId === migrationId) delete state.guests[instanceId];
    const aside = state.guests[key];
    if (aside) {
      if (state.guests[instanceId])
        throw new DriverError(`a guest of instance ${instanceId} already exists on ${h.host}`);
      state.guests[instanceId] = aside;
      delete state.guests[key];
      if (aside.network) state.networks[instanceId] = aside.network;
      if (aside.blockDevices) state.blockDevices[instanceId] = aside.blockDevices;
    }
    const guest = requireGuest(state, instanceId);
    if (powerOn) powerOnGuest(guest, at);
    return guest.powerState;
  });
}
