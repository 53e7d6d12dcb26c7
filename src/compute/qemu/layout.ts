/**
 * Where a QEMU guest's files live, and its record.
 *
 * `$DATA_DIR/instances/<instanceId>/` is shared by every host (Nova's shared instance path, as on NFS):
 *
 *   disk.qcow2           the root disk: a qcow2 overlay on the image's base (`<imageDir>/<image>.qcow2`)
 *   console.log          the serial console, appended to by every QEMU that runs the guest
 *   guest.<host>.json    the record of the guest on <host>: its owner, argv, pid, QMP sockets, the spawn or
 *                        migration it belongs to (one per host, so a live migration's source and
 *                        destination, both in this directory, each have theirs)
 *   qemu.<host>.pid      QEMU's own pidfile;  qemu.<host>.log  its stderr
 *   memory.<host>.state  a suspended guest's memory, saved by suspend (QEMU's migration stream), until resume
 *
 * `<instanceId>_resize/` is the source's directory moved aside by a resize or cold migration (Nova's
 * `_resize`), until confirm deletes it or revert moves it back. QMP sockets live in a short runtime
 * directory (`/tmp/cq-<uid>/<8 hex>.qmp`): a UNIX socket path must stay under 108 bytes.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { z } from 'zod';

import { BlockDeviceInfoSchema, GuestFlavorSchema, GuestImageSchema, NetworkInfoSchema } from '../driver';

/** A UNIX socket path's limit (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107;

export const GuestProcessSchema = z.object({
  pid: z.number().int().positive(),
  argv: z.array(z.string()),
  /** The worker's QMP monitor. */
  qmp: z.string(),
  /** A second monitor for tests and operators (every event goes to both). */
  testQmp: z.string(),
  startedAt: z.string(),
});
export type GuestProcess = z.infer<typeof GuestProcessSchema>;

export const GuestRecordSchema = z.object({
  version: z.literal(1),
  instanceId: z.string(),
  name: z.string(),
  /** The host that owns this guest (its compute worker drives it). */
  host: z.string(),
  /**
   * `spawning`: a spawn (or start) is launching it; `active`: made (running, or off when `process` is null);
   * `incoming`: a live migration's destination, receiving; `outgoing`: a live migration's source after the
   * switch-over, paused until post_live_migration quits it.
   */
  status: z.enum(['spawning', 'active', 'incoming', 'outgoing']),
  /** The spawn run or migration this guest belongs to (a stale run never tears down a newer one). */
  opId: z.string(),
  flavor: GuestFlavorSchema,
  image: GuestImageSchema,
  network: NetworkInfoSchema.nullable(),
  blockDevices: BlockDeviceInfoSchema.nullable(),
  createdAt: z.string(),
  adminPasswordSet: z.boolean().optional(),
  userDataSha256: z.string().optional(),
  /** The QEMU process; null while the guest is off. */
  process: GuestProcessSchema.nullable(),
  /** A live migration's source: the migration whose copy this host started. */
  outgoing: z.string().optional(),
  /** A live migration's destination: where it listens (`tcp:127.0.0.1:<port>`). */
  incomingUri: z.string().optional(),
  /** Set by a forced power-off, so an ACPI-powered-off guest and a destroyed one read the same. */
  stoppedAt: z.string().optional(),
  /**
   * Set once the guest's memory is saved in `memory.<host>.state` (suspend): with no process, the guest is
   * suspended, and resume starts a QEMU that loads it. Cleared by resume, a boot or a forced power-off.
   */
  suspendedAt: z.string().optional(),
  /** Set while a snapshot has the guest paused for its copy (./snapshot.ts), so a retry continues it. */
  pausedForSnapshot: z.string().optional(),
});
export type GuestRecord = z.infer<typeof GuestRecordSchema>;

export class Layout {
  readonly instancesDir: string;

  constructor(
    readonly dataDir: string,
    readonly host: string,
    readonly imageDir: string,
    readonly runtimeDir: string
  ) {
    this.instancesDir = path.join(dataDir, 'instances');
  }

  instanceDir(instanceId: string): string {
    return path.join(this.instancesDir, instanceId);
  }

  resizeDir(instanceId: string): string {
    return `${this.instanceDir(instanceId)}_resize`;
  }

  disk(dir: string): string {
    return path.join(dir, 'disk.qcow2');
  }

  console(dir: string): string {
    return path.join(dir, 'console.log');
  }

  record(dir: string, host = this.host): string {
    return path.join(dir, `guest.${host}.json`);
  }

  pidFile(dir: string, host = this.host): string {
    return path.join(dir, `qemu.${host}.pid`);
  }

  /** A suspended guest's saved memory (QEMU's migration stream), on this host. */
  savedState(dir: string, host = this.host): string {
    return path.join(dir, `memory.${host}.state`);
  }

  qemuLog(dir: string, host = this.host): string {
    return path.join(dir, `qemu.${host}.log`);
  }

  base(imageName: string): string {
    return path.join(this.imageDir, `${imageName}.qcow2`);
  }

  kernel(): string {
    return path.join(this.imageDir, 'vmlinuz');
  }

  initrd(): string {
    return path.join(this.imageDir, 'initrd.gz');
  }

  /** Two fresh, short QMP socket paths for one launch. */
  async newSockets(): Promise<{ qmp: string; testQmp: string }> {
    await mkdir(this.runtimeDir, { recursive: true, mode: 0o700 });
    const id = randomUUID().slice(0, 8);
    const qmp = path.join(this.runtimeDir, `${id}.qmp`);
    const testQmp = path.join(this.runtimeDir, `${id}.t.qmp`);
    if (testQmp.length > MAX_SOCKET_PATH)
      throw new Error(
        `QMP socket path ${testQmp} is longer than ${MAX_SOCKET_PATH} bytes: set QEMU_RUNTIME_DIR shorter`
      );
    return { qmp, testQmp };
  }

  async readRecord(dir: string, host = this.host): Promise<GuestRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.record(dir, host), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const parsed = GuestRecordSchema.safeParse(JSON.parse(text));
    if (!parsed.success)
      throw new Error(`corrupt guest record ${this.record(dir, host)}: ${z.prettifyError(parsed.error)}`);
    return parsed.data;
  }

  /** Written whole through a temp file and a rename: a reader or a restarted worker never sees a torn one. */
  async writeRecord(dir: string, record: GuestRecord): Promise<void> {
    await mkdir(dir, { recursive: true });
    const file = this.record(dir, record.host);
    const temp = `${file}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
    await writeFile(temp, `${JSON.stringify(record, null, 2)}\n`, 'utf8');
    await rename(temp, file);
  }

  async removeRecord(dir: string, host = this.host): Promise<void> {
    await rm(this.record(dir, host), { force: true });
    await rm(this.pidFile(dir, host), { force: true });
  }

  /** Every instance directory that holds a record of this host (`_resize` ones included). */
  async ownedDirs(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.instancesDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const owned: string[] = [];
    for (const name of names.sort()) {
      const dir = path.join(this.instancesDir, name);
      try {
        if ((await readdir(dir)).includes(`guest.${this.host}.json`)) owned.push(dir);
      } catch {
        // removed meanwhile, or not a directory
      }
    }
    return owned;
  }
}

/** The default runtime dir for QMP sockets: short, private to this user. */
export function defaultRuntimeDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return path.join(process.env.QEMU_RUNTIME_DIR ?? path.join(tmpdir(), `cq-${uid}`));
}
