/**
 * QEMU guest processes: the command line, a detached launch in its own session (so a guest outlives
 * the compute worker that started it, as a hypervisor's guests outlive nova-compute), liveness by pid,
 * kill by pid, and the serial console read back.
 */
import { spawn as spawnChild } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Accel } from './accel';
import { accelArg } from './accel';
import type { QmpConnectOptions } from './qmp';
import { QmpClient } from './qmp';

export const QEMU_BINARY = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
export const QBOOT_ROM = '/usr/share/qemu/qboot.rom';

export interface LaunchSpec {
  instanceId: string;
  accel: Accel;
  memoryMb: number;
  vcpus: number;
  kernel: string;
  initrd: string;
  disk: string;
  console: string;
  qmp: string;
  testQmp: string;
  pidFile: string;
  /** A live migration's destination: waits for `migrate-incoming`. */
  incoming?: boolean;
}

/**
 * The command line (one CPU model on every host, so a live migration's CPU check stays the fleet's).
 * `-no-reboot`: a crashing or reset-looping guest ends as a process exit instead of spinning a core.
 */
export function qemuArgv(spec: LaunchSpec): string[] {
  const argv = [
    QEMU_BINARY,
    '-name',
    `guest=${spec.instanceId},debug-threads=on`,
    '-accel',
    accelArg(spec.accel),
    '-machine',
    'pc',
    '-cpu',
    'qemu64',
    '-m',
    String(spec.memoryMb),
    '-smp',
    String(spec.vcpus),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-vga',
    'none',
    '-kernel',
    spec.kernel,
    '-initrd',
    spec.initrd,
    '-append',
    'console=ttyS0 panic=-1 quiet',
    '-chardev',
    `file,id=ser0,path=${spec.console},append=on`,
    '-serial',
    'chardev:ser0',
    '-drive',
    `file=${spec.disk},if=none,id=root,format=qcow2`,
    '-device',
    'virtio-blk-pci,drive=root',
    '-qmp',
    `unix:${spec.qmp},server=on,wait=off`,
    '-qmp',
    `unix:${spec.testQmp},server=on,wait=off`,
    '-pidfile',
    spec.pidFile,
    '-no-reboot',
  ];
  // qboot boots faster than SeaBIOS under TCG (2.6 s against 3.1 s to the init).
  if (spec.accel === 'tcg') argv.splice(argv.indexOf('-kernel'), 0, '-bios', QBOOT_ROM);
  if (spec.incoming) argv.push('-incoming', 'defer');
  return argv;
}

/**
 * Starts QEMU detached (its own session, stdio to `logFile` appended), and returns its pid at once.
 * Nothing waits on it: the compute worker can die and the guest runs on.
 */
export function launchDetached(argv: string[], logFile: string): number {
  const fd = openSync(logFile, 'a');
  try {
    const [cmd, ...args] = argv;
    const child = spawnChild(cmd ?? QEMU_BINARY, args, { detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** The state letter of /proc/<pid>/stat (R, S, D, Z, …), or undefined when there is no such process. */
async function procState(pid: number): Promise<string | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/**
 * Is `pid` this guest's QEMU? Alive (not a zombie: kill(pid, 0) succeeds on one) and its command line
 * holds every marker (`guest=<id>` and its own QMP socket), so a reused pid is never taken for it.
 */
export async function isGuestProcess(pid: number, markers: string[]): Promise<boolean> {
  const state = await procState(pid);
  if (state === undefined || state === 'Z' || state === 'X') return false;
  let cmdline: string;
  try {
    cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
  } catch {
    return false;
  }
  return markers.every((m) => cmdline.includes(m));
}

export function guestMarkers(instanceId: string, qmp: string): string[] {
  return [`guest=${instanceId},`, `unix:${qmp},`];
}

/** Sends `signal` to the guest's pid if it is still that guest. */
export async function signalGuest(pid: number, markers: string[], signal: NodeJS.Signals): Promise<void> {
  if (!(await isGuestProcess(pid, markers))) return;
  try {
    process.kill(pid, signal);
  } catch {
    // gone meanwhile
  }
}

/**
 * Waits until the process is gone (or a zombie); false after `timeoutMs`. Looked at every 5 ms for the
 * first 0.2 s, then every 50: a QEMU that answered `quit` exits within about 4 ms, and a live migration's
 * source cleanup (the last of its post steps) waited out a whole 50 ms tick for it.
 */
export async function waitForExit(pid: number, markers: string[], timeoutMs: number): Promise<boolean> {
  const started = Date.now();
  for (;;) {
    if (!(await isGuestProcess(pid, markers))) return true;
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutMs) return false;
    await sleep(elapsed < 200 ? 5 : 50);
  }
}

/** SIGKILL by pid (virDomainDestroy's last resort) and wait for it to go. */
export async function killGuest(pid: number, markers: string[]): Promise<void> {
  await signalGuest(pid, markers, 'SIGKILL');
  if (!(await waitForExit(pid, markers, 5000))) throw new Error(`QEMU pid ${pid} did not die on SIGKILL`);
}

/**
 * Connects to a monitor of a QEMU that is starting: retries while the socket is not bound yet, and gives
 * up when the process has exited or `timeoutMs` passed.
 */
export async function connectWhenReady(
  socket: string,
  pid: number,
  markers: string[],
  timeoutMs: number,
  options: QmpConnectOptions = {}
): Promise<QmpClient> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      return await QmpClient.connect(socket, options);
    } catch (err) {
      last = err;
    }
    if (!(await isGuestProcess(pid, markers))) throw new Error(`QEMU (pid ${pid}) exited while starting`);
    if (Date.now() >= deadline)
      throw new Error(`QEMU (pid ${pid}) QMP ${socket} not answering after ${timeoutMs} ms: ${String(last)}`);
    // Tried again soon: QEMU binds its socket about 0.1 s after its start, and a spawn or a live
    // migration's destination waits on it (a failed connect and the process check cost microseconds).
    await sleep(10);
  }
}

/** The size of a file, 0 when absent: where a new launch's console output starts. */
export async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** The text of `file` from byte `offset`. */
export async function readFrom(file: string, offset: number): Promise<string> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = (await handle.stat()).size;
    if (size <= offset) return '';
    const buffer = Buffer.alloc(size - offset);
    await handle.read(buffer, 0, buffer.length, offset);
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

/** The last `lines` lines of a text file (all of it when `lines` is undefined). */
export async function tailLines(file: string, lines?: number): Promise<string[]> {
  // The serial line ends in CR LF.
  const all = (await readFrom(file, 0)).replace(/\r/g, '').split('\n');
  if (all.at(-1) === '') all.pop();
  return lines === undefined ? all : all.slice(Math.max(0, all.length - lines));
}

/** The guest's boot line, as the initramfs prints it. */
export const BOOT_LINE = /GUEST-BOOT boot=(\d+) image=(\S*) uptime=([\d.]+)/;

export interface BootLine {
  boot: number;
  image: string;
  uptimeSeconds: number;
}

export function parseBootLine(text: string): BootLine | undefined {
  const m = BOOT_LINE.exec(text);
  if (!m) return undefined;
  return { boot: Number(m[1]), image: m[2] ?? '', uptimeSeconds: Number(m[3]) };
}
