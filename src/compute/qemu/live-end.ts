/**
 * The end of a QEMU live migration: the copy cancelled (and what it really ended as), the received guest
 * run at the destination, the source quit after the switch-over, or both ends rolled back.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { InstanceNotFound } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import { DriverError } from '../driver';
import {
  powerStateOf,
  processAlive,
  queryStatus,
  removeGuestFiles,
  requireRecord,
  stopProcess,
  whyExited,
} from './guest';
import type { LiveHost } from './live';
import type { QmpClient } from './qmp';

/** QEMU's `query-migrate` answer, the fields read here. */
export interface MigrateInfo {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'expected-downtime'?: number;
  'error-desc'?: string;
  ram?: {
    transferred: number;
    remaining: number;
    total: number;
    'dirty-pages-rate': number;
    'page-size': number;
    'dirty-sync-count': number;
  };
  'socket-address'?: { type: string; host?: string; port?: string }[];
}

/** QEMU's migration statuses that are over: nothing changes after them. */
const FINAL = new Set(['completed', 'failed', 'cancelled', 'none']);

/**
 * migrate_cancel, then `query-migrate` read until a final status, which is returned: a copy that switched
 * over before the cancel reached it reports `completed` (the caller answers what really happened). A
 * guest paused to force the copy runs again when the copy did not complete (Nova's run_recover_tasks).
 */
export async function cancelCopy(qmp: QmpClient, instanceId: string, forced: boolean): Promise<MigrateInfo> {
  try {
    let info = await qmp.execute<MigrateInfo>('query-migrate');
    if (!FINAL.has(info.status ?? 'none')) {
      if (info.status !== 'cancelling') await qmp.execute('migrate_cancel');
      const deadline = Date.now() + 30_000;
      while (!FINAL.has(info.status ?? 'none')) {
        if (Date.now() > deadline)
          throw new DriverError(`the migration is still ${info.status ?? 'running'} 30 s after migrate_cancel`);
        await qmp.waitForEvent('MIGRATION', 50, (e) => FINAL.has(String(e.data?.status))).catch(() => undefined);
        info = await qmp.execute<MigrateInfo>('query-migrate');
      }
    }
    if (forced && info.status !== 'completed') {
      const status = (await qmp.execute<{ status: string }>('query-status')).status;
      if (status === 'paused') await qmp.execute('cont');
    }
    return info;
  } catch (err) {
    throw new DriverError(`could not cancel the live migration of instance ${instanceId}: ${String(err)}`);
  }
}

/**
 * The destination runs the received guest. NOTE(nova): QEMU resumes a migrated-in guest by itself at the
 * switch-over (libvirt starts it with -S and `cont`s it here), so the pause is the copy's alone; this
 * waits for it to run (and resumes it if paused). Idempotent.
 */
export async function postLiveMigrationAtDestination(
  h: LiveHost,
  instanceId: string,
  migrationId: string
): Promise<PowerState> {
  const dir = h.layout.instanceDir(instanceId);
  const record = await h.layout.readRecord(dir);
  if (record?.opId !== migrationId || !record.process) throw new InstanceNotFound(instanceId);
  if (record.status === 'active') return powerStateOf(h, record);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!(await processAlive(record)))
      throw new DriverError(
        `the received guest of instance ${instanceId} is gone from ${h.host}: ${await whyExited(h, dir)}`
      );
    const status = await queryStatus(h, record.process);
    if (status === 'running') break;
    if (status === 'paused') {
      await (await h.monitors.get(record.process)).execute('cont');
      continue;
    }
    if (Date.now() > deadline)
      throw new DriverError(`the received guest of instance ${instanceId} is ${status} on ${h.host}, not running`);
    await sleep(100);
  }
  record.status = 'active';
  delete record.incomingUri;
  await h.layout.writeRecord(dir, record);
  return PowerState.Running;
}

/** The source's QEMU, paused after the switch-over, quit and its files here removed. False: none left. */
export async function postLiveMigration(h: LiveHost, instanceId: string, migrationId: string): Promise<boolean> {
  const dir = h.layout.instanceDir(instanceId);
  const record = await h.layout.readRecord(dir);
  if (!record || (record.opId === migrationId && record.status !== 'outgoing')) return false;
  if (record.status !== 'outgoing' && record.process && (await processAlive(record))) {
    // A worker that died between the switch-over and its record: QEMU says whether it switched.
    const status = await queryStatus(h, record.process);
    if (status !== 'postmigrate')
      throw new DriverError(`the guest of instance ${instanceId} on ${h.host} is ${status}: it has not migrated`);
  }
  await stopProcess(h, dir, record);
  await removeGuestFiles(h, dir);
  return true;
}

/** The half-received guest of this migration quit and its record removed (the shared disk stays). */
export async function rollbackLiveMigrationAtDestination(
  h: LiveHost,
  instanceId: string,
  migrationId: string
): Promise<boolean> {
  const dir = h.layout.instanceDir(instanceId);
  const record = await h.layout.readRecord(dir);
  if (record?.opId !== migrationId || record.status !== 'incoming') return false;
  await stopProcess(h, dir, record);
  await removeGuestFiles(h, dir);
  return true;
}

/** The source guest running as before: a copy still going cancelled, a paused guest resumed. */
export async function rollbackLiveMigration(h: LiveHost, instanceId: string): Promise<PowerState> {
  h.forced.delete(instanceId);
  const record = await requireRecord(h, instanceId);
  if (record.process && (await processAlive(record))) {
    const qmp = await h.monitors.get(record.process);
    await cancelCopy(qmp, instanceId, false);
    const status = await queryStatus(h, record.process);
    if (status === 'paused' || status === 'postmigrate') await qmp.execute('cont');
  }
  if (record.status === 'outgoing') {
    record.status = 'active';
    await h.layout.writeRecord(h.layout.instanceDir(instanceId), record);
  }
  return powerStateOf(h, record);
}
