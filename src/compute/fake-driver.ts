/**
 * A fake hypervisor driver for one compute host, shaped like Nova's virt driver API (spawn, destroy,
 * power_off with a clean-shutdown timeout, power_on, get_info). It holds no database credentials: it knows
 * its host name and two files under `<stateDir>/<host>/`:
 *
 * - `guests.json`: the guests, their networks and block devices, so a restarted compute worker still
 *   knows what runs on its host. Written whole through temp + rename (never torn).
 * - `faults.json`: faults injected by a user or a test (see ./faults.ts), re-read at each operation that
 *   can fail, with counters consumed by writing the file back.
 *
 * Every operation is idempotent, keyed by instance id, because Temporal delivers activities at least once.
 * The driver throws driver-level errors (DriverError, ImageUnacceptable, FlavorDiskSmallerThanImage, like
 * libvirt's); the compute activities classify them into reschedule / abort, as Nova's compute manager does.
 */
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { z } from 'zod';

import type { Flavor, Image } from '../domain/catalogue';
import { HypervisorBusy, InstanceNotFound } from '../domain/errors';
import { PowerState } from '../domain/instance';
import { HOST_NAME_PATTERN } from '../shared/task-queues';
import type { Faults, SpawnFault } from './faults';
import { FaultsSchema, takeSpawnFault } from './faults';
import { readJsonFile, withFileLock, writeJsonFileAtomic } from './json-file';

/** How often a running spawn reports progress (the brief asks for at least every 500 ms). */
export const SPAWN_PROGRESS_INTERVAL_MS = 200;
/** Where in a spawn an injected failure or hang strikes (fraction of spawnSeconds). */
export const SPAWN_FAULT_POINT = 0.5;

// ---------------------------------------------------------------------------------------------------
// Driver-level errors (the fake's libvirtError and friends). The compute activities map them to
// domain errors; they never cross the wire as they are.

/** An unexpected hypervisor failure during spawn (libvirtError). Nova reschedules on it. */
export class DriverError extends Error {
  override readonly name = 'DriverError';
}

/** The hypervisor refuses the image (Nova's ImageUnacceptable). Nova aborts the build on it. */
export class ImageUnacceptable extends Error {
  override readonly name = 'ImageUnacceptable';
}

