/**
 * The fake hypervisor's guest records (`FakeGuest`: the driver-neutral `Guest` plus the fake's own
 * bookkeeping), their networks, block devices and the host's snapshots, and the steps' helpers on them.
 * They persist one file per instance (./guest-files.ts), so a restarted compute worker still knows what
 * runs on its host. A cooperative guest's shutdown is evaluated lazily from timestamps whenever a record
 * is read.
 */

import { z } from 'zod';

import { InstanceNotFound } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import type { Guest, GuestFlavor, GuestImage } from '../driver';
import { BlockDeviceInfoSchema, FlavorDiskSmallerThanImage, GuestSchema, NetworkInfoSchema } from '../driver';

/** Lines of console a fake guest keeps (its oldest go first), so a guest's file stays small. */
export const CONSOLE_LINES_KEPT = 50;

/** The fake's record of a guest: what every driver reports, plus the fake's own bookkeeping. */
export const FakeGuestSchema = GuestSchema.extend({
  /**
   * `spawning` while a spawn is under way (a half-made guest); `active` once it completed; `migrating`:
   * the destination's guest of a live migration under way (receiving memory, not yet running).
   */
  status: z.enum(['spawning', 'active', 'migrating']),
  /** The spawn run (or migration) that owns the guest, so a stale run never tears down a newer one. */
  spawnId: z.string(),
  /** Epoch ms of the first ACPI shutdown request a cooperative guest is acting on; null when none. */
  shutdownRequestedAt: z.number().nullable(),
  /** Boots of this guest's disk (a real guest counts them on its disk): 1 after a spawn, +1 per power-on. */
  boots: z.number().int().nonnegative().default(0),
  /** The guest's record of events, one line each (what getConsoleOutput returns). */
  console: z.array(z.string()).default([]),
  /**
   * A suspended guest's memory "saved" on this host (its flavor's memory, when): what resume restores.
   * Absent or null when none is saved; a forced power-off or a boot discards it.
   */
  savedMemory: z.object({ at: z.number(), memoryMb: z.number() }).nullable().optional(),
  /** The live migration whose switch-over paused this (source) guest, until its rollback or removal. */
  switchedOverFor: z.string().optional(),
});
export type FakeGuest = z.infer<typeof FakeGuestSchema>;

/** Images this host wrote (snapshots), by name: whose disk, at how many boots, when. */
export const SnapshotsSchema = z.record(
  z.string(),
  z.object({ instanceId: z.string(), boots: z.number().int(), at: z.number(), sizeGb: z.number() })
);
export type Snapshots = z.infer<typeof SnapshotsSchema>;

/** A host's whole state (what listing reads; the layout of the `guests.json` before one file per instance). */
export const HostStateSchema = z.object({
  version: z.literal(1),
  host: z.string(),
  guests: z.record(z.string(), FakeGuestSchema),
  networks: z.record(z.string(), NetworkInfoSchema),
  blockDevices: z.record(z.string(), BlockDeviceInfoSchema),
  snapshots: SnapshotsSchema.default({}),
});
export type HostState = z.infer<typeof HostStateSchema>;

/**
 * One instance's records, what a step reads and changes: its guest (by its id), the guest a resize moved
 * aside (by asideKey), its port and its disks, each under the instance's id.
 */
export type InstanceState = Pick<HostState, 'guests' | 'networks' | 'blockDevices'>;

/** Applies a cooperative shutdown that has completed by `at`. */
export function settleGuest(guest: FakeGuest, at: number, shutdownSeconds: number): void {
  if (guest.powerState !== PowerState.Running || guest.shutdownRequestedAt === null) return;
  const done = guest.shutdownRequestedAt + shutdownSeconds * 1000;
  if (at >= done) {
    guest.powerState = PowerState.Shutdown;
    guest.shutdownRequestedAt = null;
    logConsole(guest, done, 'acpid: power button: powering off');
  }
}

export function requireGuest(state: Pick<HostState, 'guests'>, instanceId: string): FakeGuest {
  const guest = state.guests[instanceId];
  if (!guest) throw new InstanceNotFound(instanceId);
  return guest;
}

/** Runs the guest: a stopped one boots (its boot counter goes up, a boot line on its console); a paused one resumes. */
export function powerOnGuest(guest: FakeGuest, at: number): void {
  if (guest.powerState === PowerState.Running) {
    guest.shutdownRequestedAt = null;
    return;
  }
  if (guest.powerState === PowerState.Paused) logConsole(guest, at, 'resumed');
  else bootGuest(guest, at);
  guest.powerState = PowerState.Running;
  guest.shutdownRequestedAt = null;
}

/** The guest boots from its disk: running, its boot counter up by one, its boot line on the console. */
export function bootGuest(guest: FakeGuest, at: number): void {
  guest.boots += 1;
  guest.savedMemory = null;
  guest.powerState = PowerState.Running;
  guest.shutdownRequestedAt = null;
  // The boot line of the project's real guest images (scripts/build-guest-images.sh), so a test reads
  // both drivers' consoles the same way.
  logConsole(guest, at, `GUEST-BOOT boot=${guest.boots} image=${guest.image.name}`);
}

/** Appends one event to the guest's console, keeping the last CONSOLE_LINES_KEPT lines. */
export function logConsole(guest: FakeGuest, at: number, line: string): void {
  guest.console.push(`[${new Date(at).toISOString()}] ${line}`);
  if (guest.console.length > CONSOLE_LINES_KEPT) guest.console.splice(0, guest.console.length - CONSOLE_LINES_KEPT);
}

/** The driver-neutral view of a fake guest (what listGuests and spawn report, over the wire). */
export function publicGuest(guest: FakeGuest): Guest {
  const {
    status: _status,
    spawnId: _spawnId,
    shutdownRequestedAt: _at,
    boots: _boots,
    console: _console,
    savedMemory: _saved,
    switchedOverFor: _switched,
    ...rest
  } = guest;
  return { ...rest };
}

/** Where a migrated-away guest waits for confirm or revert (libvirt's `<instance dir>_resize`). */
export function asideKey(instanceId: string): string {
  return `${instanceId}_resize`;
}

/** Removes an instance's port and disks from the host. */
export function forgetResources(state: Pick<HostState, 'networks' | 'blockDevices'>, instanceId: string): void {
  delete state.networks[instanceId];
  delete state.blockDevices[instanceId];
}

export function checkDiskFits(flavor: GuestFlavor, image: GuestImage): void {
  // NOTE(nova): a root disk of 0 is sized to the image, so only a non-zero disk can be too small.
  if (flavor.diskGb > 0 && image.sizeGb > flavor.diskGb)
    throw new FlavorDiskSmallerThanImage(flavor.diskGb, image.sizeGb);
}

/** The flavor and image fields a guest keeps (a full catalogue entry carries more). */
export function guestFlavorImage(flavor: GuestFlavor, image: GuestImage): Pick<FakeGuest, 'flavor' | 'image'> {
  return {
    flavor: { name: flavor.name, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb },
    image: { name: image.name, sizeGb: image.sizeGb },
  };
}

export { networkInfoFor, rootDiskFor } from '../guest';
