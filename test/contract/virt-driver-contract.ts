/**
 * The virt driver contract (Nova's `_VirtDriverTestCase`): one set of behaviour tests every `VirtDriver`
 * passes, whatever runs its guests. A runner calls `describeVirtDriverContract` with a factory and the
 * images, flavors and time bounds of its driver: the fake's in test/unit/compute/fake-contract.test.ts,
 * QEMU's in test/guests/. Every test makes its own data directory and two hosts on it (`contract-a`,
 * `contract-b`), and leaves no guest behind (each one destroyed through the drivers it made).
 *
 * What a guest does is read from its console (getConsoleOutput): both drivers print the real guest
 * images' boot line, `GUEST-BOOT boot=N image=NAME`, at every boot, N counted on the guest's disk.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import type {
  GuestFlavor,
  GuestImage,
  LiveMigrationProgress,
  LiveMigrationRequest,
  VirtDriver,
} from '../../src/compute/driver';
import { InstanceNotFound, LiveMigrationAborted } from '../../src/domain/errors';
import { PowerState } from '../../src/domain/instance';

export interface VirtDriverContractOptions {
  /** A driver for `host` keeping its guests under `dataDir` (two hosts of one test share the dir). */
  makeDriver(host: string, dataDir: string): VirtDriver | Promise<VirtDriver>;
  /** Lets go of a driver object without touching its guests (closes its connections); default nothing. */
  releaseDriver?(driver: VirtDriver): Promise<void>;
  images: {
    /** Powers off on an ACPI request (`cirros`). */
    cooperative: GuestImage;
    /** Ignores ACPI requests: only a forced power-off stops it (`stubborn`). */
    ignoresAcpi: GuestImage;
    /** Dirties memory faster than a live migration copies it: converges only when forced (`dirty`). */
    dirty: GuestImage;
  };
  flavors: {
    small: GuestFlavor;
    /** More memory and disk than `small`: what a resize grows to. */
    large: GuestFlavor;
  };
  timeouts: {
    /** The longest one test may take, ms. */
    testMs: number;
    /** The longest a spawn (or a power-on, or a migration's finish) takes to show its boot line, ms. */
    bootMs: number;
    /** The longest a cooperative guest takes to power off after an ACPI request, ms. */
    shutdownMs: number;
    /** How long an ACPI-ignoring guest is watched keep running after the request, ms. */
    ignoredShutdownMs: number;
  };
  /**
   * Bounds of the live migrations; default a 100 ms downtime in 3 steps (a guest that dirties its whole
   * memory cannot switch over within it), 60 s per GiB.
   */
  liveMigration?: Partial<
    Pick<LiveMigrationRequest, 'maxDowntimeMs' | 'downtimeSteps' | 'completionTimeoutSecondsPerGb'>
  >;
  /** Data directory parent; default the OS temp dir. */
  tmpDir?: string;
}

const HOST_A = 'contract-a';
const HOST_B = 'contract-b';
const BOOT_LINE = /GUEST-BOOT boot=(\d+) image=(\S+)/g;

/** The boot lines of a console, in order: the boot count and the image of each. */
export function bootLines(console: string): { boot: number; image: string }[] {
  return [...console.matchAll(BOOT_LINE)].map((m) => ({ boot: Number(m[1]), image: m[2] ?? '' }));
}

