import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import type { RebuildActivities, RebuildSpawnProgress } from '../../../src/activities/compute/rebuild';
import { createRebuildActivities } from '../../../src/activities/compute/rebuild';
import { createComputeActivities } from '../../../src/activities/compute';
import type { FakeDriverOptions } from '../../../src/compute/fake';
import { FakeDriver, networkInfoFor } from '../../../src/compute/fake';
import type { DomainError } from '../../../src/domain/errors';
import { CIRROS, makeStateDir, SMALL, TINY, UBUNTU } from './helpers';

const HOST = 'node-1';
const ID = 'inst-1';
const SPAWN = { instanceId: ID, name: 'vm-1', flavor: SMALL, image: CIRROS };

/** A fresh environment per run: a cancelled MockActivityEnvironment stays cancelled. */
const mockEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment({ taskQueue: `compute-${HOST}`, ...info }, { logger: new DefaultLogger('ERROR') });

describe('rebuild compute activities', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let driver: FakeDriver;
  let activities: RebuildActivities;
  const setUp = (options: Partial<FakeDriverOptions> = {}) => {
    driver = new FakeDriver({ host: HOST, stateDir: dir, spawnSeconds: 0.3, ...options });
    activities = createRebuildActivities({ host: HOST, driver });
  };
  /** A built guest: port, disk, running guest with `image`. */
  const build = async (image = CIRROS) => {
    await driver.allocateNetworks({ instanceId: ID });
    await driver.prepareBlockDevices({ instanceId: ID, flavor: SMALL, image: image });
    await driver.spawn({ ...SPAWN, image });
  };

  beforeEach(async () => {
    ({ dir, cleanup } = await makeStateDir());
    setUp();
  });
  afterEach(() => cleanup());

  it('refuses a driver of another host, and is part of every compute worker', () => {
    expect(() => createRebuildActivities({ host: 'node-2', driver })).toThrow(/node-2/);
    const all = createComputeActivities({ host: HOST, driver });
    expect(typeof all.rebuildPrepare).toBe('function');
    expect(typeof all.rebuildSpawn).toBe('function');
  });

  describe('rebuildPrepare', () => {
    it('removes the old guest, keeps its port and lays out the disk from the new image', async () => {
      await build();
      const result = await mockEnv().run(activities.rebuildPrepare, { instanceId: ID, flavor: SMALL, image: UBUNTU });
      expect(result).toEqual({
        host: HOST,
        removedGuest: true,
        network: networkInfoFor(ID),
        blockDevices: {
          rootDeviceName: '/dev/vda',
          devices: [expect.objectContaining({ imageName: 'ubuntu-24.04', sizeGb: 20 })],
        },
      });
      expect(await driver.listGuests()).toEqual([]);
    });

    it('on an evacuation destination (no guest) plugs the port; a repeat is harmless', async () => {
      const env = mockEnv();
      const first = await env.run(activities.rebuildPrepare, { instanceId: ID, flavor: SMALL, image: CIRROS });
      const again = await mockEnv().run(activities.rebuildPrepare, { instanceId: ID, flavor: SMALL, image: CIRROS });
      expect(first).toMatchObject({ removedGuest: false, network: networkInfoFor(ID) });
      expect(again).toEqual(first);
    });

    it('aborts, leaving the old guest untouched, when the image is larger than the flavor disk', async () => {
      await build();
      const err = (await mockEnv()
        .run(activities.rebuildPrepare, { instanceId: ID, flavor: TINY, image: UBUNTU })
        .catch((e: unknown) => e)) as DomainError;
      expect(err.name).toBe('BuildAborted');
      expect(err.message).toMatch(/disk is too small/i);
      expect((await driver.listGuests()).map((g) => [g.instanceId, g.image.name, g.powerState])).toEqual([
        [ID, 'cirros', 'running'],
      ]);
    });
  });

  describe('rebuildSpawn', () => {
    it('boots the new guest, heartbeating { percent }, and returns it running', async () => {
      await build();
      await activities.rebuildPrepare({ instanceId: ID, flavor: SMALL, image: UBUNTU });
      const env = mockEnv();
      const seen: number[] = [];
      env.on('heartbeat', (d: RebuildSpawnProgress) => seen.push(d.percent));
      const result = await env.run(activities.rebuildSpawn, { ...SPAWN, image: UBUNTU, powerOn: true });
      expect(result).toEqual({ host: HOST, powerState: 'running' });
      expect(seen.at(-1)).toBe(100);
      expect(seen.length).toBeGreaterThanOrEqual(2);
      const guest = await driver.getGuest(ID);
      expect(guest).toMatchObject({ image: { name: 'ubuntu-24.04' }, status: 'active', powerState: 'running' });
      expect(guest?.network).toEqual(networkInfoFor(ID));
    });

    it('keeps a stopped instance stopped: the new guest is powered off once booted; a retry stays off', async () => {
      await build();
      await driver.powerOff({ instanceId: ID });
      await activities.rebuildPrepare({ instanceId: ID, flavor: SMALL, image: CIRROS });
      const input = { ...SPAWN, powerOn: false };
      expect(await mockEnv().run(activities.rebuildSpawn, input)).toEqual({ host: HOST, powerState: 'shutdown' });
      // At-least-once delivery: the same spawn again makes no second guest and leaves it off.
      expect(await mockEnv({ attempt: 2 }).run(activities.rebuildSpawn, input)).toEqual({
        host: HOST,
        powerState: 'shutdown',
      });
      expect((await driver.listGuests()).map((g) => [g.instanceId, g.powerState])).toEqual([[ID, 'shutdown']]);
    });

    it.each([
      ['abort', /unacceptable/i],
      ['reschedule', /Rebuild on node-1 failed: Hypervisor error/],
    ] as const)(
      'a %s spawn fault is BuildAborted (a rebuild is never rescheduled) and leaves no guest',
      async (kind, message) => {
        await driver.setFaults({ spawn: { failNext: 1, kind } });
        await activities.rebuildPrepare({ instanceId: ID, flavor: SMALL, image: CIRROS });
        const err = (await mockEnv()
          .run(activities.rebuildSpawn, { ...SPAWN, powerOn: true })
          .catch((e: unknown) => e)) as DomainError;
        expect(err.name).toBe('BuildAborted');
        expect(err.message).toMatch(message);
        expect(await driver.listGuests()).toEqual([]);
      }
    );

    it('a busy hypervisor stays transient (HypervisorBusy, retried on the same host)', async () => {
      await driver.setFaults({ busyNext: 1 });
      const err = (await mockEnv()
        .run(activities.rebuildSpawn, { ...SPAWN, powerOn: true })
        .catch((e: unknown) => e)) as DomainError;
      expect(err.name).toBe('HypervisorBusy');
      await expect(mockEnv({ attempt: 2 }).run(activities.rebuildSpawn, { ...SPAWN, powerOn: true })).resolves.toEqual({
        host: HOST,
        powerState: 'running',
      });
    });

    it('on cancellation tears down the half-made guest and rejects with the cancellation', async () => {
      setUp({ spawnSeconds: 5 });
      await activities.rebuildPrepare({ instanceId: ID, flavor: SMALL, image: CIRROS });
      const env = mockEnv();
      env.on('heartbeat', (d: RebuildSpawnProgress) => d.percent > 0 && env.cancel());
      const err = await env.run(activities.rebuildSpawn, { ...SPAWN, powerOn: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CancelledFailure);
      expect(await driver.listGuests()).toEqual([]);
    });

    it('a retry after a run that died half-way takes the half-made guest over', async () => {
      setUp({ spawnSeconds: 0.3 });
      await driver.setFaults({ hangNext: 1 });
      await activities.rebuildPrepare({ instanceId: ID, flavor: SMALL, image: CIRROS });
      const hung = mockEnv();
      const first = hung.run(activities.rebuildSpawn, { ...SPAWN, powerOn: true });
      first.catch(() => undefined);
      await vi.waitFor(async () => expect((await driver.getGuest(ID))?.status).toBe('spawning'), {
        timeout: 1_000,
        interval: 20,
      });
      // The heartbeat timeout: the server retries on the same host while the first run still hangs.
      await expect(mockEnv({ attempt: 2 }).run(activities.rebuildSpawn, { ...SPAWN, powerOn: true })).resolves.toEqual({
        host: HOST,
        powerState: 'running',
      });
      hung.cancel();
      await expect(first).rejects.toBeInstanceOf(CancelledFailure);
      expect((await driver.listGuests()).map((g) => g.instanceId)).toEqual([ID]);
      expect(await driver.getGuest(ID)).toMatchObject({ status: 'active', boots: 1 });
    });
  });
});
