import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import type { SpawnProgress } from '../../../src/activities/compute';
import { createComputeActivities, createHostSlots, Slots } from '../../../src/activities/compute';
import { FakeDriver } from '../../../src/compute/fake';
import { FleetSchema } from '../../../src/domain/fleet';
import { hostLimits } from '../../../src/workers/compute-worker';
import { loadEnv } from '../../../src/workers/config';
import { CIRROS, makeStateDir, TINY } from './helpers';

const HOST = 'node-1';
const spawnOf = (instanceId: string) => ({ instanceId, name: instanceId, flavor: TINY, image: CIRROS });
const mockEnv = () =>
  new MockActivityEnvironment({ taskQueue: `compute-${HOST}` }, { logger: new DefaultLogger('ERROR') });

describe('per-host limits (Nova: max_concurrent_builds, max_concurrent_live_migrations)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await makeStateDir()));
  afterEach(() => cleanup());

  it('ten builds run at once on a host, the eleventh waits heartbeating 0 %, and a stop of another instance completes meanwhile', async () => {
    const driver = new FakeDriver({ host: HOST, stateDir: dir, spawnSeconds: 1.5 });
    const slots = createHostSlots({ maxConcurrentBuilds: 10, maxConcurrentLiveMigrations: 1 });
    const activities = createComputeActivities({ host: HOST, driver, slots });
    await mockEnv().run(activities.spawnInstance, spawnOf('other'));

    const waitingBeats: number[] = [];
    const spawns = Array.from({ length: 11 }, (_, i) => {
      const env = mockEnv();
      if (i === 10) env.on('heartbeat', (d: SpawnProgress) => waitingBeats.push(d.percent));
      return env.run(activities.spawnInstance, spawnOf(`inst-${i}`));
    });
    await vi.waitFor(() => expect([slots.builds.running, slots.builds.waiting]).toEqual([10, 1]));
    // The stop is not queued behind the spawns: it runs and ends while the eleventh still waits.
    await expect(mockEnv().run(activities.powerOffInstance, { instanceId: 'other' })).resolves.toEqual({
      powerState: 'shutdown',
    });
    expect(slots.builds.waiting).toBe(1);
    await vi.waitFor(() => expect(waitingBeats.length).toBeGreaterThan(0), { timeout: 3000 });
    expect(waitingBeats[0]).toBe(0);

    await expect(Promise.all(spawns)).resolves.toHaveLength(11);
    expect([slots.builds.running, slots.builds.waiting]).toEqual([0, 0]);
    const guests = await driver.listGuests();
    expect(guests.filter((g) => g.powerState === 'running')).toHaveLength(11);
    expect(guests.find((g) => g.instanceId === 'other')?.powerState).toBe('shutdown');
  });

  it('a build cancelled while it waits for a slot leaves at once, makes no guest and takes no slot', async () => {
    const driver = new FakeDriver({ host: HOST, stateDir: dir, spawnSeconds: 1 });
    const slots = createHostSlots({ maxConcurrentBuilds: 1, maxConcurrentLiveMigrations: 1 });
    const activities = createComputeActivities({ host: HOST, driver, slots });
    const first = mockEnv().run(activities.spawnInstance, spawnOf('inst-a'));
    const waiting = mockEnv();
    const second = waiting.run(activities.spawnInstance, spawnOf('inst-b')).catch((e: unknown) => e);
    await vi.waitFor(() => expect(slots.builds.waiting).toBe(1));
    waiting.cancel();
    expect(await second).toBeInstanceOf(CancelledFailure);
    expect([slots.builds.running, slots.builds.waiting]).toEqual([1, 0]);
    await first;
    expect((await driver.listGuests()).map((g) => g.instanceId)).toEqual(['inst-a']);
  });

  it("a live migration's copy waits for its source host's slot, heartbeating { queued: true }", async () => {
    const driver = new FakeDriver({ host: HOST, stateDir: dir, spawnSeconds: 0 });
    const slots = createHostSlots({ maxConcurrentBuilds: 10, maxConcurrentLiveMigrations: 1 });
    const activities = createComputeActivities({ host: HOST, driver, slots });
    await mockEnv().run(activities.spawnInstance, spawnOf('inst-1'));
    let release!: () => void;
    const holder = slots.liveMigrations.run(() => new Promise<void>((r) => (release = r)));
    const env = mockEnv();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const copy = env
      .run(activities.liveMigration, {
        instanceId: 'inst-1',
        migrationId: 'mig-1',
        maxDowntimeMs: 500,
        downtimeSteps: 10,
        completionTimeoutSecondsPerGb: 800,
      })
      .catch((e: unknown) => e);
    await vi.waitFor(() => expect(beats).toContainEqual({ queued: true }), { timeout: 3000 });
    expect(slots.liveMigrations.waiting).toBe(1);
    env.cancel();
    expect(await copy).toBeInstanceOf(CancelledFailure);
    release();
    await holder;
    expect(await driver.getPowerState({ instanceId: 'inst-1' })).toBe('running');
  });

  it('0 is no limit; a negative or fractional limit is refused', async () => {
    const unlimited = new Slots(0);
    const runs = Array.from({ length: 50 }, () => unlimited.run(() => new Promise((r) => setTimeout(r, 20))));
    expect(unlimited.running).toBe(50);
    await Promise.all(runs);
    expect(() => new Slots(-1)).toThrow(/whole number/);
    expect(() => new Slots(1.5)).toThrow(/whole number/);
  });

  it('a fleet host names its own limits; the environment gives the rest (defaults 10 and 1)', () => {
    const env = loadEnv({});
    expect([env.COMPUTE_MAX_CONCURRENT_BUILDS, env.COMPUTE_MAX_CONCURRENT_LIVE_MIGRATIONS]).toEqual([10, 1]);
    const fleet = FleetSchema.parse({
      hosts: [
        { name: 'a', vcpus: 4, memoryMb: 4096, diskGb: 40, maxConcurrentBuilds: 2, maxConcurrentLiveMigrations: 0 },
        { name: 'b', vcpus: 4, memoryMb: 4096, diskGb: 40 },
      ],
    });
    const fromEnv = loadEnv({ COMPUTE_MAX_CONCURRENT_BUILDS: '3', COMPUTE_MAX_CONCURRENT_LIVE_MIGRATIONS: '2' });
    expect(hostLimits(fromEnv, fleet.hosts[0]!)).toEqual({ maxConcurrentBuilds: 2, maxConcurrentLiveMigrations: 0 });
    expect(hostLimits(fromEnv, fleet.hosts[1]!)).toEqual({ maxConcurrentBuilds: 3, maxConcurrentLiveMigrations: 2 });
    expect(() => loadEnv({ COMPUTE_MAX_CONCURRENT_BUILDS: '-1' })).toThrow();
  });
});
