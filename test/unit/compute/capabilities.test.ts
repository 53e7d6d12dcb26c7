import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { createComputeActivities } from '../../../src/activities/compute';
import type { DriverCapabilities } from '../../../src/compute/driver';
import { resolveBlockMigration, StorageModeRefused } from '../../../src/compute/driver';
import { FAKE_CAPABILITIES, FakeDriver } from '../../../src/compute/fake';
import { InstanceNotFound, MigrationPreCheckError, Rescheduled } from '../../../src/domain/errors';
import { CIRROS, makeStateDir, SMALL, TINY } from './helpers';

const HOST = 'node-1';
const SOURCE = 'node-0';
const CPU = { architecture: 'x86_64', traits: [] };
const SHARED: DriverCapabilities = { ...FAKE_CAPABILITIES, sharedInstancePath: true, supportsBlockMigration: false };
const where = { instanceId: 'inst-1', host: HOST, sourceHost: SOURCE };

/** A fake with other capabilities: what a driver with shared storage (or fewer abilities) declares. */
class FakeWith extends FakeDriver {
  constructor(
    stateDir: string,
    override readonly capabilities: DriverCapabilities
  ) {
    super({ host: HOST, stateDir, spawnSeconds: 0 });
  }
}

const run = <P extends unknown[], R>(fn: (...args: P) => Promise<R>, ...args: P): Promise<R> =>
  new MockActivityEnvironment({ taskQueue: `compute-${HOST}` }, { logger: new DefaultLogger('ERROR') }).run(
    fn,
    ...args
  );

describe('resolveBlockMigration (Nova: block_migration auto / InvalidLocalStorage / InvalidSharedStorage)', () => {
  it('auto is a block migration without shared storage and a plain one with it', () => {
    expect(resolveBlockMigration('auto', FAKE_CAPABILITIES, where)).toBe(true);
    expect(resolveBlockMigration('auto', SHARED, where)).toBe(false);
  });

  it('refuses a block migration on shared storage, and a plain one without it', () => {
    expect(() => resolveBlockMigration(true, SHARED, where)).toThrow(
      /Block migration can not be used with shared storage/
    );
    expect(() => resolveBlockMigration(false, FAKE_CAPABILITIES, where)).toThrow(/share no storage/);
    expect(() => resolveBlockMigration(false, FAKE_CAPABILITIES, where)).toThrow(StorageModeRefused);
  });

  it('refuses a block migration the driver cannot copy disks for', () => {
    const noBlock = { ...FAKE_CAPABILITIES, supportsBlockMigration: false };
    expect(() => resolveBlockMigration('auto', noBlock, where)).toThrow(/copies no disks/);
  });
});

describe('compute activities consult the driver capabilities', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeStateDir());
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await cleanup();
  });

  const check = (blockMigration: boolean | 'auto') => ({
    instanceId: 'inst-1',
    sourceHost: SOURCE,
    sourceCpu: CPU,
    blockMigration,
  });

  it('the destination check hands the driver the storage mode resolved from its capabilities', async () => {
    const driver = new FakeWith(dir, SHARED);
    const spy = vi.spyOn(driver, 'checkCanLiveMigrateDestination');
    const activities = createComputeActivities({ host: HOST, driver });
    await expect(run(activities.checkCanLiveMigrateDestination, check('auto'))).resolves.toEqual({ host: HOST });
    expect(spy).toHaveBeenCalledWith(expect.objectContaining({ blockMigration: false }));
  });

  it('a block migration onto shared storage is refused as a pre-check error, the driver never asked', async () => {
    const driver = new FakeWith(dir, SHARED);
    const spy = vi.spyOn(driver, 'checkCanLiveMigrateDestination');
    const activities = createComputeActivities({ host: HOST, driver });
    const err = await run(activities.checkCanLiveMigrateDestination, check(true)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationPreCheckError);
    expect((err as Error).message).toMatch(/Block migration can not be used with shared storage/);
    expect(spy).not.toHaveBeenCalled();
  });

  it('the fake (no shared storage) takes auto as a block migration and refuses a plain one', async () => {
    const activities = createComputeActivities({ host: HOST, driver: new FakeDriver({ host: HOST, stateDir: dir }) });
    await expect(run(activities.checkCanLiveMigrateDestination, check('auto'))).resolves.toEqual({ host: HOST });
    await expect(run(activities.checkCanLiveMigrateDestination, check(false))).rejects.toThrow(/share no storage/);
  });

  it('a driver without live migration fails both pre-checks', async () => {
    const driver = new FakeWith(dir, { ...FAKE_CAPABILITIES, supportsLiveMigration: false });
    const activities = createComputeActivities({ host: HOST, driver });
    await driver.spawn({ instanceId: 'inst-1', name: 'vm', flavor: TINY, image: CIRROS });
    await expect(run(activities.checkCanLiveMigrateSource, { instanceId: 'inst-1' })).rejects.toBeInstanceOf(
      MigrationPreCheckError
    );
    await expect(run(activities.checkCanLiveMigrateDestination, check('auto'))).rejects.toThrow(
      /cannot receive a live migration/
    );
  });

  it('a same-host resize is rescheduled when the driver cannot migrate to its own host', async () => {
    const driver = new FakeWith(dir, { ...FAKE_CAPABILITIES, supportsMigrateToSameHost: false });
    const activities = createComputeActivities({ host: HOST, driver });
    const input = {
      instanceId: 'inst-1',
      migrationId: 'mig-1',
      sourceHost: HOST,
      oldFlavor: TINY,
      newFlavor: SMALL,
      image: CIRROS,
    };
    const err = await run(activities.prepResize, input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Rescheduled);
    expect((err as Error).message).toMatch(/Unable to migrate instance \(inst-1\) to current host/);
    // The fake can: the same request passes.
    const fake = createComputeActivities({ host: HOST, driver: new FakeDriver({ host: HOST, stateDir: dir }) });
    await expect(run(fake.prepResize, input)).resolves.toEqual({ host: HOST });
  });
});

describe('getConsoleOutput activity', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeStateDir());
  });
  afterEach(() => cleanup());

  it("returns the guest's console, its last lines when asked, and InstanceNotFound for a guest not here", async () => {
    const driver = new FakeDriver({ host: HOST, stateDir: dir, spawnSeconds: 0 });
    const activities = createComputeActivities({ host: HOST, driver });
    await driver.spawn({ instanceId: 'inst-1', name: 'vm', flavor: TINY, image: CIRROS });
    await driver.powerOff({ instanceId: 'inst-1' });
    const all = await run(activities.getConsoleOutput, { instanceId: 'inst-1' });
    expect(all.host).toBe(HOST);
    expect(all.output.split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(/spawning: flavor m1.tiny, image cirros$/),
      expect.stringMatching(/GUEST-BOOT boot=1 image=cirros$/),
      expect.stringMatching(/powered off \(forced\)$/),
    ]);
    const last = await run(activities.getConsoleOutput, { instanceId: 'inst-1', lines: 1 });
    expect(last.output).toMatch(/^\[[^\]]+\] powered off \(forced\)\n$/);
    await expect(run(activities.getConsoleOutput, { instanceId: 'ghost' })).rejects.toBeInstanceOf(InstanceNotFound);
  });
});
