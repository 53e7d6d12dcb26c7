/**
 * The QEMU driver's snapshot (Nova's libvirt snapshot: a live snapshot pauses or quiesces the guest for
 * the copy) and image removal. The guest's disk (a qcow2 overlay on its image's base) is converted with
 * `qemu-img convert` into one standalone qcow2 in the image store directory (`<imageDir>/<name>.qcow2`),
 * which a build then uses as its base like any catalogue image. A running guest is paused (QMP `stop`,
 * which drains and flushes its I/O) for the copy and continued (`cont`) after it; the record notes the
 * pause, so a retry after a lost answer (or a worker that died mid-copy) still continues the guest.
 * Written to `<name>.qcow2.part` and renamed: an image in the store is always whole.
 */
import { rename, rm, stat } from 'node:fs/promises';

import type { ImageRequest, SnapshotRequest, SnapshotResult } from '../driver';
import { DriverError } from '../driver';
import type { QemuHost } from './guest';
import { execFileAsync, processAlive, queryStatus, requireRecord } from './guest';

const GIB = 1024 ** 3;

async function sizeOf(file: string): Promise<number | undefined> {
  return stat(file).then(
    (s) => s.size,
    () => undefined
  );
}

/** The snapshot; idempotent on the image name (an image already in the store is returned as it is). */
export async function snapshot(h: QemuHost, { instanceId, imageName }: SnapshotRequest): Promise<SnapshotResult> {
  const dir = h.layout.instanceDir(instanceId);
  const record = await requireRecord(h, instanceId);
  const target = h.layout.base(imageName);
  const done = await sizeOf(target);
  const proc = record.process !== null && (await processAlive(record)) ? record.process : null;
  const qmp = proc ? await h.monitors.get(proc) : undefined;
  const status = proc ? await queryStatus(h, proc) : 'off';
  // Ours to continue: a guest we paused now, or one a lost attempt paused (the record says so).
  const ours = status === 'running' || (status === 'paused' && record.pausedForSnapshot !== undefined);
  if (done === undefined) {
    if (record.status !== 'active')
      throw new DriverError(`cannot snapshot the guest of instance ${instanceId} on ${h.host}: it is ${record.status}`);
    if (status === 'running' && qmp) {
      record.pausedForSnapshot = new Date().toISOString();
      await h.layout.writeRecord(dir, record);
      await qmp.execute('stop');
    }
    const part = `${target}.part`;
    try {
      // -U: the disk is open in the (paused) QEMU; stop has flushed it, nothing writes while we read.
      await execFileAsync('qemu-img', ['convert', '-U', '-O', 'qcow2', h.layout.disk(dir), part]);
      await rename(part, target);
    } catch (err) {
      await rm(part, { force: true });
      throw new DriverError(`qemu-img convert of ${instanceId}'s disk on ${h.host} failed: ${(err as Error).message}`);
    } finally {
      if (ours) await continueGuest(h, dir, instanceId, qmp);
    }
  } else if (ours) await continueGuest(h, dir, instanceId, qmp);
  return { imageName, sizeGb: Math.round((((await sizeOf(target)) ?? 0) / GIB) * 1e6) / 1e6 };
}

async function continueGuest(
  h: QemuHost,
  dir: string,
  instanceId: string,
  qmp: Awaited<ReturnType<QemuHost['monitors']['get']>> | undefined
): Promise<void> {
  if (qmp) await qmp.execute('cont');
  const now = await requireRecord(h, instanceId);
  if (now.pausedForSnapshot === undefined) return;
  delete now.pausedForSnapshot;
  await h.layout.writeRecord(dir, now);
}

/** Removes the image's file (and a half-written one) from the store; false when there was none. */
export async function deleteImage(h: QemuHost, { imageName }: ImageRequest): Promise<boolean> {
  const target = h.layout.base(imageName);
  const existed = (await sizeOf(target)) !== undefined;
  await rm(target, { force: true });
  await rm(`${target}.part`, { force: true });
  return existed;
}