export function describeVirtDriverContract(name: string, options: VirtDriverContractOptions): void {
  const { images, flavors, timeouts } = options;
  const live = { maxDowntimeMs: 100, downtimeSteps: 3, completionTimeoutSecondsPerGb: 60, ...options.liveMigration };

  describe(`VirtDriver contract: ${name}`, () => {
    let dataDir: string;
    let made: VirtDriver[];
    let serial = 0;
    /** A fresh instance id per test (a real driver's leftovers never collide with the next test). */
    const newId = (what: string) => `contract-${what}-${process.pid}-${++serial}`;

    const driver = async (host: string): Promise<VirtDriver> => {
      const d = await options.makeDriver(host, dataDir);
      made.push(d);
      await d.initHost();
      return d;
    };
    const hosts = async (): Promise<[VirtDriver, VirtDriver]> => [await driver(HOST_A), await driver(HOST_B)];
    const spawn = (d: VirtDriver, instanceId: string, image = images.cooperative, flavor = flavors.small) =>
      d.spawn({ instanceId, name: `vm-${instanceId}`, flavor, image });
    const consoleOf = (d: VirtDriver, instanceId: string) => d.getConsoleOutput({ instanceId });
    /** Waits until the guest's last boot line is boot `boot` of `image`. */
    const waitForBoot = (d: VirtDriver, instanceId: string, boot: number, image = images.cooperative) =>
      vi.waitFor(
        async () => expect(bootLines(await consoleOf(d, instanceId)).at(-1)).toEqual({ boot, image: image.name }),
        { timeout: timeouts.bootMs, interval: 100 }
      );
    const idsOn = async (d: VirtDriver) => (await d.listGuests()).map((g) => g.instanceId);
    /** A running guest on `a` resized onto `b` (large flavor, powered on): awaiting confirm or revert. */
    const resizedOnto = async (a: VirtDriver, b: VirtDriver, what: string) => {
      const id = newId(what);
      const migrationId = newId('mig');
      await spawn(a, id);
      await waitForBoot(a, id, 1);
      await a.migrateDiskAndPowerOff(
        { instanceId: id, migrationId, newFlavor: flavors.large },
        { shutdownTimeoutSeconds: Math.ceil(timeouts.shutdownMs / 1000) }
      );
      await b.finishMigration({
        instanceId: id,
        migrationId,
        name: `vm-${id}`,
        flavor: flavors.large,
        image: images.cooperative,
        powerOn: true,
      });
      return { id, migrationId };
    };
    /** Runs the pre-steps of a live migration from a to b (checks, destination prepared). */
    const prepareLive = async (
      a: VirtDriver,
      b: VirtDriver,
      instanceId: string,
      migrationId: string,
      image: GuestImage
    ) => {
      const sourceCpu = await a.checkCanLiveMigrateSource({ instanceId });
      expect(sourceCpu).toEqual(await a.hostCpu());
      await b.checkCanLiveMigrateDestination({
        instanceId,
        sourceHost: a.host,
        sourceCpu,
        blockMigration: !b.capabilities.sharedInstancePath,
      });
      const request = { instanceId, migrationId, name: `vm-${instanceId}`, flavor: flavors.small, image };
      await b.preLiveMigration(request);
      await b.preLiveMigration(request); // a retry: the same incoming guest
    };

    /** A `dirty` guest (converges only when forced) booted on `a`, `b` prepared to receive it. */
    const dirtyGuestPrepared = async (a: VirtDriver, b: VirtDriver, tag: string) => {
      const id = newId(tag);
      const migrationId = newId('mig');
      await spawn(a, id, images.dirty);
      await waitForBoot(a, id, 1, images.dirty);
      await prepareLive(a, b, id, migrationId, images.dirty);
      return { id, migrationId };
    };
    /** The destination's watch of the incoming guest, until the returned stop is called. */
    const receive = (b: VirtDriver, instanceId: string, migrationId: string) => {
      const controller = new AbortController();
      const beats = { count: 0 };
      const watching = b
        .receiveLiveMigration(
          { instanceId, migrationId },
          { signal: controller.signal, onProgress: () => beats.count++ }
        )
        .catch((err: unknown) => err);
      return {
        beats,
        stop: async () => {
          controller.abort(new Error('the copy is over'));
          return watching;
        },
      };
    };

    beforeEach(async () => {
      dataDir = await mkdtemp(path.join(options.tmpDir ?? os.tmpdir(), 'contract-'));
      made = [];
    });

    afterEach(async () => {
      // Every guest any driver of the test left, destroyed (a moved-aside one confirmed away first).
      for (const d of made) {
        for (const id of await idsOn(d).catch(() => [])) {
          await d.confirmMigration({ instanceId: id }).catch(() => false);
          await d.destroy({ instanceId: id }).catch(() => false);
        }
      }
      for (const d of made) await options.releaseDriver?.(d);
      await rm(dataDir, { recursive: true, force: true });
    }, timeouts.testMs);

    it('declares its capabilities and its host CPU', async () => {
      const a = await driver(HOST_A);
      expect(a.host).toBe(HOST_A);
      for (const key of [
        'supportsLiveMigration',
        'supportsPostCopy',
        'supportsBlockMigration',
        'sharedInstancePath',
        'supportsMigrateToSameHost',
      ] as const)
        expect(typeof a.capabilities[key]).toBe('boolean');
      const cpu = await a.hostCpu();
      expect(cpu.architecture).toMatch(/\S/);
      expect(Array.isArray(cpu.traits)).toBe(true);
    });

    it(
      'spawns a guest that boots (its boot line on the console); a retried spawn makes no second guest',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('spawn');
        await a.allocateNetworks({ instanceId: id });
        await a.prepareBlockDevices({ instanceId: id, flavor: flavors.small, image: images.cooperative });
        const progress: number[] = [];
        const { guest, created } = await a.spawn(
          { instanceId: id, name: 'vm-spawn', flavor: flavors.small, image: images.cooperative },
          { onProgress: (p) => progress.push(p) }
        );
        expect(created).toBe(true);
        expect(progress.at(-1)).toBe(100);
        expect(guest).toMatchObject({
          instanceId: id,
          name: 'vm-spawn',
          host: HOST_A,
          flavor: flavors.small,
          image: { name: images.cooperative.name },
          powerState: PowerState.Running,
        });
        await waitForBoot(a, id, 1);
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Running);

        const again = await spawn(a, id);
        expect(again.created).toBe(false);
        expect(await idsOn(a)).toEqual([id]);
        expect(bootLines(await consoleOf(a, id))).toHaveLength(1);
      },
      timeouts.testMs
    );

    it(
      'a spawn aborted part-way leaves no guest behind',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('abort');
        const controller = new AbortController();
        const spawning = a.spawn(
          { instanceId: id, name: 'vm', flavor: flavors.small, image: images.cooperative },
          { signal: controller.signal, onProgress: () => controller.abort(new Error('cancelled by the test')) }
        );
        await expect(spawning).rejects.toThrow('cancelled by the test');
        expect(await idsOn(a)).not.toContain(id);
        await expect(a.getPowerState({ instanceId: id })).rejects.toBeInstanceOf(InstanceNotFound);
      },
      timeouts.testMs
    );

    it(
      'powers off on an ACPI request and on again from the same disk (the boot counter goes on); both idempotent',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('power');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        expect([PowerState.Running, PowerState.Shutdown]).toContain(await a.requestShutdown({ instanceId: id }));
        // The stop workflow re-sends the request while it waits; so does this.
        await vi.waitFor(
          async () => {
            await a.requestShutdown({ instanceId: id });
            expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Shutdown);
          },
          { timeout: timeouts.shutdownMs, interval: 250 }
        );
        expect(await a.requestShutdown({ instanceId: id })).toBe(PowerState.Shutdown);
        expect(await a.powerOff({ instanceId: id })).toBe(PowerState.Shutdown);

        expect(await a.powerOn({ instanceId: id })).toBe(PowerState.Running);
        await waitForBoot(a, id, 2);
        expect(await a.powerOn({ instanceId: id })).toBe(PowerState.Running);
        expect(bootLines(await consoleOf(a, id))).toHaveLength(2);
      },
      timeouts.testMs
    );

    it(
      "reports every guest's power state in one call (getPowerStates), a resize's moved-aside copy left out",
      async () => {
        const [a, b] = await hosts();
        const running = newId('states-run');
        const off = newId('states-off');
        const paused = newId('states-paused');
        for (const id of [running, off, paused]) await spawn(a, id);
        for (const id of [running, off, paused]) await waitForBoot(a, id, 1);
        await a.powerOff({ instanceId: off });
        await a.pause({ instanceId: paused });
        const states = await a.getPowerStates();
        expect(states).toMatchObject({
          [running]: PowerState.Running,
          [off]: PowerState.Shutdown,
          [paused]: PowerState.Paused,
        });
        // Resized onto b: a keeps only the moved-aside copy, which is not a guest a runs.
        const { id: resized } = await resizedOnto(a, b, 'states-resized');
        expect(Object.keys(await a.getPowerStates())).not.toContain(resized);
        expect((await b.getPowerStates())[resized]).toBe(PowerState.Running);
        await a.confirmMigration({ instanceId: resized });
      },
      timeouts.testMs
    );

    it(
      'pauses and unpauses a running guest in place (no boot); both idempotent; a guest that is off is refused',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('pause');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        expect(await a.pause({ instanceId: id })).toBe(PowerState.Paused);
        expect(await a.pause({ instanceId: id })).toBe(PowerState.Paused); // a retry after a lost answer
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Paused);
        expect((await a.listGuests()).find((g) => g.instanceId === id)?.powerState).toBe(PowerState.Paused);
        expect(await a.unpause({ instanceId: id })).toBe(PowerState.Running);
        expect(await a.unpause({ instanceId: id })).toBe(PowerState.Running);
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Running);
        expect(bootLines(await consoleOf(a, id))).toHaveLength(1);

        expect(await a.powerOff({ instanceId: id })).toBe(PowerState.Shutdown);
        await expect(a.pause({ instanceId: id })).rejects.toThrow(/cannot pause/);
        await expect(a.unpause({ instanceId: id })).rejects.toThrow(/cannot unpause/);
        await expect(a.pause({ instanceId: newId('never') })).rejects.toBeInstanceOf(InstanceNotFound);
      },
      timeouts.testMs
    );

    it(
      'suspends a guest (its memory saved, no guest running, its port kept) and resumes it where it was, no boot; both idempotent',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('suspend');
        const network = await a.allocateNetworks({ instanceId: id });
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        expect(await a.suspend({ instanceId: id })).toBe(PowerState.Suspended);
        expect(await a.suspend({ instanceId: id })).toBe(PowerState.Suspended); // a retry after a lost answer
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Suspended);
        expect((await a.listGuests()).filter((g) => g.instanceId === id)).toMatchObject([
          { powerState: PowerState.Suspended, network },
        ]);
        await expect(a.pause({ instanceId: id })).rejects.toThrow(/cannot pause/);

        expect(await a.resume({ instanceId: id })).toBe(PowerState.Running);
        expect(await a.resume({ instanceId: id })).toBe(PowerState.Running); // resuming a running guest
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Running);
        expect(bootLines(await consoleOf(a, id))).toHaveLength(1); // its memory restored: no boot

        // From paused too (the hypervisor allows it), and it runs again after the resume.
        await a.pause({ instanceId: id });
        expect(await a.suspend({ instanceId: id })).toBe(PowerState.Suspended);
        expect(await a.resume({ instanceId: id })).toBe(PowerState.Running);
        expect(bootLines(await consoleOf(a, id))).toHaveLength(1);
      },
      timeouts.testMs
    );

    it(
      "a forced power-off discards a suspended guest's saved memory: resume is refused, a power-on boots from its disk",
      async () => {
        const a = await driver(HOST_A);
        const id = newId('discard');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        await a.suspend({ instanceId: id });
        expect(await a.powerOff({ instanceId: id })).toBe(PowerState.Shutdown);
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Shutdown);
        await expect(a.resume({ instanceId: id })).rejects.toThrow(/cannot resume/);
        expect(await a.powerOn({ instanceId: id })).toBe(PowerState.Running);
        await waitForBoot(a, id, 2);
        await a.suspend({ instanceId: id });
        expect(await a.destroy({ instanceId: id })).toBe(true);
        await expect(a.resume({ instanceId: id })).rejects.toBeInstanceOf(InstanceNotFound);
      },
      timeouts.testMs
    );

    it(
      'a guest that ignores ACPI keeps running until it is forced off',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('stubborn');
        await spawn(a, id, images.ignoresAcpi);
        await waitForBoot(a, id, 1, images.ignoresAcpi);
        expect(await a.requestShutdown({ instanceId: id })).toBe(PowerState.Running);
        await delay(timeouts.ignoredShutdownMs);
        expect(await a.requestShutdown({ instanceId: id })).toBe(PowerState.Running);
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Running);
        expect(await a.powerOff({ instanceId: id })).toBe(PowerState.Shutdown);
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Shutdown);
      },
      timeouts.testMs
    );

    it(
      'destroys a guest with its console; a repeat and an unknown guest are no-ops, power calls InstanceNotFound',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('destroy');
        await spawn(a, id);
        expect(await a.destroy({ instanceId: id })).toBe(true);
        expect(await a.destroy({ instanceId: id })).toBe(false);
        expect(await a.destroy({ instanceId: newId('never') })).toBe(false);
        expect(await idsOn(a)).not.toContain(id);
        for (const call of [
          () => a.getPowerState({ instanceId: id }),
          () => a.requestShutdown({ instanceId: id }),
          () => a.powerOff({ instanceId: id }),
          () => a.powerOn({ instanceId: id }),
          () => a.getConsoleOutput({ instanceId: id }),
        ])
          await expect(call()).rejects.toBeInstanceOf(InstanceNotFound);
      },
      timeouts.testMs
    );

    it(
      'rebuilds: the old guest removed, the port kept, a new guest whose boot counter starts again',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('rebuild');
        const network = await a.allocateNetworks({ instanceId: id });
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        await a.powerOff({ instanceId: id });
        await a.powerOn({ instanceId: id });
        await waitForBoot(a, id, 2);

        const request = { instanceId: id, flavor: flavors.small, image: images.cooperative };
        const prepared = await a.prepareRebuild(request);
        expect(prepared).toMatchObject({ removedGuest: true, network });
        expect(await a.prepareRebuild(request)).toMatchObject({ removedGuest: false, network });
        expect(await idsOn(a)).not.toContain(id);
        const { created } = await spawn(a, id);
        expect(created).toBe(true);
        await waitForBoot(a, id, 1);
        expect((await a.listGuests()).filter((g) => g.instanceId === id)).toMatchObject([{ network }]);
      },
      timeouts.testMs
    );

    it(
      'migrates the disk and finishes on the destination with the new flavor; confirm removes the source copy',
      async () => {
        const [a, b] = await hosts();
        const id = newId('resize');
        const migrationId = newId('mig');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        await b.prepareResize({
          instanceId: id,
          sourceHost: HOST_A,
          oldFlavor: flavors.small,
          newFlavor: flavors.large,
          image: images.cooperative,
        });
        const phases = new Set<string>();
        const move = { instanceId: id, migrationId, newFlavor: flavors.large };
        const disk = await a.migrateDiskAndPowerOff(move, {
          shutdownTimeoutSeconds: Math.ceil(timeouts.shutdownMs / 1000),
          onProgress: (phase) => phases.add(phase),
        });
        expect(disk).toMatchObject({ transferred: true });
        expect(phases).toContain('transferring');
        expect(await a.migrateDiskAndPowerOff(move, { shutdownTimeoutSeconds: 0 })).toMatchObject({
          transferred: false,
        });

        const finish = {
          instanceId: id,
          migrationId,
          name: `vm-${id}`,
          flavor: flavors.large,
          image: images.cooperative,
          powerOn: true,
        };
        const finished = await b.finishMigration(finish);
        expect(finished).toMatchObject({
          created: true,
          guest: { instanceId: id, host: HOST_B, flavor: flavors.large },
        });
        expect((await b.finishMigration(finish)).created).toBe(false);
        expect(await b.getPowerState({ instanceId: id })).toBe(PowerState.Running);
        await vi.waitFor(async () => expect(bootLines(await consoleOf(b, id)).length).toBeGreaterThan(0), {
          timeout: timeouts.bootMs,
          interval: 100,
        });
        expect((await b.listGuests()).find((g) => g.instanceId === id)?.flavor).toEqual(flavors.large);

        expect(await a.confirmMigration({ instanceId: id })).toBe(true);
        expect(await a.confirmMigration({ instanceId: id })).toBe(false);
        expect(await idsOn(a)).not.toContain(id);
        expect(await idsOn(b)).toEqual([id]);
      },
      timeouts.testMs
    );

    it(
      'reverts: the destination guest destroyed, the source guest back with its old flavor, running',
      async () => {
        const [a, b] = await hosts();
        const { id, migrationId } = await resizedOnto(a, b, 'revert');

        expect(await b.destroyMigrationTarget({ instanceId: id, migrationId })).toBe(true);
        expect(await b.destroyMigrationTarget({ instanceId: id, migrationId })).toBe(false);
        expect(await idsOn(b)).not.toContain(id);
        const revert = { instanceId: id, migrationId, powerOn: true };
        expect(await a.finishRevertMigration(revert)).toBe(PowerState.Running);
        expect(await a.finishRevertMigration(revert)).toBe(PowerState.Running);
        expect(await idsOn(a)).toEqual([id]);
        expect((await a.listGuests())[0]?.flavor).toEqual(flavors.small);
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Running);
      },
      timeouts.testMs
    );

    it(
      "destroys a resized instance's guests on both hosts, the source's moved-aside copy too (a delete in VERIFY_RESIZE)",
      async () => {
        const [a, b] = await hosts();
        const { id } = await resizedOnto(a, b, 'delresized');
        expect(await idsOn(a)).toEqual([id]); // the copy kept aside for a revert

        expect(await a.destroy({ instanceId: id })).toBe(true);
        expect(await a.destroy({ instanceId: id })).toBe(false);
        expect(await b.destroy({ instanceId: id })).toBe(true);
        expect(await idsOn(a)).toEqual([]);
        expect(await idsOn(b)).toEqual([]);
        expect(await a.confirmMigration({ instanceId: id })).toBe(false);
      },
      timeouts.testMs
    );

    it(
      'live-migrates a running guest with progress: it runs on the destination with no new boot, the source gone',
      async () => {
        const [a, b] = await hosts();
        const id = newId('live');
        const migrationId = newId('mig');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        const bootsBefore = bootLines(await consoleOf(a, id)).length;
        expect(await a.forceCompleteLiveMigration({ instanceId: id })).toBe(false); // no copy running
        await prepareLive(a, b, id, migrationId, images.cooperative);

        const watch = receive(b, id, migrationId);
        const progress: LiveMigrationProgress[] = [];
        const request = { instanceId: id, migrationId, ...live };
        const result = await a.liveMigration(request, { onProgress: (p) => progress.push(p) });
        expect(result).toMatchObject({ switched: true, forced: false });
        expect(result.rounds).toBeGreaterThanOrEqual(1);
        expect(result.downtimeMs).toBeGreaterThanOrEqual(0);
        expect(result.downtimeMs).toBeLessThanOrEqual(live.maxDowntimeMs);
        expect(progress.length).toBeGreaterThan(0);
        expect(progress[0]).toMatchObject({
          round: expect.any(Number) as number,
          memoryMb: expect.any(Number) as number,
        });
        // A retry after a lost answer finds the switch-over done.
        expect(await a.liveMigration(request, {})).toMatchObject({ switched: false });
        await watch.stop();

        expect(await b.postLiveMigrationAtDestination({ instanceId: id, migrationId })).toBe(PowerState.Running);
        expect(await b.postLiveMigrationAtDestination({ instanceId: id, migrationId })).toBe(PowerState.Running);
        expect(await a.postLiveMigration({ instanceId: id, migrationId })).toBe(true);
        expect(await a.postLiveMigration({ instanceId: id, migrationId })).toBe(false);
        expect(await idsOn(a)).not.toContain(id);
        expect(await idsOn(b)).toEqual([id]);
        expect(await b.getPowerState({ instanceId: id })).toBe(PowerState.Running);
        // Moved, not restarted: no boot the source's console did not have.
        expect(bootLines(await consoleOf(b, id)).length).toBeLessThanOrEqual(bootsBefore);
      },
      timeouts.testMs
    );

    it(
      'live-migrates a paused guest (the copy converges at once; a retry finds it switched over), then pauses it again on the destination',
      async () => {
        const [a, b] = await hosts();
        const id = newId('paused-live');
        const migrationId = newId('mig');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        expect(await a.pause({ instanceId: id })).toBe(PowerState.Paused);
        await prepareLive(a, b, id, migrationId, images.cooperative);
        const watch = receive(b, id, migrationId);
        const request = { instanceId: id, migrationId, ...live };
        expect(await a.liveMigration(request, {})).toMatchObject({ switched: true });
        expect(await a.liveMigration(request, {})).toMatchObject({ switched: false });
        await watch.stop();
        await b.postLiveMigrationAtDestination({ instanceId: id, migrationId });
        expect(await b.pause({ instanceId: id })).toBe(PowerState.Paused);
        expect(await a.postLiveMigration({ instanceId: id, migrationId })).toBe(true);
        expect(await b.getPowerState({ instanceId: id })).toBe(PowerState.Paused);
        expect(await b.unpause({ instanceId: id })).toBe(PowerState.Running);
        // Moved, not restarted: no boot the source's console did not have.
        expect(bootLines(await consoleOf(b, id)).length).toBeLessThanOrEqual(1);
      },
      timeouts.testMs
    );

    it(
      'a guest that came in by live migration moves on again (back to its first host), still not rebooted',
      async () => {
        const [a, b] = await hosts();
        const id = newId('twice');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        const bootsBefore = bootLines(await consoleOf(a, id)).length;
        for (const [from, to] of [
          [a, b],
          [b, a],
        ] as const) {
          const migrationId = newId('mig');
          await prepareLive(from, to, id, migrationId, images.cooperative);
          const watch = receive(to, id, migrationId);
          const result = await from.liveMigration({ instanceId: id, migrationId, ...live }, {});
          expect(result).toMatchObject({ switched: true });
          await watch.stop();
          expect(await to.postLiveMigrationAtDestination({ instanceId: id, migrationId })).toBe(PowerState.Running);
          expect(await from.postLiveMigration({ instanceId: id, migrationId })).toBe(true);
          expect(await idsOn(to)).toEqual([id]);
          expect(await idsOn(from)).not.toContain(id);
        }
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Running);
        expect(bootLines(await consoleOf(a, id)).length).toBeLessThanOrEqual(bootsBefore);
      },
      timeouts.testMs
    );

    it(
      'force-completes a live migration that does not converge',
      async () => {
        const [a, b] = await hosts();
        const { id, migrationId } = await dirtyGuestPrepared(a, b, 'force');

        const watch = receive(b, id, migrationId);
        let copying: () => void = () => undefined;
        const started = new Promise<void>((resolve) => (copying = resolve));
        const migrating = a.liveMigration({ instanceId: id, migrationId, ...live }, { onProgress: () => copying() });
        migrating.catch(() => undefined);
        await started;
        expect(await a.forceCompleteLiveMigration({ instanceId: id })).toBe(true);
        expect(await migrating).toMatchObject({ switched: true, forced: true });
        await watch.stop();
        expect(await b.postLiveMigrationAtDestination({ instanceId: id, migrationId })).toBe(PowerState.Running);
        expect(await a.postLiveMigration({ instanceId: id, migrationId })).toBe(true);
        expect(await idsOn(b)).toEqual([id]);
        expect(await idsOn(a)).not.toContain(id);
      },
      timeouts.testMs
    );

    it(
      'takes a force-complete asked before the copy runs, and applies it when the copy begins',
      async () => {
        const [a, b] = await hosts();
        const { id, migrationId } = await dirtyGuestPrepared(a, b, 'early');

        const watch = receive(b, id, migrationId);
        const progress: number[] = [];
        // Asked in the same tick as the copy: the call has begun, its copy has not (no progress yet).
        const migrating = a.liveMigration(
          { instanceId: id, migrationId, ...live, completionTimeoutSecondsPerGb: 20 },
          { onProgress: (p) => progress.push(p.round) }
        );
        migrating.catch(() => undefined);
        const forced = a.forceCompleteLiveMigration({ instanceId: id });
        expect(progress).toEqual([]);
        expect(await forced).toBe(true);
        // The dirty guest converges only when forced: without the queued request the copy would run into
        // its completion timeout.
        expect(await migrating).toMatchObject({ switched: true, forced: true });
        await watch.stop();
        expect(await b.postLiveMigrationAtDestination({ instanceId: id, migrationId })).toBe(PowerState.Running);
        expect(await a.postLiveMigration({ instanceId: id, migrationId })).toBe(true);
        expect(await a.forceCompleteLiveMigration({ instanceId: id })).toBe(false); // over: nothing to force
        expect(await idsOn(b)).toEqual([id]);
      },
      timeouts.testMs
    );

    it(
      'aborts a live migration: the copy stops, the destination cleaned, the guest runs on at the source',
      async () => {
        const [a, b] = await hosts();
        const { id, migrationId } = await dirtyGuestPrepared(a, b, 'cancel');

        const watch = receive(b, id, migrationId);
        const controller = new AbortController();
        const migrating = a.liveMigration(
          { instanceId: id, migrationId, ...live },
          { signal: controller.signal, onProgress: () => controller.abort(new Error('aborted by the operator')) }
        );
        await expect(migrating).rejects.toThrow('aborted by the operator');
        await watch.stop();
        expect(await b.rollbackLiveMigrationAtDestination({ instanceId: id, migrationId })).toBe(true);
        expect(await b.rollbackLiveMigrationAtDestination({ instanceId: id, migrationId })).toBe(false);
        expect(await a.rollbackLiveMigration({ instanceId: id })).toBe(PowerState.Running);
        expect(await a.rollbackLiveMigration({ instanceId: id })).toBe(PowerState.Running);
        expect(await idsOn(b)).not.toContain(id);
        expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Running);
        expect(bootLines(await consoleOf(a, id))).toHaveLength(1);
      },
      timeouts.testMs
    );

    it(
      'gives up a copy that does not converge within its completion timeout (LiveMigrationAborted)',
      async () => {
        const [a, b] = await hosts();
        const { id, migrationId } = await dirtyGuestPrepared(a, b, 'timeout');
        const watch = receive(b, id, migrationId);
        await expect(
          a.liveMigration({ instanceId: id, migrationId, ...live, completionTimeoutSecondsPerGb: 1 }, {})
        ).rejects.toBeInstanceOf(LiveMigrationAborted);
        await watch.stop();
        await b.rollbackLiveMigrationAtDestination({ instanceId: id, migrationId });
        expect(await a.rollbackLiveMigration({ instanceId: id })).toBe(PowerState.Running);
        expect(await idsOn(b)).not.toContain(id);
      },
      timeouts.testMs
    );

    it(
      'a new driver object on the same data directory re-adopts the guests of the one that is gone',
      async () => {
        const first = await driver(HOST_A);
        const id = newId('adopt');
        await spawn(first, id);
        await waitForBoot(first, id, 1);
        await options.releaseDriver?.(first);
        made.splice(made.indexOf(first), 1);

        const second = await driver(HOST_A);
        expect(await idsOn(second)).toEqual([id]);
        expect(await second.getPowerState({ instanceId: id })).toBe(PowerState.Running);
        expect(bootLines(await consoleOf(second, id))).toHaveLength(1); // the same guest, not rebooted
        expect(await second.powerOff({ instanceId: id })).toBe(PowerState.Shutdown);
        expect(await second.powerOn({ instanceId: id })).toBe(PowerState.Running);
        await waitForBoot(second, id, 2);
        expect(await second.destroy({ instanceId: id })).toBe(true);
      },
      timeouts.testMs
    );

    it(
      'snapshots a running guest into an image (consistent, the guest runs on); a new guest boots from it; the image removed',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('snap');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        const imageName = `contract-snap-${process.pid}-${++serial}`;
        try {
          const saved = await a.snapshot({ instanceId: id, imageName });
          expect(saved.imageName).toBe(imageName);
          expect(saved.sizeGb).toBeGreaterThan(0);
          // A retry after a lost answer: the image as it is, the guest untouched.
          expect(await a.snapshot({ instanceId: id, imageName })).toEqual(saved);
          expect(await a.getPowerState({ instanceId: id })).toBe(PowerState.Running);
          expect(bootLines(await consoleOf(a, id))).toHaveLength(1);
          await expect(a.snapshot({ instanceId: newId('nobody'), imageName: `${imageName}-x` })).rejects.toBeInstanceOf(
            InstanceNotFound
          );

          const copy = newId('from-snap');
          await spawn(a, copy, { name: imageName, sizeGb: saved.sizeGb });
          await vi.waitFor(async () => expect(bootLines(await consoleOf(a, copy)).length).toBeGreaterThan(0), {
            timeout: timeouts.bootMs,
            interval: 100,
          });
          expect(await a.getPowerState({ instanceId: copy })).toBe(PowerState.Running);
          expect(await a.deleteImage({ imageName })).toBe(true);
          expect(await a.deleteImage({ imageName })).toBe(false);
        } finally {
          await a.deleteImage({ imageName }).catch(() => false);
        }
      },
      timeouts.testMs
    );

    it(
      'reads the console: whole, or its last lines, one newline-terminated line each',
      async () => {
        const a = await driver(HOST_A);
        const id = newId('console');
        await spawn(a, id);
        await waitForBoot(a, id, 1);
        const whole = await consoleOf(a, id);
        expect(whole.endsWith('\n')).toBe(true);
        const last = await a.getConsoleOutput({ instanceId: id, lines: 1 });
        expect(last.split('\n')).toHaveLength(2);
        expect(last.endsWith('\n')).toBe(true);
        expect(await a.getConsoleOutput({ instanceId: id, lines: 0 })).toBe('');
        const three = await a.getConsoleOutput({ instanceId: id, lines: 3 });
        expect(three.split('\n').length).toBeLessThanOrEqual(4);
        // Still there once the guest is off (a serial log outlives the guest's run).
        await a.powerOff({ instanceId: id });
        expect(bootLines(await consoleOf(a, id))).toHaveLength(1);
      },
      timeouts.testMs
    );
  });
}
