/**
 * Snapshot on real QEMU guests (issue 27): a guest built from a snapshot sees the old guest's disk (the
 * guest images count their boots on their disk, so the new guest's first boot is the old one's second).
 * The image store is a directory of its own (the shared guest images linked in), so the test's image
 * never lands among the shared ones.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';

import { PowerState } from '../../src/domain/instance';
import { CIRROS, GuestLab, SMALL } from './helpers';

describe('QEMU driver: snapshot', () => {
  const lab = new GuestLab();
  const store = mkdtempSync(path.join(tmpdir(), 'image-store-'));
  for (const file of ['vmlinuz', 'initrd.gz', 'cirros.qcow2'])
    symlinkSync(path.join(inject('guestImageDir'), file), path.join(store, file));
  const a = lab.driver('sn-a', { imageDir: store });
  const b = lab.driver('sn-b', { imageDir: store });

  afterEach(() => {
    expect(lab.qemuPids()).toEqual([]);
    expect(lab.leftovers()).toEqual([]);
  });
  afterAll(async () => {
    await lab.dispose();
    rmSync(store, { recursive: true, force: true });
  });

  it("a guest built from a running guest's snapshot on another host sees its disk: its boot counter carries on", async () => {
    await a.spawn({ instanceId: 'vm-src', name: 'vm-src', flavor: SMALL, image: CIRROS });
    expect(lab.boots('vm-src')).toEqual([expect.stringMatching(/^GUEST-BOOT boot=1 /)]);
    const started = Date.now();
    const saved = await a.snapshot({ instanceId: 'vm-src', imageName: 'snap-src' });
    console.log(`snapshot of a running guest (paused for the copy): ${Date.now() - started} ms, ${saved.sizeGb} GB`);
    // Paused for the copy and continued: still running, not rebooted.
    expect(await a.getPowerState({ instanceId: 'vm-src' })).toBe(PowerState.Running);
    expect((await a.guestRecord('vm-src'))?.pausedForSnapshot).toBeUndefined();
    expect(lab.boots('vm-src')).toHaveLength(1);

    await b.spawn({
      instanceId: 'vm-copy',
      name: 'vm-copy',
      flavor: SMALL,
      image: { name: 'snap-src', sizeGb: saved.sizeGb },
    });
    expect(lab.boots('vm-copy')).toEqual([expect.stringMatching(/^GUEST-BOOT boot=2 /)]);

    expect(await a.destroy({ instanceId: 'vm-src' })).toBe(true);
    expect(await b.destroy({ instanceId: 'vm-copy' })).toBe(true);
    expect(await a.deleteImage({ imageName: 'snap-src' })).toBe(true);
  });
});
