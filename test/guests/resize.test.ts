/**
 * Resize and cold migration on real guests: the source powers the guest off cleanly and moves its
 * directory aside (`<id>_resize`), the destination grows the disk and boots it with the new flavor;
 * confirm deletes the copy aside (the contract, test/guests/qemu-contract.test.ts, covers revert); the
 * ACPI-ignoring image is forced off after the shutdown timeout.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { DriverError } from '../../src/compute/driver';
import { CIRROS, GuestLab, MEDIUM, SMALL, STUBBORN } from './helpers';

function virtualSizeGb(disk: string): number {
  const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk], { encoding: 'utf8' })) as {
    'virtual-size': number;
  };
  return info['virtual-size'] / 1024 ** 3;
}

describe('QEMU driver: resize and cold migration', () => {
  const lab = new GuestLab();
  const a = lab.driver('rs-a');
  const b = lab.driver('rs-b');

  afterEach(() => {
    expect(lab.qemuPids()).toEqual([]);
    expect(lab.leftovers()).toEqual([]);
  });
  afterAll(() => lab.dispose());

  it('migrates a running guest to another host with a bigger flavor, then confirm removes the copy aside', async () => {
    await a.spawn({ instanceId: 'vm-r1', name: 'vm-r1', flavor: SMALL, image: CIRROS });
    const phases: string[] = [];
    const moved = await a.migrateDiskAndPowerOff(
      { instanceId: 'vm-r1', migrationId: 'mig-1', newFlavor: MEDIUM },
      { shutdownTimeoutSeconds: 30, onProgress: (phase) => phases.push(phase) }
    );
    expect(moved).toEqual({ transferred: true, diskGb: 1 });
    expect(phases).toContain('powering-off');
    expect(phases.at(-1)).toBe('transferring');
    expect(lab.console('vm-r1')).toBe('');
    expect(existsSync(`${lab.instanceDir('vm-r1')}_resize/disk.qcow2`)).toBe(true);
    // A retried call finds the work done.
    expect(
      await a.migrateDiskAndPowerOff(
        { instanceId: 'vm-r1', migrationId: 'mig-1', newFlavor: MEDIUM },
        { shutdownTimeoutSeconds: 30 }
      )
    ).toEqual({ transferred: false, diskGb: 1 });
    // The copy aside is listed (off) until confirmed, as the fake lists it: the host's reconciliation sees it.
    expect(await a.listGuests()).toEqual([expect.objectContaining({ instanceId: 'vm-r1', powerState: 'shutdown' })]);

    await b.prepareResize({
      instanceId: 'vm-r1',
      sourceHost: 'rs-a',
      oldFlavor: SMALL,
      newFlavor: MEDIUM,
      image: CIRROS,
    });
    const finished = await b.finishMigration({
      instanceId: 'vm-r1',
      migrationId: 'mig-1',
      name: 'vm-r1',
      flavor: MEDIUM,
      image: CIRROS,
      powerOn: true,
    });
    expect(finished).toMatchObject({ created: true, guest: { host: 'rs-b', powerState: 'running', flavor: MEDIUM } });
    // The same disk: the counter goes on; the new memory and disk size.
    expect(lab.boots('vm-r1')).toEqual([expect.stringMatching(/boot=2 image=cirros/)]);
    expect((await b.guestRecord('vm-r1'))?.process?.argv).toEqual(expect.arrayContaining(['-m', '192']));
    expect(virtualSizeGb(path.join(lab.instanceDir('vm-r1'), 'disk.qcow2'))).toBe(2);
    expect(
      (
        await b.finishMigration({
          instanceId: 'vm-r1',
          migrationId: 'mig-1',
          name: 'vm-r1',
          flavor: MEDIUM,
          image: CIRROS,
          powerOn: true,
        })
      ).created
    ).toBe(false);

    expect(await a.confirmMigration({ instanceId: 'vm-r1' })).toBe(true);
    expect(await a.confirmMigration({ instanceId: 'vm-r1' })).toBe(false);
    expect(existsSync(`${lab.instanceDir('vm-r1')}_resize`)).toBe(false);
    expect(await a.listGuests()).toEqual([]);
    expect(await b.destroy({ instanceId: 'vm-r1' })).toBe(true);
  });

  it('an ACPI-ignoring guest is forced off after the shutdown timeout; a smaller disk is refused first', async () => {
    await a.spawn({ instanceId: 'vm-r3', name: 'vm-r3', flavor: MEDIUM, image: STUBBORN });
    const shrink = await a
      .migrateDiskAndPowerOff(
        { instanceId: 'vm-r3', migrationId: 'mig-3', newFlavor: SMALL },
        { shutdownTimeoutSeconds: 2 }
      )
      .catch((e: unknown) => e);
    expect(shrink).toBeInstanceOf(DriverError);
    expect((shrink as Error).message).toMatch(/Unable to resize disk down/);
    expect(await a.getPowerState({ instanceId: 'vm-r3' })).toBe('running');

    const started = Date.now();
    await a.migrateDiskAndPowerOff(
      { instanceId: 'vm-r3', migrationId: 'mig-3', newFlavor: MEDIUM },
      { shutdownTimeoutSeconds: 2 }
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(lab.console('vm-r3')).not.toContain('Power down');
    expect(lab.qemuPids()).toEqual([]);
    expect(await a.finishRevertMigration({ instanceId: 'vm-r3', migrationId: 'mig-3', powerOn: false })).toBe(
      'shutdown'
    );
    await a.destroy({ instanceId: 'vm-r3' });
  });
});
