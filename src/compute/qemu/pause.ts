/**
 * The QEMU driver's pause, unpause, suspend and resume (Nova's libvirt pause / unpause / suspend /
 * resume). Pause is QMP `stop` and unpause `cont`: the process stays, its memory with it. Suspend is
 * libvirt's managed save: the guest paused, its memory streamed to `memory.<host>.state` in the instance
 * directory (QMP `migrate` to `exec:cat > file`, waited on until `completed`), then its QEMU quit; resume
 * starts a QEMU on the same disk with `-incoming defer`, loads the file (`migrate-incoming`), and `cont`s
 * it: the guest runs on from where it was, no boot. Each is idempotent (a retry after a lost answer finds
 * the guest as asked, or finishes what the lost attempt began).
 */
import { access, rename, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { PowerState } from '../../domain/instance';
import { DriverError } from '../driver';
import type { QemuHost } from './guest';
import {
  discardSavedState,
  launchGuest,
  powerStateOf,
  processAlive,
  queryStatus,
  requireRecord,
  stopProcess,
} from './guest';
import type { GuestProcess, GuestRecord } from './layout';
import type { QmpClient } from './qmp';

/** How long a save or a restore of a guest's memory may take (256 MiB at most, on local disk). */
const TRANSFER_TIMEOUT_MS = 120_000;
const POLL_MS = 100;
/** No bandwidth cap on a save (QEMU's default is 128 MiB/s, meant for a network). */
const SAVE_BANDWIDTH_BYTES = 1024 ** 4;

interface Live {
  record: GuestRecord;
  proc: GuestProcess;
  qmp: QmpClient;
  status: string;
}

/** The guest's running QEMU, with its run state; undefined when it has no live process. */
async function live(h: QemuHost, record: GuestRecord): Promise<Live | undefined> {
  const proc = record.process;
  if (!proc || !(await processAlive(record))) return undefined;
  return { record, proc, qmp: await h.monitors.get(proc), status: await queryStatus(h, proc) };
}

function refuse(h: QemuHost, record: GuestRecord, what: string, state: string): DriverError {
  return new DriverError(`cannot ${what} the guest of instance ${record.instanceId} on ${h.host}: it is ${state}`);
}

function requireActive(h: QemuHost, record: GuestRecord, what: string): void {
  if (record.status !== 'active') throw refuse(h, record, what, `${record.status} (a live migration)`);
}

/** Pause: QMP `stop`. A paused guest stays paused. */
export async function pause(h: QemuHost, instanceId: string): Promise<PowerState> {
  const record = await requireRecord(h, instanceId);
  requireActive(h, record, 'pause');
  const guest = await live(h, record);
  if (!guest) throw refuse(h, record, 'pause', await powerStateOf(h, record));
  if (guest.status === 'running') await guest.qmp.execute('stop');
  else if (guest.status !== 'paused') throw refuse(h, record, 'pause', guest.status);
  return powerStateOf(h, record);
}

/** Unpause: QMP `cont`. A running guest stays running. */
export async function unpause(h: QemuHost, instanceId: string): Promise<PowerState> {
  const record = await requireRecord(h, instanceId);
  requireActive(h, record, 'unpause');
  const guest = await live(h, record);
  if (!guest) throw refuse(h, record, 'unpause', await powerStateOf(h, record));
  if (guest.status === 'paused') await guest.qmp.execute('cont');
  else if (guest.status !== 'running') throw refuse(h, record, 'unpause', guest.status);
  return powerStateOf(h, record);
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false
  );
}

/** Polls `query-migrate` until the stream completes; DriverError when it fails or takes too long. */
async function awaitMigration(qmp: QmpClient, what: string): Promise<void> {
  const started = Date.now();
  for (;;) {
    const info = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (info.status === 'completed') return;
    if (info.status === 'failed' || info.status === 'cancelled')
      throw new DriverError(`${what} ${info.status}: ${info['error-desc'] ?? 'no reason given'}`);
    if (Date.now() - started > TRANSFER_TIMEOUT_MS)
      throw new DriverError(`${what} did not complete within ${TRANSFER_TIMEOUT_MS / 1000} s`);
    await sleep(POLL_MS);
  }
}

