/**
 * The fake hypervisor's persisted guests: `<stateDir>/<host>/guests.json` holds the guests (the fake's own
 * record, `FakeGuest`: the driver-neutral `Guest` plus the fake's bookkeeping), their networks and block
 * devices, so a restarted compute worker still knows what runs on its host. Written whole through temp +
 * rename (never torn), read-modify-write under the file's lock. A cooperative guest's shutdown is
 * evaluated lazily from timestamps whenever the file is read.
 *
 * The file holds every guest of the host and each build step reads and rewrites it, so what a step costs
 * grows with the host's guests: the store keeps the text it last read or wrote, with the file's identity
 * then (inode, size, mtime), and while the file is still that one a read takes the kept text (one stat,
 * no read, no validation: the text was validated or written by this store), and a write compares with it
 * instead of serialising the state before the change. Any other writer (a temp + rename, or a rewrite in
 * place) changes the identity, and the file is read and validated again.
 */

import { stat } from 'node:fs/promises';

import { z } from 'zod';

import { InstanceNotFound } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import type { Guest, GuestFlavor, GuestImage } from '../driver';
import { BlockDeviceInfoSchema, FlavorDiskSmallerThanImage, GuestSchema, NetworkInfoSchema } from '../driver';
import { readJsonFile, withFileLock, writeTextFileAtomic } from './json-file';

/** Lines of console a fake guest keeps (its oldest go first), so guests.json stays small at scale. */
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

const HostStateSchema = z.object({
  version: z.literal(1),
  host: z.string(),
  guests: z.record(z.string(), FakeGuestSchema),
  networks: z.record(z.string(), NetworkInfoSchema),
  blockDevices: z.record(z.string(), BlockDeviceInfoSchema),
  /** Images this host wrote (snapshots), by name: whose disk, at how many boots, when. */
  snapshots: z
    .record(
      z.string(),
      z.object({ instanceId: z.string(), boots: z.number().int(), at: z.number(), sizeGb: z.number() })
    )
    .default({}),
});
export type HostState = z.infer<typeof HostStateSchema>;

export class GuestStore {
  constructor(
    private readonly host: string,
    /** `<stateDir>/<host>/guests.json` */
    readonly file: string,
    private readonly shutdownSeconds: number,
    private readonly now: () => number
  ) {}

  /** The state with shutdowns that completed by now applied. */
  async read(): Promise<HostState> {
    const { state } = await this.load();
    this.settle(state, this.now());
    return state;
  }

  /** Read-modify-write of guests.json under the file's lock; written back only when something changed. */
  async mutate<T>(change: (state: HostState, at: number) => T): Promise<T> {
    return withFileLock(this.file, async () => {
      const { state, text: before } = await this.load();
      const at = this.now();
      this.settle(state, at);
      const result = change(state, at);
      // Compact, and serialised once: the file holds every guest of the host and is rewritten by each
      // step of a build, so its size is what each write costs.
      const after = JSON.stringify(state);
      if (after !== before) {
        await writeTextFileAtomic(this.file, `${after}\n`);
        await this.keep(after);
      }
      return result;
    });
  }

  /** Applies every cooperative shutdown that has completed by `at`. */
  settle(state: HostState, at: number): void {
    for (const guest of Object.values(state.guests)) settleGuest(guest, at, this.shutdownSeconds);
  }

  /** The state as the file holds it (a fresh copy, the caller's to change) and its compact text. */
  private async load(): Promise<{ state: HostState; text: string }> {
    const kept = keptTexts.get(this.file);
    if (kept !== undefined && kept.identity === (await identityOf(this.file)))
      return { state: JSON.parse(kept.text) as HostState, text: kept.text };
    const raw = await readJsonFile(this.file);
    if (raw === undefined) {
      const empty: HostState = {
        version: 1,
        host: this.host,
        guests: {},
        networks: {},
        blockDevices: {},
        snapshots: {},
      };
      return { state: empty, text: JSON.stringify(empty) };
    }
    const parsed = HostStateSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`corrupt guest state ${this.file}: ${z.prettifyError(parsed.error)}`);
    const text = JSON.stringify(parsed.data);
    await this.keep(text);
    return { state: parsed.data, text };
  }

  /** Keeps `text` as what the file holds now (read or just written by this store). */
  private async keep(text: string): Promise<void> {
    const identity = await identityOf(this.file);
    if (identity === undefined) keptTexts.delete(this.file);
    else keptTexts.set(this.file, { identity, text });
  }
}

/** The compact text of each guests.json as this process last read or wrote it, with the file's identity then. */
const keptTexts = new Map<string, { identity: string; text: string }>();

/** Which file is at `file` now (inode, size, mtime in ns): any rewrite changes it; undefined when absent. */
async function identityOf(file: string): Promise<string | undefined> {
  try {
    const s = await stat(file, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

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

export function requireGuest(state: HostState, instanceId: string): FakeGuest {
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
export function forgetResources(state: HostState, instanceId: string): void {
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
