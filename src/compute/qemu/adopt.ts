/**
 * Re-adoption at a compute worker's start (libvirt's qemuProcessReconnectAll): every guest record of this
 * host is checked against its process (pid alive and not a zombie, command line, `query-name`, QMP
 * answering, run and migration state), and QEMU processes of this host that no record names (orphans of
 * a worker killed between launch and record) are killed, as Nova's running_deleted_instance_action does.
 * Which instances still exist is the worker's business: it gets the report and destroys or reconciles.
 */
import { readdir, readFile } from 'node:fs/promises';

import type { PowerState } from '../../domain/instance';
import type { QemuHost } from './guest';
import { markersOf, powerStateOf, processAlive } from './guest';
import type { GuestRecord } from './layout';
import { killGuest } from './process';

export interface AdoptedGuest {
  instanceId: string;
  dir: string;
  status: GuestRecord['status'];
  /** The migration or spawn run the guest belongs to. */
  opId: string;
  pid: number | null;
  /**
   * `running` (process alive, QMP answers, name matches), `stopped` (no process: off or powered itself
   * off), `unresponsive` (alive, but QMP does not answer or names another guest).
   */
  process: 'running' | 'stopped' | 'unresponsive';
  powerState: PowerState;
  /** `query-migrate`'s status of an outgoing copy, when one is there. */
  migration?: string;
  /** A resize's source copy moved aside. */
  movedAside: boolean;
}

export interface AdoptionReport {
  guests: AdoptedGuest[];
  /** Pids of this host's QEMU processes that no record named, killed. */
  orphansKilled: number[];
}

export async function adoptGuests(h: QemuHost): Promise<AdoptionReport> {
  const guests: AdoptedGuest[] = [];
  const known = new Set<number>();
  for (const dir of await h.layout.ownedDirs()) {
    const record = await h.layout.readRecord(dir).catch(() => undefined);
    if (!record) continue;
    const base = {
      instanceId: record.instanceId,
      dir,
      status: record.status,
      opId: record.opId,
      movedAside: dir.endsWith('_resize'),
    };
    const proc = record.process;
    if (!proc || !(await processAlive(record))) {
      if (proc) {
        // Gone (powered itself off, or killed): the record says off from now on.
        record.process = null;
        record.stoppedAt = new Date().toISOString();
        await h.layout.writeRecord(dir, record);
      }
      // A suspended guest has no process either: its memory waits in its file for resume.
      const powerState = record.suspendedAt !== undefined ? 'suspended' : 'shutdown';
      guests.push({ ...base, pid: null, process: 'stopped', powerState });
      continue;
    }
    known.add(proc.pid);
    let answered = false;
    let migration: string | undefined;
    try {
      const qmp = await h.monitors.get(proc, 3000);
      const name = await qmp.execute<{ name?: string }>('query-name', undefined, 3000);
      answered = name.name === record.instanceId;
      const info = await qmp.execute<{ status?: string }>('query-migrate', undefined, 3000);
      if (info.status && info.status !== 'none') migration = info.status;
    } catch {
      // not answering: unresponsive
    }
    guests.push({
      ...base,
      pid: proc.pid,
      process: answered ? 'running' : 'unresponsive',
      powerState: answered ? await powerStateOf(h, record) : 'nostate',
      ...(migration ? { migration } : {}),
    });
  }
  return { guests, orphansKilled: await killOrphans(h, known) };
}

/** QEMU processes whose pidfile is this host's under this data dir, that no record names. */
async function killOrphans(h: QemuHost, known: Set<number>): Promise<number[]> {
  const prefix = `${h.layout.instancesDir}/`;
  const pidTail = `/qemu.${h.host}.pid`;
  const killed: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || known.has(pid)) continue;
    let argv: string[];
    try {
      argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    } catch {
      continue;
    }
    const pidFile = argv[argv.indexOf('-pidfile') + 1];
    if (!argv.includes('-pidfile') || !pidFile?.startsWith(prefix) || !pidFile.endsWith(pidTail)) continue;
    const name = argv[argv.indexOf('-name') + 1] ?? '';
    const qmp = /unix:([^,]+),/.exec(argv[argv.indexOf('-qmp') + 1] ?? '')?.[1] ?? '';
    const instanceId = /guest=([^,]+)/.exec(name)?.[1] ?? '';
    const markers = markersOf({ instanceId } as GuestRecord, { qmp } as NonNullable<GuestRecord['process']>);
    await killGuest(pid, markers).catch(() => undefined);
    killed.push(pid);
  }
  return killed;
}
