/**
 * What every QEMU driver step shares: the host's context, its QMP connections, a guest's record and power
 * state, and launching, booting and stopping a guest's process.
 */
import { execFile } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { InstanceNotFound } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import type { Guest, GuestFlavor, GuestImage } from '../driver';
import { DriverError, FlavorDiskSmallerThanImage, rootDiskGb } from '../driver';
import type { Accel } from './accel';
import type { GuestProcess, GuestRecord, Layout } from './layout';
import type { HeavyStepLimits } from './limits';
import {
  connectWhenReady,
  fileSize,
  guestMarkers,
  isGuestProcess,
  killGuest,
  launchDetached,
  parseBootLine,
  qemuArgv,
  readFrom,
  signalGuest,
  tailLines,
  waitForExit,
} from './process';
import type { BootLine } from './process';
import { QmpClient, QmpUnavailable } from './qmp';

export const execFileAsync = promisify(execFile);

/** What the steps work on: one host's layout, accelerator, limits, settings and QMP connections. */
export interface QemuHost {
  readonly host: string;
  readonly layout: Layout;
  readonly accel: Accel;
  readonly limits: HeavyStepLimits;
  /** A guest's memory is its flavor's, at least MIN_MEMORY_MB and at most this. */
  readonly memoryCapMb: number;
  readonly vcpuCap: number;
  /** How long a launched guest may take to print its boot line. */
  readonly bootTimeoutMs: number;
  readonly monitors: Monitors;
  /** A resize's disk copy, bytes/s; undefined copies at full speed. */
  readonly diskCopyBytesPerSecond?: number | undefined;
}

/** Below this the Debian kernel does not unpack (a reset loop at -m 64). */
export const MIN_MEMORY_MB = 128;

export function guestMemoryMb(h: QemuHost, flavor: GuestFlavor): number {
  return Math.max(MIN_MEMORY_MB, Math.min(flavor.memoryMb, h.memoryCapMb));
}

export function guestVcpus(h: QemuHost, flavor: GuestFlavor): number {
  return Math.max(1, Math.min(flavor.vcpus, h.vcpuCap));
}

/**
 * The worker's QMP connections, one per QEMU (a monitor serves one client at a time), opened on first
 * use, so a restarted worker re-attaches lazily to the guests it finds.
 */
export class Monitors {
  private readonly open = new Map<string, Promise<QmpClient>>();

  get(proc: GuestProcess, timeoutMs = 3000): Promise<QmpClient> {
    const cached = this.open.get(proc.qmp);
    if (cached) {
      return cached.then(
        (c) => (c.isOpen ? c : this.connect(proc, timeoutMs)),
        () => this.connect(proc, timeoutMs)
      );
    }
    return this.connect(proc, timeoutMs);
  }

  private connect(proc: GuestProcess, timeoutMs: number): Promise<QmpClient> {
    const p = QmpClient.connect(proc.qmp, { greetingTimeoutMs: timeoutMs });
    this.open.set(proc.qmp, p);
    p.then(
      (c) => void c.closed.then(() => this.open.get(proc.qmp) === p && this.open.delete(proc.qmp)),
      () => this.open.get(proc.qmp) === p && this.open.delete(proc.qmp)
    );
    return p;
  }

  /** Adopts a connection made while launching. */
  put(proc: GuestProcess, client: QmpClient): void {
    const p = Promise.resolve(client);
    this.open.set(proc.qmp, p);
    void client.closed.then(() => this.open.get(proc.qmp) === p && this.open.delete(proc.qmp));
  }

  async drop(proc: GuestProcess): Promise<void> {
    const p = this.open.get(proc.qmp);
    this.open.delete(proc.qmp);
    if (p) await p.then((c) => c.close()).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((p) => p.then((c) => c.close()).catch(() => undefined)));
  }
}

export function markersOf(record: GuestRecord, proc: GuestProcess): string[] {
  return guestMarkers(record.instanceId, proc.qmp);
}

/** Is the record's QEMU still running (its pid, not a zombie, its command line)? */
export async function processAlive(record: GuestRecord): Promise<boolean> {
  const proc = record.process;
  return proc !== null && (await isGuestProcess(proc.pid, markersOf(record, proc)));
}

/** QEMU's run state to Nova's power state (libvirt's LIBVIRT_POWER_STATE, for QMP's statuses). */
export function powerStateOfStatus(status: string): PowerState {
  switch (status) {
    case 'running':
      return PowerState.Running;
    case 'paused':
    case 'inmigrate':
    case 'postmigrate':
    case 'finish-migrate':
    case 'prelaunch':
    case 'suspended':
    case 'restore-vm':
    case 'save-vm':
    case 'debug':
    case 'colo':
      return PowerState.Paused;
    case 'shutdown':
      return PowerState.Shutdown;
    case 'internal-error':
    case 'guest-panicked':
    case 'io-error':
      return PowerState.Crashed;
    default:
      return PowerState.NoState;
  }
}

