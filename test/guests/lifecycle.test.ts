/**
 * The QEMU driver's build steps on real guests, beyond the contract (test/guests/qemu-contract.test.ts):
 * the command line, pidfile and socket of a spawned guest, its heartbeat, an evacuation onto the shared
 * instance path while the source's guest still runs, a boot timeout and a missing
 * image as spawn failures cleaned up. Each test leaves no QEMU process and no file.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { ImageUnacceptable, DriverError } from '../../src/compute/driver';
import { InstanceNotFound } from '../../src/domain/errors';
import { CIRROS, GuestLab, SMALL } from './helpers';

describe('QEMU driver: build', () => {
  const lab = new GuestLab();
  const a = lab.driver('lc-a');

  afterEach(() => {
    expect(lab.qemuPids()).toEqual([]);
    expect(lab.leftovers()).toEqual([]);
  });
  afterAll(() => lab.dispose());

  it('spawns a guest to its boot line and heartbeat; a retried spawn makes nothing new; destroy removes everything', async () => {
    const progress: number[] = [];
    const started = Date.now();
    const { guest, created } = await a.spawn(
      { instanceId: 'vm-1', name: 'vm-1', flavor: SMALL, image: CIRROS, adminPassword: 'secret' },
      { onProgress: (p) => progress.push(p) }
    );
    const bootMs = Date.now() - started;
    expect(created).toBe(true);
    expect(guest).toMatchObject({ instanceId: 'vm-1', host: 'lc-a', powerState: 'running', adminPasswordSet: true });
    expect(lab.boots('vm-1')).toEqual([expect.stringMatching(/^GUEST-BOOT boot=1 image=cirros uptime=/)]);
    expect(progress[0]).toBe(0);
    expect(progress.at(-1)).toBe(100);
    await lab.waitForHeartbeat('vm-1', 2);
    console.log(`spawn to GUEST-BOOT through the driver: ${bootMs} ms`);

    const record = await a.guestRecord('vm-1');
    expect(record?.process?.argv).toEqual(
      expect.arrayContaining(['-m', '128', '-smp', '1', '-accel', 'tcg,tb-size=64'])
    );
    expect(record?.process?.qmp.length).toBeLessThan(108);
    expect(readFileSync(path.join(lab.instanceDir('vm-1'), 'qemu.lc-a.pid'), 'utf8').trim()).toBe(
      String(record?.process?.pid)
    );

    const again = await a.spawn({ instanceId: 'vm-1', name: 'vm-1', flavor: SMALL, image: CIRROS });
    expect(again.created).toBe(false);
    expect(lab.boots('vm-1')).toHaveLength(1);
    expect(await a.listGuests()).toEqual([expect.objectContaining({ instanceId: 'vm-1', powerState: 'running' })]);
    expect(await a.getConsoleOutput({ instanceId: 'vm-1', lines: 1 })).toMatch(/^HEARTBEAT \d+\n$/);

    expect(await a.destroy({ instanceId: 'vm-1' })).toBe(true);
    expect(await a.destroy({ instanceId: 'vm-1' })).toBe(false);
    await expect(a.getPowerState({ instanceId: 'vm-1' })).rejects.toBeInstanceOf(InstanceNotFound);
  });

  it("evacuates: rebuilt on another host while the source's guest still runs there; the source's destroy later leaves the new guest alone", async () => {
    const b = lab.driver('lc-e');
    await a.spawn({ instanceId: 'vm-e', name: 'vm-e', flavor: SMALL, image: CIRROS });
    const prepared = await b.prepareRebuild({ instanceId: 'vm-e', flavor: SMALL, image: CIRROS });
    expect(prepared.removedGuest).toBe(false);
    const { created } = await b.spawn({ instanceId: 'vm-e', name: 'vm-e', flavor: SMALL, image: CIRROS });
    expect(created).toBe(true);
    // A new disk: the evacuated guest boots as boot 1 again, while the old one runs on its unlinked disk.
    expect(lab.boots('vm-e').map((l) => l.replace(/ uptime=.*/, ''))).toEqual([
      'GUEST-BOOT boot=1 image=cirros',
      'GUEST-BOOT boot=1 image=cirros',
    ]);
    expect(lab.qemuPids()).toHaveLength(2);
    // The source back: its reconciliation destroys the evacuated instance's guest there.
    expect(await a.destroy({ instanceId: 'vm-e' })).toBe(true);
    expect(lab.qemuPids()).toHaveLength(1);
    expect(await b.getPowerState({ instanceId: 'vm-e' })).toBe('running');
    expect(existsSync(path.join(lab.instanceDir('vm-e'), 'disk.qcow2'))).toBe(true);
    expect(await b.destroy({ instanceId: 'vm-e' })).toBe(true);
  });

  it('a guest that does not boot within the bound is a DriverError, its process and files removed', async () => {
    const hasty = lab.driver('lc-b', { bootTimeoutMs: 300 });
    const err = await hasty
      .spawn({ instanceId: 'vm-4', name: 'vm-4', flavor: SMALL, image: CIRROS })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as Error).message).toMatch(/did not boot within/);
    expect(existsSync(lab.instanceDir('vm-4'))).toBe(false);
  });

  it('an aborted spawn leaves nothing; an image without a base is ImageUnacceptable', async () => {
    const controller = new AbortController();
    const spawning = a.spawn(
      { instanceId: 'vm-5', name: 'vm-5', flavor: SMALL, image: CIRROS },
      { signal: controller.signal, onProgress: (p) => p > 5 && controller.abort(new Error('cancelled')) }
    );
    await expect(spawning).rejects.toThrow('cancelled');
    const err = await a
      .spawn({ instanceId: 'vm-6', name: 'vm-6', flavor: SMALL, image: { name: 'no-such-image', sizeGb: 1 } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageUnacceptable);
  });
});