/** Every migration capability off but `events` (a migrated-in QEMU may still have post-copy on). */
async function plainCapabilities(qmp: QmpClient): Promise<void> {
  const known = await qmp.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
  await qmp.execute('migrate-set-capabilities', {
    capabilities: known.map((c) => ({ capability: c.capability, state: c.capability === 'events' })),
  });
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Suspend (libvirt's managed save): the guest paused, its memory saved to `memory.<host>.state`, its QEMU
 * quit. A suspended guest stays suspended; a save that completed before a lost answer is not made again.
 */
export async function suspend(h: QemuHost, instanceId: string): Promise<PowerState> {
  const dir = h.layout.instanceDir(instanceId);
  const record = await requireRecord(h, instanceId);
  requireActive(h, record, 'suspend');
  const file = h.layout.savedState(dir);
  const guest = await live(h, record);
  if (!guest) {
    if (record.suspendedAt !== undefined && (await exists(file))) return PowerState.Suspended;
    throw refuse(h, record, 'suspend', await powerStateOf(h, record));
  }
  // A save that completed before its QEMU was quit (the answer lost): only the quit is left.
  const saved = guest.status === 'postmigrate' && record.suspendedAt !== undefined && (await exists(file));
  if (!saved) {
    if (!['running', 'paused', 'postmigrate'].includes(guest.status)) throw refuse(h, record, 'suspend', guest.status);
    const wasRunning = guest.status === 'running';
    if (wasRunning) await guest.qmp.execute('stop');
    const temp = `${file}.tmp`;
    await rm(temp, { force: true });
    try {
      await plainCapabilities(guest.qmp);
      await guest.qmp.execute('migrate-set-parameters', { 'max-bandwidth': SAVE_BANDWIDTH_BYTES });
      await guest.qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(temp)}` });
      await awaitMigration(guest.qmp, `saving the memory of instance ${instanceId} on ${h.host}`);
    } catch (err) {
      await rm(temp, { force: true });
      // The guest is left as it was found.
      if (wasRunning) await guest.qmp.execute('cont').catch(() => undefined);
      throw err;
    }
    await rename(temp, file);
    record.suspendedAt = new Date().toISOString();
    await h.layout.writeRecord(dir, record);
  }
  await stopProcess(h, dir, record);
  return PowerState.Suspended;
}

/**
 * Resume: a QEMU on the same disk started with `-incoming defer`, the saved memory loaded into it
 * (`migrate-incoming` from `exec:cat file`), then `cont`; the file is removed. A running guest stays
 * running; a restore that a lost attempt left half-made is started again.
 */
export async function resume(h: QemuHost, instanceId: string): Promise<PowerState> {
  const dir = h.layout.instanceDir(instanceId);
  const record = await requireRecord(h, instanceId);
  requireActive(h, record, 'resume');
  const file = h.layout.savedState(dir);
  const guest = await live(h, record);
  if (guest) {
    if (guest.status === 'running') {
      await discardSavedState(h, dir, record);
      return PowerState.Running;
    }
    // Loaded but not yet running (the answer lost before `cont`): run it.
    if (guest.status === 'paused' && record.suspendedAt !== undefined) return finishResume(h, dir, record, guest.qmp);
    if (record.suspendedAt === undefined) throw refuse(h, record, 'resume', guest.status);
    // A half-made restore (or a save whose QEMU was never quit): a fresh QEMU loads the file.
    await stopProcess(h, dir, record);
  }
  if (record.suspendedAt === undefined || !(await exists(file)))
    throw refuse(h, record, 'resume', `${await powerStateOf(h, record)} with no saved memory`);
  const { proc } = await launchGuest(h, dir, record, { incoming: true });
  const qmp = await h.monitors.get(proc);
  try {
    await plainCapabilities(qmp);
    await qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(file)}` });
    await awaitMigration(qmp, `restoring the memory of instance ${instanceId} on ${h.host}`);
  } catch (err) {
    // The saved memory stays: a retry loads it again.
    await stopProcess(h, dir, record).catch(() => undefined);
    throw err;
  }
  return finishResume(h, dir, record, qmp);
}

async function finishResume(h: QemuHost, dir: string, record: GuestRecord, qmp: QmpClient): Promise<PowerState> {
  const status = await queryStatus(h, record.process!);
  if (status !== 'running') await qmp.execute('cont');
  await discardSavedState(h, dir, record);
  return powerStateOf(h, record);
}
