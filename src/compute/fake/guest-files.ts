/**
 * The fake hypervisor's guests on disk, one small file per instance: `<stateDir>/<host>/guests/<id>.json`
 * holds the instance's guest (the fake's own record, `FakeGuest`), the guest a resize moved aside, its
 * port and its disks; `<stateDir>/<host>/snapshots.json` the images the host wrote. A step reads and
 * writes only its own instance's file, so what it costs does not grow with the host's guests. Each file
 * is written whole through temp + rename (never torn), read-modify-write under its lock; an instance that
 * holds nothing any more has no file. Listing the host's guests reads the folder.
 *
 * The store keeps the text of each file as it last read or wrote it, with the file's identity then
 * (inode, size, mtime): while the file is still that one, a read is one `stat` (no read, no validation).
 * Any other writer (a temp + rename, or a rewrite in place) changes the identity, and the file is read
 * and validated again.
 *
 * A host folder of the layout before (every guest in one `guests.json`) is migrated on its first open by
 * this process: each instance's records written to its own file, then `guests.json` renamed to
 * `guests.json.migrated`. A crash midway leaves `guests.json` in place, and the next open migrates again.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { readdir, rename } from 'node:fs/promises';
import path from 'node:path';

import { z } from 'zod';

import { BlockDeviceInfoSchema, NetworkInfoSchema } from '../driver';
import type { FakeGuest, HostState, InstanceState, Snapshots } from './guest-store';
import { asideKey, FakeGuestSchema, HostStateSchema, settleGuest, SnapshotsSchema } from './guest-store';
import { readJsonFile, removeFile, withFileLock, writeTextFileAtomic } from './json-file';

const InstanceFileSchema = z.object({
  version: z.literal(1),
  instanceId: z.string(),
  /** The instance's guest (by its id) and the one a resize moved aside (by asideKey). */
  guests: z.record(z.string(), FakeGuestSchema),
  networks: z.record(z.string(), NetworkInfoSchema),
  blockDevices: z.record(z.string(), BlockDeviceInfoSchema),
});

/** The folder of a host's instance files. */
export function guestsDir(hostDir: string): string {
  return path.join(hostDir, 'guests');
}

/** An instance's file; the id escaped, so that no id names a path outside the folder. */
function instanceFile(hostDir: string, instanceId: string): string {
  return path.join(guestsDir(hostDir), `${encodeURIComponent(instanceId)}.json`);
}

export class GuestStore {
  /** `<stateDir>/<host>/snapshots.json` */
  readonly snapshotsFile: string;

  constructor(
    private readonly host: string,
    /** `<stateDir>/<host>` */
    readonly hostDir: string,
    private readonly shutdownSeconds: number,
    private readonly now: () => number
  ) {
    this.snapshotsFile = path.join(hostDir, 'snapshots.json');
  }