export async function queryStatus(h: QemuHost, proc: GuestProcess): Promise<string> {
  const qmp = await h.monitors.get(proc);
  const r = await qmp.execute<{ status: string }>('query-status', undefined, 5000);
  return r.status;
}

/**
 * The guest's power state now: no live process is `shutdown` (`suspended` when its memory is saved); a
 * monitor that does not answer, `nostate`.
 */
export async function powerStateOf(h: QemuHost, record: GuestRecord): Promise<PowerState> {
  if (!record.process || !(await processAlive(record)))
    return record.suspendedAt !== undefined ? PowerState.Suspended : PowerState.Shutdown;
  try {
    return powerStateOfStatus(await queryStatus(h, record.process));
  } catch (err) {
    if (err instanceof QmpUnavailable && !(await processAlive(record))) return PowerState.Shutdown;
    return PowerState.NoState;
  }
}

/** The driver-neutral guest of a record. */
export function toGuest(record: GuestRecord, powerState: PowerState): Guest {
  return {
    instanceId: record.instanceId,
    name: record.name,
    host: record.host,
    flavor: record.flavor,
    image: record.image,
    powerState,
    network: record.network,
    blockDevices: record.blockDevices,
    createdAt: record.createdAt,
    ...(record.adminPasswordSet !== undefined ? { adminPasswordSet: record.adminPasswordSet } : {}),
    ...(record.userDataSha256 !== undefined ? { userDataSha256: record.userDataSha256 } : {}),
  };
}

export async function requireRecord(h: QemuHost, instanceId: string): Promise<GuestRecord> {
  const record = await h.layout.readRecord(h.layout.instanceDir(instanceId));
  if (!record) throw new InstanceNotFound(instanceId);
  return record;
}

// ----- disks -----

export function checkDiskFits(flavor: GuestFlavor, image: GuestImage): void {
  // NOTE(nova): a root disk of 0 is sized to the image, so only a non-zero disk can be too small.
  if (flavor.diskGb > 0 && image.sizeGb > flavor.diskGb)
    throw new FlavorDiskSmallerThanImage(flavor.diskGb, image.sizeGb);
}

/** Nova's Qcow2.create_image: a qcow2 overlay on the image's base, the flavor's root disk in size. */
export async function createOverlay(
  h: QemuHost,
  dir: string,
  flavor: GuestFlavor,
  image: GuestImage,
  ownDisk = false
): Promise<void> {
  const disk = h.layout.disk(dir);
  await rm(disk, { force: true });
  const base = h.layout.base(image.name);
  if (ownDisk) {
    // A whole copy (an unshelve's: the shelved image goes once the guest runs), grown to the root disk.
    await execFileAsync('qemu-img', ['convert', '-q', '-O', 'qcow2', base, disk])
      .then(() => execFileAsync('qemu-img', ['resize', '-q', disk, `${rootDiskGb(flavor, image)}G`]))
      .catch((err: Error) => {
        throw new DriverError(`qemu-img convert of ${base} to ${disk} on ${h.host} failed: ${err.message}`);
      });
    return;
  }
  await execFileAsync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    base,
    '-F',
    'qcow2',
    disk,
    `${rootDiskGb(flavor, image)}G`,
  ]).catch((err: Error) => {
    throw new DriverError(`qemu-img create of ${disk} on ${h.host} failed: ${err.message}`);
  });
}

/** Discards a suspended guest's saved memory (a boot, a forced power-off or a destroy makes it stale). */
export async function discardSavedState(h: QemuHost, dir: string, record: GuestRecord): Promise<void> {
  await rm(h.layout.savedState(dir), { force: true });
  await rm(`${h.layout.savedState(dir)}.tmp`, { force: true });
  if (record.suspendedAt === undefined) return;
  delete record.suspendedAt;
  await h.layout.writeRecord(dir, record);
}

/** Removes this host's files of a guest, and the directory once no host has a record in it. */
export async function removeGuestFiles(h: QemuHost, dir: string): Promise<void> {
  await rm(h.layout.savedState(dir), { force: true });
  await h.layout.removeRecord(dir);
  await rm(h.layout.qemuLog(dir), { force: true });
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  if (!names.some((n) => /^guest\..+\.json$/.test(n))) await rm(dir, { recursive: true, force: true });
}

// ----- processes -----

export interface LaunchOptions {
  incoming?: boolean;
}