/** The flavor's root disk cannot hold the image (Nova's FlavorDiskSmallerThanImage). Aborts the build. */
export class FlavorDiskSmallerThanImage extends Error {
  override readonly name = 'FlavorDiskSmallerThanImage';
  constructor(
    readonly flavorDiskGb: number,
    readonly imageSizeGb: number
  ) {
    super(
      `Flavor's disk is too small for requested image. Flavor disk is ${flavorDiskGb}GB, image is ${imageSizeGb}GB.`
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Persisted shapes.

export const GuestFlavorSchema = z.object({
  name: z.string(),
  vcpus: z.number(),
  memoryMb: z.number(),
  diskGb: z.number(),
});
/** What the driver needs of a flavor; a full catalogue `Flavor` fits. */
export type GuestFlavor = Pick<Flavor, 'name' | 'vcpus' | 'memoryMb' | 'diskGb'>;

export const GuestImageSchema = z.object({ name: z.string(), sizeGb: z.number() });
/** What the driver needs of an image; a full catalogue `Image` fits. */
export type GuestImage = Pick<Image, 'name' | 'sizeGb'>;

export const NetworkInfoSchema = z.object({
  network: z.string(),
  portId: z.string(),
  mac: z.string(),
  ip: z.string(),
});
/** One port on the tenant network; deterministic per instance (the same on every host). */
export type NetworkInfo = z.infer<typeof NetworkInfoSchema>;

export const BlockDeviceInfoSchema = z.object({
  rootDeviceName: z.string(),
  devices: z.array(
    z.object({
      deviceName: z.string(),
      bootIndex: z.number().int(),
      sourceType: z.literal('image'),
      destinationType: z.literal('local'),
      imageName: z.string(),
      sizeGb: z.number(),
    })
  ),
});
export type BlockDeviceInfo = z.infer<typeof BlockDeviceInfoSchema>;

export const GuestSchema = z.object({
  instanceId: z.string(),
  name: z.string(),
  host: z.string(),
  /** `spawning` while a spawn is under way (a half-made guest); `active` once it completed. */
  status: z.enum(['spawning', 'active']),
  /** The spawn run that owns a half-made guest, so a stale run never tears down a newer one. */
  spawnId: z.string(),
  flavor: GuestFlavorSchema,
  image: GuestImageSchema,
  powerState: z.enum(PowerState),
  network: NetworkInfoSchema.nullable(),
  blockDevices: BlockDeviceInfoSchema.nullable(),
  /** ISO timestamp. */
  createdAt: z.string(),
  /** Epoch ms of the first ACPI shutdown request a cooperative guest is acting on; null when none. */
  shutdownRequestedAt: z.number().nullable(),
});
export type Guest = z.infer<typeof GuestSchema>;

const HostStateSchema = z.object({
  version: z.literal(1),
  host: z.string(),
  guests: z.record(z.string(), GuestSchema),
  networks: z.record(z.string(), NetworkInfoSchema),
  blockDevices: z.record(z.string(), BlockDeviceInfoSchema),
});
type HostState = z.infer<typeof HostStateSchema>;

// ---------------------------------------------------------------------------------------------------

export interface FakeDriverOptions {
  host: string;
  stateDir: string;
  /** Seconds a spawn takes. Default 3; 0 for benchmarks. */
  spawnSeconds?: number;
  /** Seconds a cooperative guest takes to power off after an ACPI request. Default 2. */
  shutdownSeconds?: number;
  /** Clock for timestamps and the lazy shutdown evaluation (epoch ms). Default Date.now. */
  now?: () => number;
  /** Random source for `spawn.failRate`, in [0, 1). Default Math.random. */
  rng?: () => number;
}

export interface SpawnRequest {
  instanceId: string;
  name: string;
  flavor: GuestFlavor;
  image: GuestImage;
}

export interface SpawnOptions {
  /** Aborting rejects the spawn with the signal's reason and tears down the half-made guest. */
  signal?: AbortSignal;
  /** Called with 0..100 at the start, at least every SPAWN_PROGRESS_INTERVAL_MS, and at the end. */
  onProgress?: (percent: number) => void;
}

export interface SpawnResult {
  guest: Guest;
  /** False when a guest already existed (a retried spawn): nothing new was made. */
  created: boolean;
}

/** The local root disk a guest of this flavor boots from this image (a 0 GB flavor disk takes the image's size). */
function rootDiskFor(flavor: GuestFlavor, image: GuestImage): BlockDeviceInfo {
  return {
    rootDeviceName: '/dev/vda',
    devices: [
      {
        deviceName: '/dev/vda',
        bootIndex: 0,
        sourceType: 'image',
        destinationType: 'local',
        imageName: image.name,
        sizeGb: flavor.diskGb > 0 ? flavor.diskGb : Math.ceil(image.sizeGb),
      },
    ],
  };
}

export class FakeDriver {
  readonly host: string;
  readonly spawnSeconds: number;
  readonly shutdownSeconds: number;
  /** `<stateDir>/<host>/guests.json` */
  readonly guestsFile: string;
  /** `<stateDir>/<host>/faults.json` */
  readonly faultsFile: string;
  private readonly now: () => number;
  private readonly rng: () => number;

  constructor(options: FakeDriverOptions) {
    // The host name becomes a directory and a task queue: hold it to the same rule as the fleet file.
    if (!HOST_NAME_PATTERN.test(options.host)) throw new Error(`invalid compute host name '${options.host}'`);
    const spawnSeconds = options.spawnSeconds ?? 3;
    const shutdownSeconds = options.shutdownSeconds ?? 2;
    if (!(spawnSeconds >= 0) || !(shutdownSeconds >= 0))
      throw new Error('spawnSeconds and shutdownSeconds must be >= 0');
    this.host = options.host;
    this.spawnSeconds = spawnSeconds;
    this.shutdownSeconds = shutdownSeconds;
    this.guestsFile = path.join(options.stateDir, options.host, 'guests.json');
    this.faultsFile = path.join(options.stateDir, options.host, 'faults.json');
    this.now = options.now ?? Date.now;
    this.rng = options.rng ?? Math.random;
  }

  // ----- faults ------------------------------------------------------------------------------------

  /** Replaces the injected faults (validated, written atomically: a running worker sees them next op). */
  async setFaults(faults: Faults): Promise<void> {
    const valid = FaultsSchema.parse(faults);
    await withFileLock(this.faultsFile, () => writeJsonFileAtomic(this.faultsFile, valid));
  }

  /** The faults currently injected; `{}` when there is no file or it is malformed (with a warning). */
  async getFaults(): Promise<Faults> {
    let raw: unknown;
    try {
      raw = await readJsonFile(this.faultsFile);
    } catch (err) {
      console.warn(`fake-driver ${this.host}: ignoring unreadable ${this.faultsFile}: ${String(err)}`);
      return {};
    }
    if (raw === undefined) return {};
    const parsed = FaultsSchema.safeParse(raw);
    if (!parsed.success) {
      console.warn(`fake-driver ${this.host}: ignoring invalid ${this.faultsFile}: ${z.prettifyError(parsed.error)}`);
      return {};
    }
    return parsed.data;
  }

  /** Decides the next spawn's fault and writes the consumed counters back. */
  private async consumeSpawnFault(): Promise<SpawnFault> {
    return withFileLock(this.faultsFile, async () => {
      const faults = await this.getFaults();
      const { fault, next } = takeSpawnFault(faults, this.rng);
      if (next !== faults) await writeJsonFileAtomic(this.faultsFile, next);
      return fault;
    });
  }

  // ----- build steps -------------------------------------------------------------------------------

  /** Plugs a port for the instance; the same port on a retry (and on every host: it is the tenant's port). */
  async allocateNetworks(instanceId: string): Promise<NetworkInfo> {
    return this.mutate((state) => {
      const info = state.networks[instanceId] ?? networkInfoFor(instanceId);
      state.networks[instanceId] = info;
      return info;
    });
  }

  /**
   * Prepares the root disk from the image. A flavor root disk of 0 means "as big as the image" (Nova);
   * otherwise an image larger than it throws FlavorDiskSmallerThanImage before anything is written.
   */
  async prepareBlockDevices(instanceId: string, flavor: GuestFlavor, image: GuestImage): Promise<BlockDeviceInfo> {
    checkDiskFits(flavor, image);
    return this.mutate((state) => {
      const info = rootDiskFor(flavor, image);
      state.blockDevices[instanceId] = info;
      return info;
    });
  }

  /**
   * Creates and boots the guest, taking `spawnSeconds`. A spawn of an instance whose guest completed
   * already returns that guest (powered on if it was off): never a second guest. A half-made guest left
   * by a run that died is taken over. On failure or abort the half-made guest, its networks and block
   * devices are torn down (Nova's _shutdown_instance + _cleanup_allocated_networks), unless a newer run
   * has taken it over meanwhile.
   */
  async spawn(request: SpawnRequest, options: SpawnOptions = {}): Promise<SpawnResult> {
    const { signal, onProgress } = options;
    const { instanceId } = request;
    throwIfAborted(signal);
    checkDiskFits(request.flavor, request.image);

    const existing = await this.mutate((state) => {
      const guest = state.guests[instanceId];
      if (guest?.status !== 'active') return undefined;
      if (guest.powerState !== PowerState.Running) powerOnGuest(guest);
      return { ...guest };
    });
    if (existing) {
      onProgress?.(100);
      return { guest: existing, created: false };
    }

    const fault = await this.consumeSpawnFault();
    if (fault.kind === 'busy') throw new HypervisorBusy(this.host, 'injected fault (busyNext)');

    const spawnId = randomUUID();
    await this.mutate((state, at) => {
      const previous = state.guests[instanceId];
      state.guests[instanceId] = {
        instanceId,
        name: request.name,
        host: this.host,
        status: 'spawning',
        spawnId,
        flavor: {
          name: request.flavor.name,
          vcpus: request.flavor.vcpus,
          memoryMb: request.flavor.memoryMb,
          diskGb: request.flavor.diskGb,
        },
        image: { name: request.image.name, sizeGb: request.image.sizeGb },
        powerState: PowerState.NoState,
        network: state.networks[instanceId] ?? null,
        blockDevices: state.blockDevices[instanceId] ?? null,
        createdAt: previous?.createdAt ?? new Date(at).toISOString(),
        shutdownRequestedAt: null,
      };
    });

    try {
      await this.runSpawnClock(fault, signal, onProgress);
      return await this.mutate((state): SpawnResult => {
        const current = state.guests[instanceId];
        // NOTE(nova): an instance deleted during its build ends the build with InstanceNotFound.
        if (!current) throw new InstanceNotFound(instanceId);
        // Another run took the guest over: leave it to that run and report what is there.
        if (current.spawnId !== spawnId) return { guest: { ...current }, created: false };
        current.status = 'active';
        current.powerState = PowerState.Running;
        return { guest: { ...current }, created: true };
      });
    } catch (err) {
      await this.discardHalfMadeGuest(instanceId, spawnId);
      throw err;
    }
  }

  /** Idempotent: removes the guest, its networks and block devices; `false` when there was no guest. */
  async destroy(instanceId: string): Promise<boolean> {
    return this.mutate((state) => {
      const existed = instanceId in state.guests;
      delete state.guests[instanceId];
      delete state.networks[instanceId];
      delete state.blockDevices[instanceId];
      return existed;
    });
  }

  // ----- power -------------------------------------------------------------------------------------

  /**
   * Sends an ACPI shutdown request and returns the power state right after. A cooperative guest reaches
   * `shutdown` `shutdownSeconds` after the first request it heeded (evaluated lazily from timestamps, so
   * re-sending does not restart its clock); with `ignoreShutdown` injected the request is ignored.
   */
  async requestShutdown(instanceId: string): Promise<PowerState> {
    const { ignoreShutdown } = await this.getFaults();
    return this.mutate((state, at) => {
      const guest = requireGuest(state, instanceId);
      if (guest.powerState === PowerState.Running && guest.shutdownRequestedAt === null && !ignoreShutdown) {
        guest.shutdownRequestedAt = at;
        settleGuest(guest, at, this.shutdownSeconds);
      }
      return guest.powerState;
    });
  }

  /** Forced power-off (virDomainDestroy): immediate, whatever the guest thinks. Idempotent. */
  async powerOff(instanceId: string): Promise<PowerState> {
    return this.mutate((state) => {
      const guest = requireGuest(state, instanceId);
      guest.powerState = PowerState.Shutdown;
      guest.shutdownRequestedAt = null;
      return guest.powerState;
    });
  }

  /** Boots a stopped guest. Idempotent: a running guest stays running. */
  async powerOn(instanceId: string): Promise<PowerState> {
    return this.mutate((state) => {
      const guest = requireGuest(state, instanceId);
      powerOnGuest(guest);
      return guest.powerState;
    });
  }

  // ----- rebuild -----------------------------------------------------------------------------------

  /**
   * Prepares the re-creation of an instance on this host, before `spawn` boots it: Nova's
   * rebuild_block_device_mapping, for a rebuild (the guest is here) and an evacuation (it is not).
   * Checks that the image fits the flavor's root disk before touching anything (FlavorDiskSmallerThanImage
   * leaves the old guest as it was), then removes the old guest while keeping the instance's port (Nova
   * keeps the ports across a rebuild), plugs that port here when this host has none (an evacuation), and
   * lays out the root disk from the image. Idempotent: a repeat finds no guest and lays out the same disk.
   */
  async prepareRebuild(
    instanceId: string,
    flavor: GuestFlavor,
    image: GuestImage
  ): Promise<{ removedGuest: boolean; network: NetworkInfo; blockDevices: BlockDeviceInfo }> {
    checkDiskFits(flavor, image);
    const { removedGuest, network } = await this.mutate((state) => {
      const removed = instanceId in state.guests;
      delete state.guests[instanceId];
      const port = state.networks[instanceId] ?? networkInfoFor(instanceId);
      state.networks[instanceId] = port;
      return { removedGuest: removed, network: port };
    });
    const blockDevices = await this.prepareBlockDevices(instanceId, flavor, image);
    return { removedGuest, network, blockDevices };
  }

  // ----- reads -------------------------------------------------------------------------------------

  /** The guest's power state now; throws InstanceNotFound when the host has no such guest. */
  async getPowerState(instanceId: string): Promise<PowerState> {
    const state = await this.read();
    return requireGuest(state, instanceId).powerState;
  }

  /** The guest, or undefined. */
  async getGuest(instanceId: string): Promise<Guest | undefined> {
    const state = await this.read();
    return state.guests[instanceId];
  }

  /** Every guest on this host (including half-made ones), sorted by instance id. */
  async listGuests(): Promise<Guest[]> {
    const state = await this.read();
    return Object.values(state.guests).sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  // ----- resize ------------------------------------------------------------------------------------
  //
  // Nova's virt driver calls of a resize or cold migration. Like libvirt, the source keeps the migrated
  // guest's files aside as `<instanceId>_resize` (powered off) until the resize is confirmed (then they are
  // deleted) or reverted (then they are put back); the destination's guest carries the migration id as its
  // `spawnId`, which is what makes every step idempotent and safe on a same-host resize (both guests on one
  // host). Driver failures are DriverError or FlavorDiskSmallerThanImage; the compute activities classify.

  /**
   * Checks that this host can take the instance (Nova's prep_resize on the destination): the image fits
   * the new flavor's root disk (FlavorDiskSmallerThanImage), and a same-host move changes the flavor
   * (DriverError, like Nova's UnableToMigrateToSelf). Writes nothing; an injected `prepResize.failNext`
   * fails it with a DriverError.
   */
  async prepareResize(request: {
    instanceId: string;
    sourceHost: string;
    oldFlavor: GuestFlavor;
    newFlavor: GuestFlavor;
    image: GuestImage;
  }): Promise<void> {
    checkDiskFits(request.newFlavor, request.image);
    if (request.sourceHost === this.host && request.oldFlavor.name === request.newFlavor.name)
      throw new DriverError(`Unable to migrate instance ${request.instanceId} to the current host (${this.host})`);
    if (await this.consumeResizeFault('prepResize'))
      throw new DriverError(`Resize claim failed on ${this.host}: injected fault (prepResize.failNext)`);
  }

  /**
   * The source's half of a move (Nova's migrate_disk_and_power_off): refuses to shrink the root disk
   * (before touching the guest), powers the guest off cleanly (an ACPI request, then a forced power-off
   * after `shutdownTimeoutSeconds`), transfers the disk over `spawnSeconds` with progress, then moves the
   * guest aside as `<instanceId>_resize`. Aborting (the signal) stops it with the guest powered off and
   * still in place. Idempotent: a guest already moved aside returns at once with `transferred: false`.
   */
  async migrateDiskAndPowerOff(
    request: { instanceId: string; migrationId: string; newFlavor: GuestFlavor },
    options: {
      signal?: AbortSignal;
      shutdownTimeoutSeconds: number;
      onProgress?: (phase: 'powering-off' | 'transferring', percent: number) => void;
    }
  ): Promise<{ transferred: boolean; diskGb: number }> {
    const { instanceId, migrationId, newFlavor } = request;
    const { signal, onProgress } = options;
    throwIfAborted(signal);
    const aside = this.asideKey(instanceId);
    const state = await this.read();
    const current = state.guests[instanceId];
    const movedAside = state.guests[aside];
    if (movedAside && (!current || current.spawnId === migrationId)) {
      onProgress?.('transferring', 100);
      return { transferred: false, diskGb: movedAside.flavor.diskGb };
    }
    const guest = requireGuest(state, instanceId);
    // NOTE(nova): libvirt refuses to shrink a root disk (ResizeError "Unable to resize disk down.") before
    // it powers anything off, and the instance goes back to its old state.
    if (newFlavor.diskGb > 0 && guest.flavor.diskGb > newFlavor.diskGb)
      throw new DriverError(
        `Unable to resize disk down: instance ${instanceId} has a ${guest.flavor.diskGb} GB root disk, flavor ${newFlavor.name} ${newFlavor.diskGb} GB`
      );
    const fail = await this.consumeResizeFault('migrateDisk');

    if (guest.powerState === PowerState.Running) {
      onProgress?.('powering-off', 0);
      const deadline = performance.now() + options.shutdownTimeoutSeconds * 1000;
      let power = await this.requestShutdown(instanceId);
      while (power === PowerState.Running && performance.now() < deadline) {
        await delay(Math.max(1, Math.min(SPAWN_PROGRESS_INTERVAL_MS, deadline - performance.now())), signal);
        onProgress?.('powering-off', 0);
        power = await this.getPowerState(instanceId);
      }
      if (power === PowerState.Running) await this.powerOff(instanceId);
    }

    const totalMs = this.spawnSeconds * 1000;
    const started = performance.now();
    for (;;) {
      throwIfAborted(signal);
      const elapsed = performance.now() - started;
      const fraction = totalMs === 0 ? 1 : Math.min(1, elapsed / totalMs);
      if (fail && fraction >= SPAWN_FAULT_POINT)
        throw new DriverError(
          `Disk transfer of instance ${instanceId} from ${this.host} failed: injected fault (migrateDisk.failNext)`
        );
      if (fraction >= 1) break;
      onProgress?.('transferring', Math.floor(fraction * 100));
      const untilFault = fail ? SPAWN_FAULT_POINT * totalMs - elapsed : Infinity;
      await delay(Math.max(1, Math.min(SPAWN_PROGRESS_INTERVAL_MS, totalMs - elapsed, untilFault)), signal);
    }
    onProgress?.('transferring', 100);

    await this.mutate((s) => {
      const g = s.guests[instanceId];
      if (!g || g.spawnId === migrationId) return;
      s.guests[aside] = g;
      delete s.guests[instanceId];
    });
    return { transferred: true, diskGb: guest.flavor.diskGb };
  }

  /**
   * The destination's half (Nova's finish_migration): creates the guest from the transferred disk with
   * the new flavor, on the instance's port, running only when `powerOn` (a stopped instance stays
   * stopped). Idempotent by migration id: the guest this migration made is returned (`created: false`).
   * A guest of the instance from anything else already here is a DriverError.
   */
  async finishMigration(request: {
    instanceId: string;
    migrationId: string;
    name: string;
    flavor: GuestFlavor;
    image: GuestImage;
    powerOn: boolean;
  }): Promise<SpawnResult> {
    const { instanceId, migrationId, flavor, image } = request;
    checkDiskFits(flavor, image);
    const existing = (await this.read()).guests[instanceId];
    if (existing?.spawnId === migrationId) return { guest: existing, created: false };
    if (await this.consumeResizeFault('finishResize'))
      throw new DriverError(`Hypervisor error while finishing the migration on ${this.host}: injected fault`);
    return this.mutate((state, at): SpawnResult => {
      const current = state.guests[instanceId];
      if (current?.spawnId === migrationId) return { guest: { ...current }, created: false };
      if (current) throw new DriverError(`a guest of instance ${instanceId} already exists on ${this.host}`);
      const network = state.networks[instanceId] ?? networkInfoFor(instanceId);
      const blockDevices = rootDiskFor(flavor, image);
      const guest: Guest = {
        instanceId,
        name: request.name,
        host: this.host,
        status: 'active',
        spawnId: migrationId,
        flavor: { name: flavor.name, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb },
        image: { name: image.name, sizeGb: image.sizeGb },
        powerState: request.powerOn ? PowerState.Running : PowerState.Shutdown,
        network,
        blockDevices,
        createdAt: new Date(at).toISOString(),
        shutdownRequestedAt: null,
      };
      state.guests[instanceId] = guest;
      state.networks[instanceId] = network;
      state.blockDevices[instanceId] = blockDevices;
      return { guest: { ...guest }, created: true };
    });
  }

  /**
   * Confirm on the source (Nova's confirm_migration): deletes the guest moved aside, and the instance's
   * port and disks here unless the instance lives on here (a same-host resize). Idempotent: false when
   * there was nothing to delete.
   */
  async confirmMigration(instanceId: string): Promise<boolean> {
    return this.mutate((state) => {
      const aside = this.asideKey(instanceId);
      const existed = aside in state.guests;
      delete state.guests[aside];
      if (!(instanceId in state.guests)) {
        delete state.networks[instanceId];
        delete state.blockDevices[instanceId];
      }
      return existed;
    });
  }

  /**
   * Revert on the destination (Nova's revert_resize: destroy): deletes the guest this migration made here,
   * and the instance's port and disks unless its moved-aside guest is here too (a same-host resize).
   * Idempotent: false when there was no such guest.
   */
  async destroyMigrationTarget(instanceId: string, migrationId: string): Promise<boolean> {
    return this.mutate((state) => {
      const guest = state.guests[instanceId];
      if (guest?.spawnId !== migrationId) return false;
      delete state.guests[instanceId];
      if (!(this.asideKey(instanceId) in state.guests)) {
        delete state.networks[instanceId];
        delete state.blockDevices[instanceId];
      }
      return true;
    });
  }

  /**
   * Finishes a revert (or a rollback) on the source (Nova's finish_revert_migration): puts the moved-aside
   * guest back with its port and disk (a same-host target of this migration still in the way is deleted
   * first) and powers it on when `powerOn`. Returns the guest's power state; InstanceNotFound when the
   * host has no guest of the instance at all. Idempotent.
   */
  async finishRevertMigration(instanceId: string, migrationId: string, powerOn: boolean): Promise<PowerState> {
    return this.mutate((state) => {
      const asideKey = this.asideKey(instanceId);
      if (state.guests[instanceId]?.spawnId === migrationId) delete state.guests[instanceId];
      const aside = state.guests[asideKey];
      if (aside) {
        if (state.guests[instanceId])
          throw new DriverError(`a guest of instance ${instanceId} already exists on ${this.host}`);
        state.guests[instanceId] = aside;
        delete state.guests[asideKey];
        if (aside.network) state.networks[instanceId] = aside.network;
        if (aside.blockDevices) state.blockDevices[instanceId] = aside.blockDevices;
      }
      const guest = requireGuest(state, instanceId);
      if (powerOn) powerOnGuest(guest);
      return guest.powerState;
    });
  }

  /** The guest a resize moved aside on this host (until confirm or revert), or undefined. */
  async getResizeAsideGuest(instanceId: string): Promise<Guest | undefined> {
    return (await this.read()).guests[this.asideKey(instanceId)];
  }

  /** Where a migrated-away guest waits for confirm or revert (libvirt's `<instance dir>_resize`). */
  private asideKey(instanceId: string): string {
    return `${instanceId}_resize`;
  }

  /** Consumes one `failNext` of a resize step's injected fault; true when this run must fail. */
  private async consumeResizeFault(step: 'prepResize' | 'migrateDisk' | 'finishResize'): Promise<boolean> {
    return withFileLock(this.faultsFile, async () => {
      const faults = await this.getFaults();
      const left = faults[step]?.failNext ?? 0;
      if (left <= 0) return false;
      await writeJsonFileAtomic(this.faultsFile, { ...faults, [step]: { ...faults[step], failNext: left - 1 } });
      return true;
    });
  }

  // ----- internals ---------------------------------------------------------------------------------

  /** Progress from 0 to 100 over spawnSeconds of real time; injected failures and hangs strike halfway. */
  private async runSpawnClock(
    fault: SpawnFault,
    signal: AbortSignal | undefined,
    onProgress: ((percent: number) => void) | undefined
  ): Promise<void> {
    const totalMs = this.spawnSeconds * 1000;
    const started = performance.now();
    for (;;) {
      throwIfAborted(signal);
      const elapsed = performance.now() - started;
      const fraction = totalMs === 0 ? 1 : Math.min(1, elapsed / totalMs);
      if (fraction >= SPAWN_FAULT_POINT) {
        if (fault.kind === 'hang') await waitForAbort(signal); // never reports progress again
        if (fault.kind === 'fail') {
          throw fault.failure === 'abort'
            ? new ImageUnacceptable(`Image is unacceptable to the hypervisor on ${this.host}: ${fault.reason}`)
            : new DriverError(`Hypervisor error while spawning on ${this.host}: ${fault.reason}`);
        }
      }
      if (fraction >= 1) break;
      onProgress?.(Math.floor(fraction * 100));
      const untilFault = fault.kind === 'none' ? Infinity : SPAWN_FAULT_POINT * totalMs - elapsed;
      const wait = Math.min(SPAWN_PROGRESS_INTERVAL_MS, totalMs - elapsed, untilFault > 0 ? untilFault : Infinity);
      await delay(Math.max(1, wait), signal);
    }
    onProgress?.(100);
  }

  /** Tears down a half-made guest of this spawn run, with its networks and block devices. */
  private async discardHalfMadeGuest(instanceId: string, spawnId: string): Promise<void> {
    await this.mutate((state) => {
      const guest = state.guests[instanceId];
      if (!guest || guest.spawnId !== spawnId || guest.status !== 'spawning') return;
      delete state.guests[instanceId];
      delete state.networks[instanceId];
      delete state.blockDevices[instanceId];
    });
  }

  /** The state with shutdowns that completed by now applied. */
  private async read(): Promise<HostState> {
    const state = await this.load();
    const at = this.now();
    for (const guest of Object.values(state.guests)) settleGuest(guest, at, this.shutdownSeconds);
    return state;
  }

  /** Read-modify-write of guests.json under the file's lock; written back only when something changed. */
  private async mutate<T>(change: (state: HostState, at: number) => T): Promise<T> {
    return withFileLock(this.guestsFile, async () => {
      const state = await this.load();
      const before = JSON.stringify(state);
      const at = this.now();
      for (const guest of Object.values(state.guests)) settleGuest(guest, at, this.shutdownSeconds);
      const result = change(state, at);
      if (JSON.stringify(state) !== before) await writeJsonFileAtomic(this.guestsFile, state);
      return result;
    });
  }

  private async load(): Promise<HostState> {
    const raw = await readJsonFile(this.guestsFile);
    if (raw === undefined) return { version: 1, host: this.host, guests: {}, networks: {}, blockDevices: {} };
    const parsed = HostStateSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`corrupt guest state ${this.guestsFile}: ${z.prettifyError(parsed.error)}`);
    return parsed.data;
  }
}

/** A deterministic port for an instance: OpenStack's fa:16:3e MAC prefix and an address in 10.0.0.0/8. */
export function networkInfoFor(instanceId: string): NetworkInfo {
  const digest = createHash('sha256').update(instanceId).digest();
  const byte = (i: number): number => digest[i] ?? 0;
  const hex = (i: number): string => byte(i).toString(16).padStart(2, '0');
  return {
    network: 'private',
    portId: [
      digest.subarray(4, 8),
      digest.subarray(8, 10),
      digest.subarray(10, 12),
      digest.subarray(12, 14),
      digest.subarray(14, 20),
    ]
      .map((part) => part.toString('hex'))
      .join('-'),
    mac: `fa:16:3e:${hex(0)}:${hex(1)}:${hex(2)}`,
    ip: `10.${byte(1)}.${byte(2)}.${2 + (byte(3) % 252)}`,
  };
}

function checkDiskFits(flavor: GuestFlavor, image: GuestImage): void {
  // NOTE(nova): a root disk of 0 is sized to the image, so only a non-zero disk can be too small.
  if (flavor.diskGb > 0 && image.sizeGb > flavor.diskGb)
    throw new FlavorDiskSmallerThanImage(flavor.diskGb, image.sizeGb);
}

function requireGuest(state: HostState, instanceId: string): Guest {
  const guest = state.guests[instanceId];
  if (!guest) throw new InstanceNotFound(instanceId);
  return guest;
}

function powerOnGuest(guest: Guest): void {
  guest.powerState = PowerState.Running;
  guest.shutdownRequestedAt = null;
}

/** Applies a cooperative shutdown that has completed by `at`. */
function settleGuest(guest: Guest, at: number, shutdownSeconds: number): void {
  if (guest.powerState !== PowerState.Running || guest.shutdownRequestedAt === null) return;
  if (at >= guest.shutdownRequestedAt + shutdownSeconds * 1000) {
    guest.powerState = PowerState.Shutdown;
    guest.shutdownRequestedAt = null;
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** Resolves after `ms`; rejects with the signal's reason (e.g. the activity's CancelledFailure) on abort. */
function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Never resolves; rejects with the signal's reason once it is aborted. */
function waitForAbort(signal: AbortSignal | undefined): Promise<never> {
  return new Promise<never>((_resolve, reject) => {
    if (!signal) return;
    if (signal.aborted) return reject(abortReason(signal));
    signal.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
  });
}