  /** Every instance's records and the snapshots, with shutdowns that completed by now applied. */
  async read(): Promise<HostState> {
    await this.open();
    const state: HostState = { version: 1, host: this.host, guests: {}, networks: {}, blockDevices: {}, snapshots: {} };
    let names: string[];
    try {
      names = await readdir(guestsDir(this.hostDir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      names = [];
    }
    // Only the instance files: a temp file left by a crash mid-write does not end in .json.
    const files = names
      .filter((name) => name.endsWith('.json'))
      .map((name) => path.join(guestsDir(this.hostDir), name));
    const [texts, snapshots] = await Promise.all([
      Promise.all(files.map((file) => loadText(file, InstanceFileSchema))),
      this.readSnapshots(),
    ]);
    for (const text of texts) {
      if (text === undefined) continue; // removed since the listing
      const one = JSON.parse(text) as z.infer<typeof InstanceFileSchema>;
      Object.assign(state.guests, one.guests);
      Object.assign(state.networks, one.networks);
      Object.assign(state.blockDevices, one.blockDevices);
    }
    state.snapshots = snapshots;
    const at = this.now();
    for (const guest of Object.values(state.guests)) settleGuest(guest, at, this.shutdownSeconds);
    return state;
  }

  /** One instance's records (its guest, the one moved aside, its port, its disks), settled by now. */
  async readInstance(instanceId: string): Promise<InstanceState> {
    await this.open();
    const { state } = await this.loadInstance(instanceId);
    const at = this.now();
    for (const guest of Object.values(state.guests)) settleGuest(guest, at, this.shutdownSeconds);
    return state;
  }

  /**
   * Read-modify-write of one instance's file under its lock; written back only when something changed,
   * removed when the instance holds nothing any more. `change` may touch only that instance's records.
   */
  async mutate<T>(instanceId: string, change: (state: InstanceState, at: number) => T): Promise<T> {
    await this.open();
    const file = instanceFile(this.hostDir, instanceId);
    return withFileLock(file, async () => {
      const { state, text: before } = await this.loadInstance(instanceId);
      const at = this.now();
      for (const guest of Object.values(state.guests)) settleGuest(guest, at, this.shutdownSeconds);
      const result = change(state, at);
      checkOwnRecords(instanceId, state);
      const empty =
        Object.keys(state.guests).length +
          Object.keys(state.networks).length +
          Object.keys(state.blockDevices).length ===
        0;
      const after = empty ? undefined : JSON.stringify({ version: 1, instanceId, ...state });
      if (after === before) return result;
      if (after === undefined) await removeFile(file);
      else await writeTextFileAtomic(file, `${after}\n`);
      keep(file, after);
      return result;
    });
  }

  /** The images this host wrote, by name. */
  async readSnapshots(): Promise<Snapshots> {
    await this.open();
    const text = await loadText(this.snapshotsFile, SnapshotsSchema);
    return text === undefined ? {} : (JSON.parse(text) as Snapshots);
  }

  /** Read-modify-write of the host's snapshots under the file's lock. */
  async mutateSnapshots<T>(change: (snapshots: Snapshots) => T | Promise<T>): Promise<T> {
    await this.open();
    return withFileLock(this.snapshotsFile, async () => {
      const snapshots = await this.readSnapshots();
      const before = JSON.stringify(snapshots);
      const result = await change(snapshots);
      const after = JSON.stringify(snapshots);
      if (after !== before) {
        await writeTextFileAtomic(this.snapshotsFile, `${after}\n`);
        keep(this.snapshotsFile, after);
      }
      return result;
    });
  }

  private async loadInstance(instanceId: string): Promise<{ state: InstanceState; text: string | undefined }> {
    const text = await loadText(instanceFile(this.hostDir, instanceId), InstanceFileSchema);
    if (text === undefined) return { state: { guests: {}, networks: {}, blockDevices: {} }, text };
    const { guests, networks, blockDevices } = JSON.parse(text) as z.infer<typeof InstanceFileSchema>;
    return { state: { guests, networks, blockDevices }, text };
  }

  /** Migrates the host's `guests.json` of the layout before, once per process and host folder. */
  private open(): Promise<void> {
    let opening = opened.get(this.hostDir);
    if (opening === undefined) {
      opening = migrateLegacy(this.hostDir);
      opened.set(this.hostDir, opening);
      opening.catch(() => opened.delete(this.hostDir));
    }
    return opening;
  }
}

/** Host folders this process opened (their `guests.json`, if any, migrated). */
const opened = new Map<string, Promise<void>>();

/** Throws when a step wrote a record that belongs to another instance (it would land in the wrong file). */
function checkOwnRecords(instanceId: string, state: InstanceState): void {
  const stray = [
    ...Object.keys(state.guests).filter((key) => key !== instanceId && key !== asideKey(instanceId)),
    ...Object.keys(state.networks).filter((key) => key !== instanceId),
    ...Object.keys(state.blockDevices).filter((key) => key !== instanceId),
  ];
  if (stray.length > 0) throw new Error(`a step on instance ${instanceId} wrote records of ${stray.join(', ')}`);
}

/** Writes each instance's records of `<hostDir>/guests.json` to its own file, then renames guests.json. */
async function migrateLegacy(hostDir: string): Promise<void> {
  const legacy = path.join(hostDir, 'guests.json');
  const raw = await readJsonFile(legacy);
  if (raw === undefined) return;
  const parsed = HostStateSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`corrupt guest state ${legacy}: ${z.prettifyError(parsed.error)}`);
  const old = parsed.data;
  const byInstance = new Map<string, InstanceState>();
  const of = (id: string) => {
    let one = byInstance.get(id);
    if (one === undefined) byInstance.set(id, (one = { guests: {}, networks: {}, blockDevices: {} }));
    return one;
  };
  for (const [key, guest] of Object.entries(old.guests))
    of(key === asideKey(guest.instanceId) ? guest.instanceId : key).guests[key] = guest;
  for (const [key, network] of Object.entries(old.networks)) of(key).networks[key] = network;
  for (const [key, devices] of Object.entries(old.blockDevices)) of(key).blockDevices[key] = devices;
  for (const [instanceId, state] of byInstance) {
    const file = instanceFile(hostDir, instanceId);
    const text = JSON.stringify({ version: 1, instanceId, ...state });
    await writeTextFileAtomic(file, `${text}\n`);
    keep(file, text);
  }
  if (Object.keys(old.snapshots).length > 0) {
    const file = path.join(hostDir, 'snapshots.json');
    await writeTextFileAtomic(file, `${JSON.stringify(old.snapshots)}\n`);
  }
  await rename(legacy, `${legacy}.migrated`);
}

/** The compact text of each file as this process last read or wrote it, with the file's identity then. */
const keptTexts = new Map<string, { identity: string; text: string }>();

/**
 * The file's compact text, validated against `schema` when it is not the one kept; undefined when the
 * file is absent. The identity is taken before the read: a file replaced meanwhile is read again next time.
 */
async function loadText(file: string, schema: z.ZodType): Promise<string | undefined> {
  const identity = identityOf(file);
  if (identity === undefined) {
    keptTexts.delete(file);
    return undefined;
  }
  const kept = keptTexts.get(file);
  if (kept?.identity === identity) return kept.text;
  const raw = await readJsonFile(file);
  if (raw === undefined) return undefined;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new Error(`corrupt guest state ${file}: ${z.prettifyError(parsed.error)}`);
  const text = JSON.stringify(parsed.data);
  keptTexts.set(file, { identity, text });
  return text;
}

/** Keeps `text` as what the file holds now (just written by this store); undefined: the file is gone. */
function keep(file: string, text: string | undefined): void {
  const identity = text === undefined ? undefined : identityOf(file);
  if (identity === undefined || text === undefined) keptTexts.delete(file);
  else keptTexts.set(file, { identity, text });
}

/**
 * Which file is at `file` now (inode, size, mtime in ns): any rewrite changes it; undefined when absent.
 * A synchronous `stat`: on a local file it takes a microsecond or two, where the promise's round trip
 * through libuv's thread pool costs about ten times that in CPU, and a step or a listing makes one per file.
 */
function identityOf(file: string): string | undefined {
  const s = statSync(file, { bigint: true, throwIfNoEntry: false });
  return s === undefined ? undefined : `${s.ino}:${s.size}:${s.mtimeNs}`;
}

/**
 * Every guest record of a host folder by key (for tests and checkers that read the files beside a
 * running worker): the instance files, and a `guests.json` of the layout before not yet migrated.
 */
export function readHostGuestsSync(hostDir: string): Record<string, FakeGuest> {
  const guests: Record<string, FakeGuest> = {};
  const legacy = path.join(hostDir, 'guests.json');
  if (existsSync(legacy))
    Object.assign(guests, (JSON.parse(readFileSync(legacy, 'utf8')) as { guests: Record<string, FakeGuest> }).guests);
  const dir = guestsDir(hostDir);
  if (!existsSync(dir)) return guests;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    try {
      Object.assign(guests, (JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as HostState).guests);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // removed since the listing
    }
  }
  return guests;
}
