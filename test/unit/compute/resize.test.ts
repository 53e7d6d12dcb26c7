import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { ResizeActivities, ResizeProgress } from '../../../src/activities/compute/resize';
import { createResizeActivities } from '../../../src/activities/compute/resize';
import type { GuestFlavor } from '../../../src/compute/driver';
import type { FakeDriverOptions } from '../../../src/compute/fake';
import { FakeDriver, networkInfoFor } from '../../../src/compute/fake';
import { FaultsSchema } from '../../../src/compute/fake';
import type { DomainError } from '../../../src/domain/errors';
import { CIRROS, makeStateDir, SMALL, TINY, UBUNTU } from './helpers';

const SOURCE = 'node-1';
const DEST = 'node-2';
const ID = 'inst-1';
const MIGRATION = 'mig-1';
const MEDIUM: GuestFlavor = { name: 'm1.medium', vcpus: 2, memoryMb: 4096, diskGb: 40 };

/** A fresh environment per run: a cancelled MockActivityEnvironment stays cancelled. */
const mockEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment({ ...info }, { logger: new DefaultLogger('ERROR') });

const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  mockEnv().run(fn, ...args);

const failure = (promise: Promise<unknown>): Promise<DomainError> =>
  promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as DomainError
  );

describe('resize compute activities', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let source: FakeDriver;
  let dest: FakeDriver;
  let onSource: ResizeActivities;
  let onDest: ResizeActivities;

  const setUp = (options: Partial<FakeDriverOptions> = {}) => {
    const make = (host: string) =>
      new FakeDriver({ host, stateDir: dir, spawnSeconds: 0.3, shutdownSeconds: 0.1, ...options });
    source = make(SOURCE);
    dest = make(DEST);
    onSource = createResizeActivities({ host: SOURCE, driver: source });
    onDest = createResizeActivities({ host: DEST, driver: dest });
  };

  /** A running guest of the instance on the source, built the normal way. */
  const boot = async (flavor: GuestFlavor = SMALL) => {
    await source.allocateNetworks({ instanceId: ID });
    await source.prepareBlockDevices({ instanceId: ID, flavor: flavor, image: CIRROS });
    await source.spawn({ instanceId: ID, name: 'vm-1', flavor, image: CIRROS });
  };

  const transfer = (newFlavor: GuestFlavor = MEDIUM, shutdownTimeoutSeconds = 5) =>
    run(onSource.resizeInstance, { instanceId: ID, migrationId: MIGRATION, newFlavor, shutdownTimeoutSeconds });

  const finish = (driverActivities: ResizeActivities, powerOn = true, newFlavor: GuestFlavor = MEDIUM) =>
    run(driverActivities.finishResize, {
      instanceId: ID,
      migrationId: MIGRATION,
      name: 'vm-1',
      newFlavor,
      image: CIRROS,
      powerOn,
    });

  beforeEach(async () => {
    ({ dir, cleanup } = await makeStateDir());
    setUp();
  });
  afterEach(() => cleanup());

  it('refuses a driver of another host', () => {
    expect(() => createResizeActivities({ host: DEST, driver: source })).toThrow(/node-2/);
  });

  it('the fault file accepts the resize keys and refuses a misspelt one', () => {
    expect(
      FaultsSchema.parse({ prepResize: { failNext: 1 }, migrateDisk: { failNext: 2 }, finishResize: { failNext: 0 } })
    ).toEqual({ prepResize: { failNext: 1 }, migrateDisk: { failNext: 2 }, finishResize: { failNext: 0 } });
    expect(FaultsSchema.safeParse({ prepResize: { failnext: 1 } }).success).toBe(false);
  });

  describe('prepResize (destination)', () => {
    const prep = (activities: ResizeActivities, overrides: Record<string, unknown> = {}) =>
      run(activities.prepResize, {
        instanceId: ID,
        migrationId: MIGRATION,
        sourceHost: SOURCE,
        oldFlavor: SMALL,
        newFlavor: MEDIUM,
        image: CIRROS,
        ...overrides,
      });

    it('accepts a host that can take the instance, writing nothing, as often as asked', async () => {
      await expect(prep(onDest)).resolves.toEqual({ host: DEST });
      await expect(prep(onDest)).resolves.toEqual({ host: DEST });
      expect(await dest.listGuests()).toEqual([]);
    });

    it('reschedules a same-host move that keeps the flavor (UnableToMigrateToSelf) but not a same-host resize', async () => {
      const err = await failure(prep(onSource, { newFlavor: SMALL }));
      expect(err.name).toBe('Rescheduled');
      expect(err.message).toBe(
        `Resize of instance ${ID} on ${SOURCE} was re-scheduled: Unable to migrate instance ${ID} to the current host (${SOURCE})`
      );
      await expect(prep(onSource)).resolves.toEqual({ host: SOURCE });
    });

    it('aborts (MigrationError) when the image does not fit the new flavor: no other host helps', async () => {
      const err = await failure(prep(onDest, { newFlavor: TINY, image: UBUNTU }));
      expect(err.name).toBe('MigrationError');
      expect(err.message).toMatch(/Flavor's disk is too small/);
    });

    it('an injected prepResize.failNext reschedules once, then the host accepts', async () => {
      await dest.setFaults({ prepResize: { failNext: 1 } });
      const err = await failure(prep(onDest));
      expect(err.name).toBe('Rescheduled');
      expect(err.message).toMatch(/injected fault \(prepResize\.failNext\)/);
      expect(await dest.getFaults()).toEqual({ prepResize: { failNext: 0 } });
      await expect(prep(onDest)).resolves.toEqual({ host: DEST });
    });
  });

  describe('resizeInstance (source)', () => {
    it('powers off, heartbeats the transfer up to 100 %, and keeps the guest aside', async () => {
      await boot();
      const env = mockEnv();
      const seen: ResizeProgress[] = [];
      env.on('heartbeat', (d: ResizeProgress) => seen.push(d));
      await expect(
        env.run(onSource.resizeInstance, { instanceId: ID, migrationId: MIGRATION, newFlavor: MEDIUM })
      ).resolves.toEqual({ host: SOURCE, transferred: true, diskGb: 20 });
      expect(seen[0]).toEqual({ phase: 'powering-off', percent: 0 });
      const transferring = seen.filter((s) => s.phase === 'transferring').map((s) => s.percent);
      expect(transferring.length).toBeGreaterThanOrEqual(3);
      expect(transferring.at(-1)).toBe(100);
      expect(transferring).toEqual([...transferring].sort((a, b) => a - b));
      expect(await source.getGuest(ID)).toBeUndefined();
      expect(await source.getResizeAsideGuest(ID)).toMatchObject({ instanceId: ID, powerState: 'shutdown' });
    });

    it('is idempotent: a retry after the transfer returns at once without transferring again', async () => {
      await boot();
      await transfer();
      const retry = mockEnv({ attempt: 2 });
      const seen: ResizeProgress[] = [];
      retry.on('heartbeat', (d: ResizeProgress) => seen.push(d));
      await expect(
        retry.run(onSource.resizeInstance, { instanceId: ID, migrationId: MIGRATION, newFlavor: MEDIUM })
      ).resolves.toEqual({ host: SOURCE, transferred: false, diskGb: 20 });
      expect(seen).toEqual([{ phase: 'transferring', percent: 100 }]);
    });

    it('forces a guest that ignores ACPI off after the shutdown timeout; timeout 0 forces it at once', async () => {
      await boot();
      await source.setFaults({ ignoreShutdown: true });
      const started = performance.now();
      await transfer(MEDIUM, 0.4);
      expect(performance.now() - started).toBeGreaterThanOrEqual(400);
      expect(await source.getResizeAsideGuest(ID)).toMatchObject({ powerState: 'shutdown' });
    });

    it('leaves an already stopped guest as it is and transfers its disk', async () => {
      await boot();
      await source.powerOff({ instanceId: ID });
      await expect(transfer(MEDIUM, 0)).resolves.toMatchObject({ transferred: true });
      expect(await source.getResizeAsideGuest(ID)).toMatchObject({ powerState: 'shutdown' });
    });

    it('refuses to shrink the root disk before touching the guest (MigrationError, marked to roll back)', async () => {
      await boot(MEDIUM);
      const err = await failure(transfer(SMALL));
      expect(err.name).toBe('MigrationError');
      expect(err.message).toMatch(/Unable to resize disk down/);
      // Nova's InstanceFaultRollback: the workflow puts the instance back as it was, not ERROR.
      expect(err.details).toMatchObject({ instanceId: ID, migrationId: MIGRATION, host: SOURCE, rollback: true });
      expect(await source.getGuest(ID)).toMatchObject({ powerState: 'running' });
      expect(await source.getResizeAsideGuest(ID)).toBeUndefined();
    });

    it('an injected migrateDisk failure strikes mid-transfer: MigrationError, the guest off and still in place', async () => {
      await boot();
      await source.setFaults({ migrateDisk: { failNext: 1 } });
      const err = await failure(transfer());
      expect(err.name).toBe('MigrationError');
      expect(err.message).toMatch(/Disk transfer of instance inst-1 from node-1 failed/);
      expect(err.details).toMatchObject({ instanceId: ID, migrationId: MIGRATION, host: SOURCE });
      expect(err.details).not.toHaveProperty('rollback');
      expect(await source.getGuest(ID)).toMatchObject({ powerState: 'shutdown' });
      expect(await source.getResizeAsideGuest(ID)).toBeUndefined();
    });

    it('on cancellation stops the transfer with the guest off and still in place', async () => {
      await boot();
      const env = mockEnv();
      env.on('heartbeat', (d: ResizeProgress) => d.phase === 'transferring' && d.percent > 0 && env.cancel());
      const err = await env
        .run(onSource.resizeInstance, { instanceId: ID, migrationId: MIGRATION, newFlavor: MEDIUM })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CancelledFailure);
      expect(await source.getGuest(ID)).toMatchObject({ powerState: 'shutdown' });
      expect(await source.getResizeAsideGuest(ID)).toBeUndefined();
    });

    it('fails with InstanceNotFound when the host has no such guest', async () => {
      expect((await failure(transfer())).name).toBe('InstanceNotFound');
    });
  });

  describe('finishResize (destination)', () => {
    it('creates the guest with the new flavor on the instance port, running, idempotently by migration id', async () => {
      const first = await finish(onDest);
      expect(first).toEqual({ host: DEST, powerState: 'running', created: true });
      const guest = await dest.getGuest(ID);
      expect(guest).toMatchObject({ host: DEST, flavor: MEDIUM, spawnId: MIGRATION, network: networkInfoFor(ID) });
      expect(guest?.blockDevices?.devices[0]?.sizeGb).toBe(40);
      expect(await finish(onDest)).toEqual({ host: DEST, powerState: 'running', created: false });
      expect(await dest.listGuests()).toHaveLength(1);
    });

    it('keeps a stopped instance stopped', async () => {
      expect(await finish(onDest, false)).toEqual({ host: DEST, powerState: 'shutdown', created: true });
    });

    it('an injected finishResize failure is a MigrationError and leaves no guest; the retry finishes', async () => {
      await dest.setFaults({ finishResize: { failNext: 1 } });
      expect((await failure(finish(onDest))).name).toBe('MigrationError');
      expect(await dest.listGuests()).toEqual([]);
      expect(await finish(onDest)).toMatchObject({ created: true });
    });

    it('refuses when a guest of the instance from something else is already there', async () => {
      await dest.spawn({ instanceId: ID, name: 'vm-1', flavor: SMALL, image: CIRROS });
      const err = await failure(finish(onDest));
      expect(err.name).toBe('MigrationError');
      expect(err.message).toMatch(/already exists on node-2/);
    });
  });

  describe('confirm and revert', () => {
    it('confirm deletes the source guest kept aside, its port and disk; the destination guest stays', async () => {
      await boot();
      await transfer();
      await finish(onDest);
      expect(await run(onSource.confirmResize, { instanceId: ID, migrationId: MIGRATION })).toEqual({
        destroyed: true,
      });
      expect(await source.listGuests()).toEqual([]);
      expect(await run(onSource.confirmResize, { instanceId: ID, migrationId: MIGRATION })).toEqual({
        destroyed: false,
      });
      expect(await dest.getGuest(ID)).toMatchObject({ flavor: MEDIUM, powerState: 'running' });
    });

    it('revert destroys the destination guest and puts the source guest back, powered on', async () => {
      await boot();
      await transfer();
      await finish(onDest);
      const ref = { instanceId: ID, migrationId: MIGRATION };
      expect(await run(onDest.revertResize, ref)).toEqual({ destroyed: true });
      expect(await run(onDest.revertResize, ref)).toEqual({ destroyed: false });
      expect(await dest.listGuests()).toEqual([]);
      expect(await run(onSource.finishRevertResize, { ...ref, powerOn: true })).toEqual({
        host: SOURCE,
        powerState: 'running',
      });
      expect(await run(onSource.finishRevertResize, { ...ref, powerOn: true })).toEqual({
        host: SOURCE,
        powerState: 'running',
      });
      expect(await source.listGuests()).toEqual([
        expect.objectContaining({ instanceId: ID, flavor: SMALL, powerState: 'running' }),
      ]);
      expect(await source.getResizeAsideGuest(ID)).toBeUndefined();
    });

    it('finishRevertResize keeps a stopped instance off, and also undoes a move that never got aside', async () => {
      await boot();
      await source.setFaults({ migrateDisk: { failNext: 1 } });
      await failure(transfer());
      expect(
        await run(onSource.finishRevertResize, { instanceId: ID, migrationId: MIGRATION, powerOn: false })
      ).toMatchObject({ powerState: 'shutdown' });
      expect(
        await run(onSource.finishRevertResize, { instanceId: ID, migrationId: MIGRATION, powerOn: true })
      ).toMatchObject({ powerState: 'running' });
    });

    it('a same-host resize keeps both guests apart: confirm keeps the new one, revert restores the old one', async () => {
      await boot();
      await transfer();
      await finish(onSource);
      const ref = { instanceId: ID, migrationId: MIGRATION };
      const both = (await source.listGuests()).map((g) => [g.instanceId, g.flavor.name, g.powerState]);
      expect(both.sort()).toEqual([
        [ID, 'm1.medium', 'running'],
        [ID, 'm1.small', 'shutdown'],
      ]);
      // Revert: the new guest goes, the old one (its disk, its port) comes back.
      expect(await run(onSource.revertResize, ref)).toEqual({ destroyed: true });
      await run(onSource.finishRevertResize, { ...ref, powerOn: true });
      expect(await source.listGuests()).toEqual([
        expect.objectContaining({ instanceId: ID, flavor: SMALL, powerState: 'running', network: networkInfoFor(ID) }),
      ]);
      expect((await source.getGuest(ID))?.blockDevices?.devices[0]?.sizeGb).toBe(20);

      // Again, then confirm: only the new guest is left, with its port.
      const again = { instanceId: ID, migrationId: 'mig-2' };
      await run(onSource.resizeInstance, { ...again, newFlavor: MEDIUM, shutdownTimeoutSeconds: 5 });
      await run(onSource.finishResize, { ...again, name: 'vm-1', newFlavor: MEDIUM, image: CIRROS, powerOn: true });
      expect(await run(onSource.confirmResize, again)).toEqual({ destroyed: true });
      expect(await source.listGuests()).toEqual([
        expect.objectContaining({ instanceId: ID, flavor: MEDIUM, network: networkInfoFor(ID) }),
      ]);
      expect(await source.getGuest(ID)).toMatchObject({ spawnId: 'mig-2' });
    });
  });
});
