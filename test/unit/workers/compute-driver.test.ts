import { readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { FakeDriver } from '../../../src/compute/fake';
import type { QemuDriver } from '../../../src/compute/qemu';
import { FleetSchema } from '../../../src/domain/fleet';
import { createDriver } from '../../../src/workers/compute-driver';
import { EnvSchema, loadEnv, QEMU_FLEET_FILE } from '../../../src/workers/config';
import { makeStateDir } from '../compute/helpers';

const host = { name: 'node-1', vcpus: 4, memoryMb: 8192, diskGb: 100 };

describe('choosing a compute driver', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeStateDir());
  });
  afterEach(() => cleanup());

  it('COMPUTE_DRIVER is fake unless set; an unknown driver is refused', () => {
    expect(EnvSchema.parse({}).COMPUTE_DRIVER).toBe('fake');
    expect(EnvSchema.parse({ COMPUTE_DRIVER: 'qemu' }).COMPUTE_DRIVER).toBe('qemu');
    const bad = EnvSchema.safeParse({ COMPUTE_DRIVER: 'xen' });
    expect(bad.error?.issues.map((i) => i.path.join('.'))).toEqual(['COMPUTE_DRIVER']);
  });

  it("a fleet host may name its driver; absent, it is the worker's; an unknown one is refused", () => {
    const fleet = FleetSchema.parse({
      hosts: [
        { ...host, driver: 'qemu' },
        { ...host, name: 'node-2' },
      ],
    });
    expect(fleet.hosts.map((h) => h.driver)).toEqual(['qemu', undefined]);
    expect(FleetSchema.safeParse({ hosts: [{ ...host, driver: 'xen' }] }).success).toBe(false);
  });

  it('the fake keeps its state under <DATA_DIR>/compute/<host>/, made at once for a faults.json', async () => {
    const driver = await createDriver('fake', { host: 'node-1', dataDir: dir, spawnSeconds: 0 });
    expect(driver).toBeInstanceOf(FakeDriver);
    expect(driver.host).toBe('node-1');
    await access(path.join(dir, 'compute', 'node-1'));
    expect((driver as FakeDriver).spawnSeconds).toBe(0);
  });

  it('qemu is loaded on demand and serves the host, its instances under <DATA_DIR>/instances/', async () => {
    const driver = await createDriver('qemu', { host: 'node-1', dataDir: dir });
    expect(driver.host).toBe('node-1');
    expect(driver.capabilities.sharedInstancePath).toBe(true);
    expect((driver as QemuDriver).layout.instancesDir).toBe(path.join(dir, 'instances'));
    expect(await driver.listGuests()).toEqual([]);
  });
});

describe('the default fleet of real guests', () => {
  it('COMPUTE_DRIVER=qemu without a FLEET_FILE runs fleet/qemu.json: three qemu hosts that fit a few guests', () => {
    const env = loadEnv({ COMPUTE_DRIVER: 'qemu' });
    expect(env.FLEET_FILE).toBe(QEMU_FLEET_FILE);
    expect(loadEnv({ COMPUTE_DRIVER: 'qemu', FLEET_FILE: '/x.json' }).FLEET_FILE).toBe('/x.json');
    expect(loadEnv({}).FLEET_FILE).toMatch(/fleet\/default\.json$/);
    const fleet = FleetSchema.parse(JSON.parse(readFileSync(QEMU_FLEET_FILE, 'utf8')));
    expect(fleet.hosts.map((h) => [h.name, h.driver])).toEqual([
      ['qemu-1', 'qemu'],
      ['qemu-2', 'qemu'],
      ['qemu-3', 'qemu'],
    ]);
    // An m1.small (2048 MB) and an m1.tiny (512 MB) fit on each host after its reserved 512 MB.
    for (const h of fleet.hosts) expect(h.memoryMb - h.reserved.memoryMb).toBeGreaterThanOrEqual(2048 + 512);
  });
});
