import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { DriverError, FlavorDiskSmallerThanImage, ImageUnacceptable } from '../../../src/compute/driver';
import type { FakeDriverOptions } from '../../../src/compute/fake';
import { FakeDriver, networkInfoFor, SPAWN_PROGRESS_INTERVAL_MS } from '../../../src/compute/fake';
import { HypervisorBusy, InstanceNotFound } from '../../../src/domain/errors';
import { CIRROS, makeStateDir, manualClock, sequenceRng, SMALL, TINY, UBUNTU } from './helpers';

const HOST = 'node-1';

describe('FakeDriver', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const driver = (options: Partial<FakeDriverOptions> = {}) =>
    new FakeDriver({ host: HOST, stateDir: dir, spawnSeconds: 0, ...options });
  const spawn = (d: FakeDriver, instanceId = 'inst-1', flavor = TINY, image = CIRROS) =>
    d.spawn({ instanceId, name: `vm-${instanceId}`, flavor, image });
  const guestOf = (instanceId: string) => ({ instanceId, name: `vm-${instanceId}`, flavor: TINY, image: CIRROS });
  type Records = Record<'guests' | 'networks' | 'blockDevices', Record<string, unknown>>;
  const guestsDir = () => path.join(dir, HOST, 'guests');
  /** What the host's instance files hold, merged (none when there are none). */
  const readState = async (): Promise<Records> => {
    const state: Records = { guests: {}, networks: {}, blockDevices: {} };
    const names = await readdir(guestsDir()).catch(() => []);
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const one = JSON.parse(await readFile(path.join(guestsDir(), name), 'utf8')) as Records;
      for (const k of ['guests', 'networks', 'blockDevices'] as const) Object.assign(state[k], one[k]);
    }
    return state;
  };
  const readFaults = async () => JSON.parse(await readFile(path.join(dir, HOST, 'faults.json'), 'utf8')) as unknown;
  const writeFaults = (faults: unknown) => writeFile(path.join(dir, HOST, 'faults.json'), JSON.stringify(faults));

  beforeEach(async () => {
    ({ dir, cleanup } = await makeStateDir());
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await cleanup();
  });

  it('rejects a host name that is not a DNS label (it becomes a directory and a task queue)', () => {
    expect(() => new FakeDriver({ host: '../etc', stateDir: dir })).toThrow(/invalid compute host name/);
  });

  describe('secrets given to the guest', () => {
    it('records that an admin password was set and the hash of the user data, never the secrets', async () => {
      const d = driver();
      const userData = Buffer.from('#cloud-config\npassword: ud-secret-42\n').toString('base64');
      const { guest } = await d.spawn({ ...guestOf('inst-s'), adminPassword: 'pw-secret-42', userData });
      expect(guest).toMatchObject({
        adminPasswordSet: true,
        userDataSha256: createHash('sha256').update(userData).digest('hex'),
      });
      const file = await readFile(path.join(guestsDir(), 'inst-s.json'), 'utf8');
      expect(file).toContain('inst-s');
      for (const secret of ['pw-secret-42', userData, 'ud-secret-42']) expect(file).not.toContain(secret);
    });

    it('records nothing of them for a guest given none', async () => {
      const { guest } = await driver().spawn(guestOf('inst-n'));
      expect(guest).not.toHaveProperty('adminPasswordSet');
      expect(guest).not.toHaveProperty('userDataSha256');
    });
  });

  describe('persistence', () => {
    it('a new driver on the same state dir knows the guests of the previous one', async () => {
      const first = driver();
      await first.allocateNetworks({ instanceId: 'inst-1' });
      await first.prepareBlockDevices({ instanceId: 'inst-1', flavor: TINY, image: CIRROS });
      const { guest } = await spawn(first);

      const restarted = driver();
      expect(await restarted.listGuests()).toEqual([guest]);
      expect(guest).toMatchObject({
        instanceId: 'inst-1',
        name: 'vm-inst-1',
        host: HOST,
        powerState: 'running',
        flavor: { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 },
        image: { name: 'cirros', sizeGb: 0.02 },
        network: networkInfoFor('inst-1'),
        blockDevices: { rootDeviceName: '/dev/vda' },
      });
      // The fake's own bookkeeping stays in its record, out of the driver-neutral guest.
      expect(guest).not.toHaveProperty('spawnId');
      expect(await restarted.getGuest('inst-1')).toMatchObject({
        status: 'active',
        shutdownRequestedAt: null,
        boots: 1,
      });
      expect(await restarted.getPowerState({ instanceId: 'inst-1' })).toBe('running');
    });

    it('keeps each instance in its own file, written through temp + rename: a concurrent reader never sees a torn one', async () => {
      const d = driver();
      const ids = ['a', 'b', 'c', 'd'];
      await Promise.all(ids.map((id) => spawn(d, id)));
      expect((await readdir(d.guestsDir)).sort()).toEqual(ids.map((id) => `${id}.json`));
      let reads = 0;
      let writing = true;
      const reader = (async () => {
        while (writing) {
          for (const id of ids) {
            const text = await readFile(path.join(d.guestsDir, `${id}.json`), 'utf8');
            expect(() => JSON.parse(text) as unknown).not.toThrow();
          }
          reads++;
        }
      })();
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < 60; i++) {
        const id = ids[i % 4] ?? 'a';
        ops.push(i % 2 === 0 ? d.powerOff({ instanceId: id }) : d.powerOn({ instanceId: id }));
      }
      await Promise.all(ops);
      writing = false;
      await reader;
      expect(reads).toBeGreaterThan(0);
      // No temp file left, and a destroyed instance leaves no file.
      await d.destroy({ instanceId: 'd' });
      expect((await readdir(d.guestsDir)).sort()).toEqual(['a.json', 'b.json', 'c.json']);
    });

    it('ignores a temp file left behind by a crash mid-write', async () => {
      const d = driver();
      await spawn(d);
      await writeFile(path.join(d.guestsDir, 'inst-1.json.999dead'), '{"version": 1, "gue');
      expect((await driver().listGuests()).map((g) => g.instanceId)).toEqual(['inst-1']);
    });

    it("reads an instance's file again when another writer changed it (in place or by rename), not its kept copy", async () => {
      const d = driver();
      await spawn(d, 'inst-1');
      await spawn(d, 'inst-2');
      expect((await d.listGuests()).map((g) => g.instanceId).sort()).toEqual(['inst-1', 'inst-2']);
      // Rewritten in place (same inode), inst-1 powered off behind the store's back, as a test might.
      const file = path.join(d.guestsDir, 'inst-1.json');
      const one = JSON.parse(await readFile(file, 'utf8')) as { guests: Record<string, { powerState: string }> };
      one.guests['inst-1']!.powerState = 'shutdown';
      await writeFile(file, JSON.stringify(one));
      expect(await d.getPowerState({ instanceId: 'inst-1' })).toBe('shutdown');
      expect(await d.getPowerStates()).toEqual({ 'inst-1': 'shutdown', 'inst-2': 'running' });
      // And the next step builds on what the file holds now.
      expect(await d.powerOn({ instanceId: 'inst-1' })).toBe('running');
      expect(await d.getGuest('inst-1')).toMatchObject({ powerState: 'running', boots: 2 });
      // A corrupt rewrite is read (and refused), not answered from memory.
      await writeFile(file, '{"version": 1, "guests": 7}');
      await expect(d.listGuests()).rejects.toThrow(/corrupt guest state/);
      await expect(d.getGuest('inst-1')).rejects.toThrow(/corrupt guest state/);
    });

    it('migrates the one guests.json of the layout before on first open, each instance to its own file', async () => {
      // The records as the layout before kept them: a guest, one moved aside by a resize, their ports
      // and disks, a port of an instance still building, and a snapshot.
      const { dir: other, cleanup: cleanOther } = await makeStateDir();
      let legacy: Records & { version: number; host: string; snapshots: object };
      try {
        const made = new FakeDriver({ host: HOST, stateDir: other, spawnSeconds: 0 });
        for (const id of ['inst-1', 'inst-2']) {
          await made.prepareBlockDevices({ instanceId: id, flavor: TINY, image: CIRROS });
          await spawn(made, id);
        }
        await made.powerOff({ instanceId: 'inst-2' });
        const inst1 = await made.getGuest('inst-1');
        const inst2 = await made.getGuest('inst-2');
        legacy = {
          version: 1,
          host: HOST,
          guests: { 'inst-1': inst1, 'inst-2_resize': inst2 },
          networks: {
            'inst-1': networkInfoFor('inst-1'),
            'inst-2': networkInfoFor('inst-2'),
            'inst-3': networkInfoFor('inst-3'),
          },
          blockDevices: { 'inst-1': inst1!.blockDevices, 'inst-2': inst2!.blockDevices },
          snapshots: { 'snap-1': { instanceId: 'inst-1', boots: 1, at: 1, sizeGb: 0.02 } },
        };
        await mkdir(path.join(dir, HOST), { recursive: true });
        await writeFile(path.join(dir, HOST, 'guests.json'), JSON.stringify(legacy, null, 2));
      } finally {
        await cleanOther();
      }

      const d = driver();
      expect((await d.listGuests()).map((g) => g.instanceId)).toEqual(['inst-1', 'inst-2']);
      expect(await d.getGuest('inst-1')).toMatchObject({ status: 'active', powerState: 'running', boots: 1 });
      expect(await d.getGuest('inst-2')).toBeUndefined();
      expect(await d.getResizeAsideGuest('inst-2')).toMatchObject({ instanceId: 'inst-2', powerState: 'shutdown' });
      expect(await d.listSnapshots()).toEqual({ 'snap-1': { instanceId: 'inst-1', boots: 1, at: 1, sizeGb: 0.02 } });
      expect((await readdir(path.join(dir, HOST))).sort()).toEqual([
        'guests',
        'guests.json.migrated',
        'snapshots.json',
      ]);
      expect((await readdir(d.guestsDir)).sort()).toEqual(['inst-1.json', 'inst-2.json', 'inst-3.json']);
      const { version: _version, host: _host, snapshots: _snapshots, ...records } = legacy;
      expect(await readState()).toEqual(JSON.parse(JSON.stringify(records)));
      // The steps go on from the migrated records: a revert brings inst-2 back, a build of inst-3 takes its port.
      expect(await d.finishRevertMigration({ instanceId: 'inst-2', migrationId: 'm-1', powerOn: true })).toBe(
        'running'
      );
      await spawn(d, 'inst-3');
      expect(await driver().getPowerStates()).toEqual({
        'inst-1': 'running',
        'inst-2': 'running',
        'inst-3': 'running',
      });
    });

    it('serialises concurrent read-modify-writes from two driver objects on the same host', async () => {
      const a = driver();
      const b = driver();
      await Promise.all(Array.from({ length: 20 }, (_, i) => spawn(i % 2 ? a : b, `inst-${i}`)));
      expect(await a.listGuests()).toHaveLength(20);
      // The same instance's file from both: one guest made, every snapshot recorded.
      const same = await Promise.all([spawn(a, 'same'), spawn(b, 'same'), spawn(a, 'same')]);
      expect(same.filter((r) => r.created)).toHaveLength(1);
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).snapshot({ instanceId: 'same', imageName: `img-${i}` }))
      );
      expect(Object.keys(await b.listSnapshots())).toHaveLength(10);
      expect((await a.getConsoleOutput({ instanceId: 'same' })).match(/snapshot: disk saved/g)).toHaveLength(10);
    });
  });

  describe('build steps', () => {
    it('allocates the same deterministic network info per instance, idempotently', async () => {
      const d = driver();
      const first = await d.allocateNetworks({ instanceId: 'inst-1' });
      expect(await d.allocateNetworks({ instanceId: 'inst-1' })).toEqual(first);
      expect(first.mac).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);
      expect(first.ip).toMatch(/^10\.\d+\.\d+\.\d+$/);
      expect(first).toEqual(networkInfoFor('inst-1'));
      expect(networkInfoFor('inst-2')).not.toEqual(first);
    });

    it('aborts block-device preparation when the image is larger than the flavor root disk', async () => {
      const d = driver();
      const err = await d
        .prepareBlockDevices({ instanceId: 'inst-1', flavor: TINY, image: UBUNTU })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FlavorDiskSmallerThanImage);
      expect((err as Error).message).toBe(
        "Flavor's disk is too small for requested image. Flavor disk is 1GB, image is 3GB."
      );
      await expect(spawn(d, 'inst-1', TINY, UBUNTU)).rejects.toBeInstanceOf(FlavorDiskSmallerThanImage);
      expect(await d.listGuests()).toEqual([]);
    });

    it('sizes a root disk of 0 to the image, and a non-zero one to the flavor', async () => {
      const d = driver();
      const zero = await d.prepareBlockDevices({ instanceId: 'inst-1', flavor: { ...TINY, diskGb: 0 }, image: UBUNTU });
      expect(zero.devices[0]?.sizeGb).toBe(3);
      const small = await d.prepareBlockDevices({ instanceId: 'inst-2', flavor: SMALL, image: UBUNTU });
      expect(small.devices[0]).toMatchObject({
        deviceName: '/dev/vda',
        bootIndex: 0,
        imageName: 'ubuntu-24.04',
        sizeGb: 20,
      });
    });

    it('a second spawn of the same instance returns the existing guest, never a second one', async () => {
      const clock = manualClock();
      const d = driver({ now: clock.now });
      const first = await spawn(d);
      clock.advance(60_000);
      const second = await spawn(d);
      expect(first.created).toBe(true);
      expect(second.created).toBe(false);
      expect(second.guest).toEqual(first.guest);
      expect(await d.listGuests()).toHaveLength(1);
    });

    it('a repeated spawn of a guest that was powered off leaves it running (the spawn contract)', async () => {
      const d = driver();
      await spawn(d);
      await d.powerOff({ instanceId: 'inst-1' });
      const again = await spawn(d);
      expect(again).toMatchObject({ created: false, guest: { powerState: 'running' } });
    });

    it('reports progress from 0 to 100 at least every 500 ms while spawning', async () => {
      const d = driver({ spawnSeconds: 0.5 });
      const seen: { percent: number; at: number }[] = [];
      await d.spawn(
        { instanceId: 'inst-1', name: 'vm', flavor: TINY, image: CIRROS },
        { onProgress: (percent) => seen.push({ percent, at: performance.now() }) }
      );
      const percents = seen.map((s) => s.percent);
      expect(percents[0]).toBe(0);
      expect(percents.at(-1)).toBe(100);
      expect(percents).toEqual([...percents].sort((a, b) => a - b));
      expect(seen.length).toBeGreaterThanOrEqual(3);
      const gaps = seen.slice(1).map((s, i) => s.at - (seen[i]?.at ?? 0));
      expect(Math.max(...gaps)).toBeLessThan(500);
      expect(SPAWN_PROGRESS_INTERVAL_MS).toBeLessThanOrEqual(500);
    });

    it('an aborted spawn rejects with the abort reason and tears down the half-made guest and its networks', async () => {
      const d = driver({ spawnSeconds: 0.3 });
      await d.allocateNetworks({ instanceId: 'inst-1' });
      const controller = new AbortController();
      const spawning = d.spawn(
        { instanceId: 'inst-1', name: 'vm', flavor: TINY, image: CIRROS },
        { signal: controller.signal, onProgress: (p) => p > 0 && controller.abort(new Error('stop it')) }
      );
      await expect(spawning).rejects.toThrow('stop it');
      expect(await d.listGuests()).toEqual([]);
      expect((await readState()).guests).toEqual({});
    });

    it('a stale spawn run that is aborted never tears down the guest a newer run completed', async () => {
      const d = driver({ spawnSeconds: 0.2 });
      await d.setFaults({ hangNext: 1 });
      const stale = new AbortController();
      const hung = d.spawn({ instanceId: 'inst-1', name: 'vm', flavor: TINY, image: CIRROS }, { signal: stale.signal });
      await vi.waitFor(async () => expect((await d.getGuest('inst-1'))?.status).toBe('spawning'), { interval: 10 });
      const retried = await spawn(d); // a retry attempt takes the half-made guest over
      expect(retried.created).toBe(true);
      stale.abort(new Error('old attempt cancelled'));
      await expect(hung).rejects.toThrow('old attempt cancelled');
      expect(await d.listGuests()).toMatchObject([{ instanceId: 'inst-1', powerState: 'running' }]);
      expect(await d.getGuest('inst-1')).toMatchObject({ status: 'active', spawnId: expect.any(String) as string });
    });

    it('a guest destroyed while it spawns ends the spawn with InstanceNotFound', async () => {
      // Destroyed at the first progress report after the start (20 %), well before the spawn ends: a
      // destroy at 100 % would race the spawn's own last write.
      const d = driver({ spawnSeconds: 1 });
      let destroyed: Promise<boolean> | undefined;
      const spawning = d.spawn(
        { instanceId: 'inst-1', name: 'vm', flavor: TINY, image: CIRROS },
        { onProgress: (p) => void (p > 0 && p < 100 && (destroyed ??= d.destroy({ instanceId: 'inst-1' }))) }
      );
      await expect(spawning).rejects.toBeInstanceOf(InstanceNotFound);
      expect(await destroyed).toBe(true);
      expect(await d.listGuests()).toEqual([]);
    });

    it('destroy is idempotent and removes networks and block devices too', async () => {
      const d = driver();
      await d.allocateNetworks({ instanceId: 'inst-1' });
      await d.prepareBlockDevices({ instanceId: 'inst-1', flavor: TINY, image: CIRROS });
      await spawn(d);
      expect(await d.destroy({ instanceId: 'inst-1' })).toBe(true);
      expect(await d.destroy({ instanceId: 'inst-1' })).toBe(false);
      expect(await d.destroy({ instanceId: 'never-existed' })).toBe(false);
      expect(await readState()).toMatchObject({ guests: {}, networks: {}, blockDevices: {} });
    });
  });

  describe('faults', () => {
    it('reads faults.json at each spawn and consumes failNext by writing the file back', async () => {
      const d = driver();
      await spawn(d, 'warm-up'); // creates the host directory
      await writeFaults({ spawn: { failNext: 2 } });
      await expect(spawn(d, 'inst-1')).rejects.toBeInstanceOf(DriverError);
      expect(await readFaults()).toEqual({ spawn: { failNext: 1 } });
      await expect(spawn(d, 'inst-1')).rejects.toBeInstanceOf(DriverError);
      expect(await readFaults()).toEqual({ spawn: { failNext: 0 } });
      await expect(spawn(d, 'inst-1')).resolves.toMatchObject({ created: true });
    });

    it('an abort-kind failure is an ImageUnacceptable and leaves no guest', async () => {
      const d = driver();
      await d.setFaults({ spawn: { failNext: 1, kind: 'abort' } });
      await expect(spawn(d)).rejects.toBeInstanceOf(ImageUnacceptable);
      expect(await d.listGuests()).toEqual([]);
    });

    it('busyNext throws HypervisorBusy before making anything, then the retry succeeds', async () => {
      const d = driver();
      await d.allocateNetworks({ instanceId: 'inst-1' });
      await d.setFaults({ busyNext: 1 });
      await expect(spawn(d)).rejects.toBeInstanceOf(HypervisorBusy);
      expect(await d.listGuests()).toEqual([]);
      expect(await d.getFaults()).toEqual({ busyNext: 0 });
      const { guest } = await spawn(d);
      expect(guest.network).toEqual(networkInfoFor('inst-1')); // the busy attempt kept the networks
    });

    it('failRate draws from the injected rng and consumes nothing', async () => {
      const d = driver({ rng: sequenceRng([0.1, 0.9, 0.49, 0.5]) });
      await d.setFaults({ spawn: { failRate: 0.5 } });
      const outcomes = [];
      for (const id of ['a', 'b', 'c', 'd'])
        outcomes.push(
          await spawn(d, id).then(
            () => 'ok',
            (e: Error) => e.name
          )
        );
      expect(outcomes).toEqual(['DriverError', 'ok', 'DriverError', 'ok']);
      expect(await d.getFaults()).toEqual({ spawn: { failRate: 0.5 } });
    });

    it('setFaults validates the schema (strict: a misspelt key is an error)', async () => {
      const d = driver();
      await expect(d.setFaults({ spawn: { failRate: 2 } })).rejects.toThrow();
      await expect(d.setFaults({ busynext: 1 } as never)).rejects.toThrow();
      await expect(d.setFaults({ spawn: { kind: 'explode' } } as never)).rejects.toThrow();
    });

    it('an invalid faults file is ignored with a warning, not a failing host', async () => {
      const d = driver();
      await spawn(d, 'warm-up');
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      await writeFaults({ spawn: { failNext: -1 } });
      await expect(spawn(d)).resolves.toMatchObject({ created: true });
      await writeFile(d.faultsFile, '{ not json');
      expect(await d.getFaults()).toEqual({});
      expect(warn).toHaveBeenCalledTimes(2);
    });
  });

  describe('live migration progress', () => {
    it('reports the copy while a round runs, not only between rounds', async () => {
      const d = driver();
      await spawn(d, 'live-1', SMALL);
      // 2048 MB at 1024 MB/s: the first round takes 2 s; the guest dirties 64 MB/s meanwhile.
      await writeFaults({ liveMigration: { bandwidthMbPerSecond: 1024, dirtyMbPerSecond: 64 } });
      const seen: Array<{ round: number; percent: number; remainingMb: number }> = [];
      const result = await d.liveMigration(
        {
          instanceId: 'live-1',
          migrationId: 'm-1',
          maxDowntimeMs: 500,
          downtimeSteps: 1,
          completionTimeoutSecondsPerGb: 800,
        },
        { onProgress: (p) => seen.push({ round: p.round, percent: p.percent, remainingMb: p.remainingMb }) }
      );
      expect(result.switched).toBe(true);
      const firstRound = seen.filter((p) => p.round === 1);
      // Every interval of the round says more copied and less left, from 0% up to most of the memory.
      expect(firstRound.length).toBeGreaterThanOrEqual(2_000 / SPAWN_PROGRESS_INTERVAL_MS - 1);
      expect(firstRound[0]?.percent).toBe(0);
      expect(firstRound.at(-1)?.percent).toBeGreaterThan(90);
      const percents = firstRound.map((p) => p.percent);
      expect(percents).toEqual([...percents].sort((a, b) => a - b));
      expect(new Set(percents).size).toBeGreaterThan(5);
      expect(firstRound.at(-1)?.remainingMb).toBe(128); // what the guest dirtied in the 2 s round
    });
  });

  describe('power', () => {
    it('a cooperative guest shuts down shutdownSeconds after the first ACPI request (lazy, from timestamps)', async () => {
      const clock = manualClock();
      const d = driver({ now: clock.now, shutdownSeconds: 2 });
      await spawn(d);
      expect(await d.requestShutdown({ instanceId: 'inst-1' })).toBe('running');
      clock.advance(1_500);
      expect(await d.requestShutdown({ instanceId: 'inst-1' })).toBe('running'); // a re-send does not restart the clock
      clock.advance(499);
      expect(await d.getPowerState({ instanceId: 'inst-1' })).toBe('running');
      clock.advance(1);
      expect(await d.getPowerState({ instanceId: 'inst-1' })).toBe('shutdown');
      // Nothing was written when it went off; a restarted driver derives the same from the stored request time.
      expect(await driver({ now: clock.now, shutdownSeconds: 2 }).getPowerState({ instanceId: 'inst-1' })).toBe(
        'shutdown'
      );
      expect(await d.requestShutdown({ instanceId: 'inst-1' })).toBe('shutdown');
    });

    it('with shutdownSeconds 0 the guest is off as soon as it is asked', async () => {
      const d = driver({ shutdownSeconds: 0 });
      await spawn(d);
      expect(await d.requestShutdown({ instanceId: 'inst-1' })).toBe('shutdown');
    });

    it('a guest ignoring ACPI stays running until forced off', async () => {
      const clock = manualClock();
      const d = driver({ now: clock.now });
      await spawn(d);
      await d.setFaults({ ignoreShutdown: true });
      expect(await d.requestShutdown({ instanceId: 'inst-1' })).toBe('running');
      clock.advance(3_600_000);
      expect(await d.requestShutdown({ instanceId: 'inst-1' })).toBe('running');
      expect(await d.powerOff({ instanceId: 'inst-1' })).toBe('shutdown');
      expect(await d.getPowerState({ instanceId: 'inst-1' })).toBe('shutdown');
    });

    it('a request heeded after ignoreShutdown is lifted starts the clock then', async () => {
      const clock = manualClock();
      const d = driver({ now: clock.now, shutdownSeconds: 2 });
      await spawn(d);
      await d.setFaults({ ignoreShutdown: true });
      await d.requestShutdown({ instanceId: 'inst-1' });
      clock.advance(10_000);
      await d.setFaults({});
      expect(await d.requestShutdown({ instanceId: 'inst-1' })).toBe('running');
      clock.advance(2_000);
      expect(await d.getPowerState({ instanceId: 'inst-1' })).toBe('shutdown');
    });

    it('power off and on are immediate and idempotent; power on cancels a pending shutdown', async () => {
      const clock = manualClock();
      const d = driver({ now: clock.now });
      await spawn(d);
      expect(await d.powerOff({ instanceId: 'inst-1' })).toBe('shutdown');
      expect(await d.powerOff({ instanceId: 'inst-1' })).toBe('shutdown');
      expect(await d.powerOn({ instanceId: 'inst-1' })).toBe('running');
      expect(await d.powerOn({ instanceId: 'inst-1' })).toBe('running');
      await d.requestShutdown({ instanceId: 'inst-1' });
      await d.powerOn({ instanceId: 'inst-1' });
      clock.advance(10_000);
      expect(await d.getPowerState({ instanceId: 'inst-1' })).toBe('running');
    });

    it('power operations on a guest the host does not have throw InstanceNotFound', async () => {
      const d = driver();
      for (const op of [
        () => d.getPowerState({ instanceId: 'ghost' }),
        () => d.requestShutdown({ instanceId: 'ghost' }),
        () => d.powerOff({ instanceId: 'ghost' }),
        () => d.powerOn({ instanceId: 'ghost' }),
      ]) {
        await expect(op()).rejects.toBeInstanceOf(InstanceNotFound);
      }
    });
  });
});
