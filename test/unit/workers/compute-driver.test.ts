import { access } from 'node:fs/promises';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { FakeDriver } from '../../../src/compute/fake';
import type { QemuDriver } from '../../../src/compute/qemu';
import { FleetSchema } from '../../../src/domain/fleet';
import { createDriver } from '../../../src/workers/compute-driver';
import { EnvSchema } from '../../../src/workers/config';
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
