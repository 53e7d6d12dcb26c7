import { setTimeout as sleep } from 'node:timers/promises';

import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import type { ComputeActivities, SpawnProgress } from '../../../src/activities/compute';
import { createComputeActivities } from '../../../src/activities/compute';
import type { FakeDriverOptions } from '../../../src/compute/fake';
import { FakeDriver, networkInfoFor } from '../../../src/compute/fake';
import type { DomainError } from '../../../src/domain/errors';
import { CIRROS, makeStateDir, manualClock, TINY, UBUNTU } from './helpers';

const HOST = 'node-1';
const SPAWN = { instanceId: 'inst-1', name: 'vm-1', flavor: TINY, image: CIRROS };

/** A fresh environment per run: a cancelled MockActivityEnvironment stays cancelled. */
const mockEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment({ taskQueue: `compute-${HOST}`, ...info }, { logger: new DefaultLogger('ERROR') });

/** Records the heartbeats of an environment with the time each arrived. */
function recordHeartbeats(env: MockActivityEnvironment): { percent: number; at: number }[] {
  const seen: { percent: number; at: number }[] = [];
  env.on('heartbeat', (details: SpawnProgress) => seen.push({ percent: details.percent, at: performance.now() }));
  return seen;
}

describe('compute activities', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let driver: FakeDriver;
  let activities: ComputeActivities;
  const setUp = (options: Partial<FakeDriverOptions> = {}) => {
    driver = new FakeDriver({ host: HOST, stateDir: dir, spawnSeconds: 0.3, ...options });
    activities = createComputeActivities({ host: HOST, driver });
  };

  beforeEach(async () => {
    ({ dir, cleanup } = await makeStateDir());
    setUp();
  });
  afterEach(() => cleanup());

  it('refuses a driver of another host', () => {
    expect(() => createComputeActivities({ host: 'node-2', driver })).toThrow(/node-2/);
  });

  describe('spawnInstance', () => {
    it('heartbeats { percent } at least every second while spawning and returns the host', async () => {
      setUp({ spawnSeconds: 0.5 });
      const env = mockEnv();
      const seen = recordHeartbeats(env);
      await expect(env.run(activities.spawnInstance, SPAWN)).resolves.toEqual({ host: HOST, powerState: 'running' });
      expect(seen.length).toBeGreaterThanOrEqual(3);
      expect(seen[0]?.percent).toBeGreaterThan(0);
      expect(seen.at(-1)?.percent).toBe(100);
      const gaps = seen.slice(1).map((s, i) => s.at - (seen[i]?.at ?? 0));
      expect(Math.max(...gaps)).toBeLessThan(1000);
      expect(await driver.getPowerState({ instanceId: 'inst-1' })).toBe('running');
    });

    it('on cancellation tears down the half-made guest and rejects with the cancellation', async () => {
      await activities.allocateNetworks({ instanceId: 'inst-1' });
      const env = mockEnv();
      env.on('heartbeat', (details: SpawnProgress) => details.percent > 0 && env.cancel());
      const err = await env.run(activities.spawnInstance, SPAWN).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CancelledFailure);
      expect(await driver.listGuests()).toEqual([]);
      expect(await activities.destroyInstance({ instanceId: 'inst-1' })).toEqual({ destroyed: false });
    });

    it('a hung spawn stops heartbeating, never completes, and still aborts when cancelled', async () => {
      // A 1 s spawn reports progress every 200 ms until the hang strikes halfway (0.5 s), then nothing.
      setUp({ spawnSeconds: 1 });
      await driver.setFaults({ hangNext: 1 });
      const env = mockEnv();
      const seen = recordHeartbeats(env);
      let settled = false;
      const running = env.run(activities.spawnInstance, SPAWN).finally(() => (settled = true));
      running.catch(() => undefined); // observed below

      await vi.waitFor(() => expect(seen.length).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
      await sleep(600); // past the hang
      const countWhenHung = seen.length;
      await sleep(800); // longer than the whole spawn would have taken
      expect(seen.length).toBe(countWhenHung);
      expect(seen.at(-1)?.percent).toBeLessThan(100);
      expect(settled).toBe(false);

      env.cancel();
      await expect(running).rejects.toBeInstanceOf(CancelledFailure);
      expect(await driver.listGuests()).toEqual([]);
      expect(await driver.getFaults()).toEqual({ hangNext: 0 });
    });

    it.each([
      [{ spawn: { failNext: 1 } }, 'Rescheduled'],
      [{ spawn: { failNext: 1, kind: 'reschedule' as const } }, 'Rescheduled'],
      [{ spawn: { failNext: 1, kind: 'abort' as const } }, 'BuildAborted'],
      [{ busyNext: 1 }, 'HypervisorBusy'],
    ])('injected fault %j fails the spawn as %s and leaves no guest', async (faults, name) => {
      await driver.setFaults(faults);
      const err = (await mockEnv()
        .run(activities.spawnInstance, SPAWN)
        .catch((e: unknown) => e)) as DomainError;
      expect(err.name).toBe(name);
      expect(err.details).toMatchObject(name === 'HypervisorBusy' ? { host: HOST } : { instanceId: 'inst-1' });
      expect(await driver.listGuests()).toEqual([]);
    });

    it('a reschedulable failure also releases the networks and block devices it held on this host', async () => {
      await activities.allocateNetworks({ instanceId: 'inst-1' });
      await activities.prepareBlockDevices({ instanceId: 'inst-1', flavor: TINY, image: CIRROS });
      await driver.setFaults({ spawn: { failNext: 1 } });
      const err = (await mockEnv()
        .run(activities.spawnInstance, SPAWN)
        .catch((e: unknown) => e)) as DomainError;
      expect(err.name).toBe('Rescheduled');
      expect(err.message).toMatch(
        /^Build of instance inst-1 was re-scheduled: Hypervisor error while spawning on node-1/
      );
      expect(err.details).toMatchObject({ instanceId: 'inst-1', host: HOST });
      expect(await activities.destroyInstance({ instanceId: 'inst-1' })).toEqual({ destroyed: false });
    });

    it('a retried spawn (attempt 2) of a guest that exists and runs succeeds without a second guest', async () => {
      setUp({ spawnSeconds: 0.05 });
      await mockEnv().run(activities.spawnInstance, SPAWN);
      const [before] = await driver.listGuests();

      const retry = mockEnv({ attempt: 2 });
      const seen = recordHeartbeats(retry);
      await expect(retry.run(activities.spawnInstance, SPAWN)).resolves.toEqual({ host: HOST, powerState: 'running' });
      expect(await driver.listGuests()).toEqual([before]);
      expect(seen.map((s) => s.percent)).toEqual([100]);
    });

    it('a busy hypervisor is retried on the same host: attempt 2 builds the guest', async () => {
      setUp({ spawnSeconds: 0.05 });
      await driver.setFaults({ busyNext: 1 });
      await expect(mockEnv().run(activities.spawnInstance, SPAWN)).rejects.toMatchObject({ name: 'HypervisorBusy' });
      await expect(mockEnv({ attempt: 2 }).run(activities.spawnInstance, SPAWN)).resolves.toMatchObject({ host: HOST });
      expect(await driver.listGuests()).toHaveLength(1);
    });

    it('a retry after an attempt that progressed and went silent removes the half-made guest and reschedules', async () => {
      setUp({ spawnSeconds: 0.05 });
      await driver.allocateNetworks({ instanceId: 'inst-1' });
      const retry = mockEnv({ attempt: 2, heartbeatDetails: { percent: 40 } satisfies SpawnProgress });
      const error = (await retry.run(activities.spawnInstance, SPAWN).catch((e: unknown) => e)) as DomainError;
      expect(error.name).toBe('Rescheduled');
      expect(error.message).toMatch(/stopped heartbeating at 40%/);
      expect(await driver.listGuests()).toEqual([]);
    });

    it('a retry whose previous attempt recorded no progress spawns normally on the same host', async () => {
      setUp({ spawnSeconds: 0.05 });
      await expect(mockEnv({ attempt: 2 }).run(activities.spawnInstance, SPAWN)).resolves.toMatchObject({ host: HOST });
      expect(await driver.listGuests()).toHaveLength(1);
    });
  });

  describe('build steps', () => {
    it('allocateNetworks returns deterministic network info per instance', async () => {
      const env = mockEnv();
      const info = await env.run(activities.allocateNetworks, { instanceId: 'inst-1' });
      expect(info).toEqual(networkInfoFor('inst-1'));
      expect(await mockEnv({ attempt: 2 }).run(activities.allocateNetworks, { instanceId: 'inst-1' })).toEqual(info);
    });

    it('prepareBlockDevices aborts the build when the image does not fit the flavor disk', async () => {
      const err = (await mockEnv()
        .run(activities.prepareBlockDevices, { instanceId: 'inst-1', flavor: TINY, image: UBUNTU })
        .catch((e: unknown) => e)) as DomainError;
      expect(err.name).toBe('BuildAborted');
      expect(err.message).toBe(
        "Build of instance inst-1 aborted: Flavor's disk is too small for requested image. Flavor disk is 1GB, image is 3GB."
      );
    });

    it('prepareBlockDevices returns the root disk', async () => {
      const info = await mockEnv().run(activities.prepareBlockDevices, {
        instanceId: 'inst-1',
        flavor: TINY,
        image: CIRROS,
      });
      expect(info).toMatchObject({ rootDeviceName: '/dev/vda', devices: [{ sizeGb: 1, imageName: 'cirros' }] });
    });
  });

  describe('power and lifecycle', () => {
    it('requestShutdown returns quickly with the current state; the guest is off shutdownSeconds later', async () => {
      const clock = manualClock();
      setUp({ spawnSeconds: 0, now: clock.now, shutdownSeconds: 2 });
      await mockEnv().run(activities.spawnInstance, SPAWN);
      expect(await mockEnv().run(activities.requestShutdown, { instanceId: 'inst-1' })).toEqual({
        powerState: 'running',
      });
      clock.advance(2_000);
      expect(await mockEnv().run(activities.getPowerState, { instanceId: 'inst-1' })).toEqual({
        powerState: 'shutdown',
      });
      expect(await mockEnv().run(activities.powerOnInstance, { instanceId: 'inst-1' })).toEqual({
        powerState: 'running',
      });
      expect(await mockEnv().run(activities.powerOffInstance, { instanceId: 'inst-1' })).toEqual({
        powerState: 'shutdown',
      });
    });

    it('power operations on an unknown guest fail as InstanceNotFound', async () => {
      for (const fn of [
        activities.getPowerState,
        activities.requestShutdown,
        activities.powerOffInstance,
        activities.powerOnInstance,
      ]) {
        await expect(mockEnv().run(fn, { instanceId: 'ghost' })).rejects.toMatchObject({ name: 'InstanceNotFound' });
      }
    });

    it('pause, unpause, suspend, resume: each idempotent (a retry succeeds); a guest in the wrong power state is InstanceInvalidState naming it', async () => {
      setUp({ spawnSeconds: 0 });
      await mockEnv().run(activities.spawnInstance, SPAWN);
      const ref = { instanceId: 'inst-1' };
      for (const [fn, powerState] of [
        [activities.pauseInstance, 'paused'],
        [activities.unpauseInstance, 'running'],
        [activities.suspendInstance, 'suspended'],
        [activities.resumeInstance, 'running'],
      ] as const) {
        expect(await mockEnv().run(fn, ref)).toEqual({ powerState });
        expect(await mockEnv().run(fn, ref)).toEqual({ powerState }); // the retry after a lost answer
      }
      expect((await driver.getGuest('inst-1'))?.boots).toBe(1);
      await driver.powerOff(ref);
      for (const [fn, name] of [
        [activities.pauseInstance, 'pause'],
        [activities.resumeInstance, 'resume'],
      ] as const)
        await expect(mockEnv().run(fn, ref)).rejects.toMatchObject({
          name: 'InstanceInvalidState',
          message: `Cannot '${name}' instance inst-1 while it is in powerState shutdown`,
        });
      await expect(mockEnv().run(activities.suspendInstance, { instanceId: 'ghost' })).rejects.toMatchObject({
        name: 'InstanceNotFound',
      });
    });

    it('destroyInstance is idempotent and listGuests reports what the host has', async () => {
      setUp({ spawnSeconds: 0 });
      await mockEnv().run(activities.spawnInstance, SPAWN);
      await mockEnv().run(activities.spawnInstance, { ...SPAWN, instanceId: 'inst-2', name: 'vm-2' });
      const listed = await activities.listGuests();
      expect(listed.host).toBe(HOST);
      expect(listed.guests.map((g) => g.instanceId)).toEqual(['inst-1', 'inst-2']);
      expect(await mockEnv().run(activities.destroyInstance, { instanceId: 'inst-1' })).toEqual({ destroyed: true });
      expect(await mockEnv().run(activities.destroyInstance, { instanceId: 'inst-1' })).toEqual({ destroyed: false });
      expect((await activities.listGuests()).guests.map((g) => g.instanceId)).toEqual(['inst-2']);
    });
  });
});