/** Launches the record's guest from `dir` and writes its process into the record (before it boots). */
export async function launchGuest(
  h: QemuHost,
  dir: string,
  record: GuestRecord,
  options: LaunchOptions = {}
): Promise<{ proc: GuestProcess; consoleOffset: number }> {
  const { qmp, testQmp } = await h.layout.newSockets();
  const argv = qemuArgv({
    instanceId: record.instanceId,
    accel: h.accel,
    memoryMb: guestMemoryMb(h, record.flavor),
    vcpus: guestVcpus(h, record.flavor),
    kernel: h.layout.kernel(),
    initrd: h.layout.initrd(),
    disk: h.layout.disk(dir),
    console: h.layout.console(dir),
    qmp,
    testQmp,
    pidFile: h.layout.pidFile(dir),
    incoming: options.incoming,
  });
  const consoleOffset = await fileSize(h.layout.console(dir));
  const pid = launchDetached(argv, h.layout.qemuLog(dir));
  const proc: GuestProcess = { pid, argv, qmp, testQmp, startedAt: new Date().toISOString() };
  record.process = proc;
  delete record.stoppedAt;
  await h.layout.writeRecord(dir, record);
  try {
    const client = await connectWhenReady(qmp, pid, markersOf(record, proc), 15_000);
    h.monitors.put(proc, client);
  } catch (err) {
    const log = (await tailLines(h.layout.qemuLog(dir), 5)).join(' | ');
    await killGuest(pid, markersOf(record, proc)).catch(() => undefined);
    throw new DriverError(`QEMU for instance ${record.instanceId} on ${h.host} did not start: ${String(err)}; ${log}`);
  }
  return { proc, consoleOffset };
}

/**
 * Why a guest's QEMU is gone, for the error that says so: its own log's last lines, and the guest
 * kernel's panic when its console ends in one (with `panic=-1` and `-no-reboot` a panicking guest
 * kernel ends its QEMU and leaves QEMU's log empty; under TCG a guest kernel has been seen to panic
 * right after a live migration's switch-over, docs/real-guests.md).
 */
export async function whyExited(h: { layout: Layout }, dir: string): Promise<string> {
  const log = (await tailLines(h.layout.qemuLog(dir), 5).catch(() => [])).join(' | ');
  const console = await tailLines(h.layout.console(dir), 60).catch(() => []);
  const panic = console.find((line) => line.includes('Kernel panic - not syncing'));
  const fault = console.find((line) => /general protection fault|BUG: |Oops/.test(line));
  if (!panic) return log || 'QEMU logged nothing';
  return `its kernel panicked (${[fault, panic]
    .filter(Boolean)
    .map((l) => l!.replace(/^\[[ \d.]+\] /, ''))
    .join('; ')})${log ? `; QEMU: ${log}` : ''}`;
}

/**
 * Waits for the guest's boot line on its console (printed after `consoleOffset`), reporting progress.
 * DriverError when the process exits or the bound passes; the signal's reason when aborted.
 */
export async function waitForBoot(
  h: QemuHost,
  dir: string,
  record: GuestRecord,
  consoleOffset: number,
  options: { signal?: AbortSignal; onProgress?: (percent: number) => void } = {}
): Promise<BootLine> {
  const proc = record.process;
  if (!proc) throw new DriverError(`instance ${record.instanceId} has no process to boot`);
  const started = Date.now();
  for (;;) {
    options.signal?.throwIfAborted();
    const boot = parseBootLine(await readFrom(h.layout.console(dir), consoleOffset));
    if (boot) return boot;
    if (!(await processAlive(record)))
      throw new DriverError(
        `the guest of instance ${record.instanceId} exited while booting on ${h.host}: ${await whyExited(h, dir)}`
      );
    const elapsed = Date.now() - started;
    if (elapsed > h.bootTimeoutMs)
      throw new DriverError(
        `the guest of instance ${record.instanceId} did not boot within ${Math.round(h.bootTimeoutMs / 1000)} s on ${h.host}`
      );
    // About 4 s to the boot line under TCG; the bar creeps towards 95 % beyond that.
    options.onProgress?.(Math.max(1, Math.min(95, Math.round((elapsed / (elapsed + 4000)) * 100))));
    await sleep(100);
  }
}

/**
 * Stops the record's QEMU (virDomainDestroy): `quit` over QMP, then SIGTERM and SIGKILL by pid. The
 * record's process is cleared. Idempotent.
 */
export async function stopProcess(h: QemuHost, dir: string, record: GuestRecord): Promise<void> {
  const proc = record.process;
  if (proc) {
    const markers = markersOf(record, proc);
    if (await isGuestProcess(proc.pid, markers)) {
      try {
        const qmp = await h.monitors.get(proc, 2000);
        await qmp.execute('quit', undefined, 2000).catch(() => undefined);
      } catch {
        // the monitor does not answer: signals below
      }
      if (!(await waitForExit(proc.pid, markers, 3000))) {
        await signalGuest(proc.pid, markers, 'SIGTERM');
        if (!(await waitForExit(proc.pid, markers, 5000))) await killGuest(proc.pid, markers);
      }
    }
    await h.monitors.drop(proc);
    await rm(proc.qmp, { force: true });
    await rm(proc.testQmp, { force: true });
  }
  record.process = null;
  record.stoppedAt = new Date().toISOString();
  await h.layout.writeRecord(dir, record);
}

export { rootDiskFor, rootDiskGb } from '../guest';
