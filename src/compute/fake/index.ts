/**
 * A fake hypervisor for one compute host: a VirtDriver (../driver.ts) that holds no database credentials.
 * It knows its host name and its files under `<stateDir>/<host>/`:
 *
 * - `guests/<instanceId>.json`: one file per instance, its guest, network and block devices
 *   (./guest-store.ts, ./guest-files.ts; a `guests.json` of the layout before is migrated on first open).
 * - `snapshots.json`: the images the host wrote (snapshots).
 * - `faults.json`: faults injected by a user or a test (./faults.ts, ./fault-store.ts).
 *
 * The steps live by concern: build, power, destroy and rebuild in ./build.ts, resize and migration in
 * ./migration.ts, the spawn and transfer timing in ./spawn-clock.ts.
 */
import path from 'node:path';

import type { PowerState } from '../../domain/instance';
import { HOST_NAME_PATTERN } from '../../shared/task-queues';
import type {
  BlockDeviceInfo,
  BlockDevicesRequest,
  CheckLiveMigrationDestination,
  ConsoleOutputRequest,
  DriverCapabilities,
  FinishMigrationRequest,
  FinishRevertMigrationRequest,
  Guest,
  HostCpu,
  ImageRequest,
  InstanceRequest,
  LiveMigrationOptions,
  LiveMigrationRequest,
  LiveMigrationResult,
  MigrateDiskOptions,
  MigrateDiskRequest,
  MigrateDiskResult,
  MigrationRequest,
  NetworkInfo,
  PrepareResizeRequest,
  PreLiveMigrationRequest,
  RebuildPreparation,
  ReceiveOptions,
  SpawnOptions,
  SpawnRequest,
  SpawnResult,
  SnapshotRequest,
  SnapshotResult,
  VirtDriver,
} from '../driver';
import * as build from './build';
import type { FakeHost } from './build';
import { FaultStore } from './fault-store';
import type { Faults } from './faults';
import { GuestStore, guestsDir } from './guest-files';
import type { FakeGuest, Snapshots } from './guest-store';
import { publicGuest } from './guest-store';
import * as live from './live-migration';
import type { LiveJobs } from './live-migration';
import { newLiveJobs } from './live-migration';
import * as migration from './migration';
import * as pausing from './pause';
import * as snapshots from './snapshot';

export type { Faults } from './faults';
export { FaultsSchema } from './faults';
export type { FakeGuest } from './guest-store';
export { networkInfoFor } from './guest-store';
export { SPAWN_FAULT_POINT, SPAWN_PROGRESS_INTERVAL_MS } from './spawn-clock';

/** Seconds a fake spawn (and a disk transfer) takes, unless told. */
export const DEFAULT_SPAWN_SECONDS = 3;
/** Seconds a cooperative fake guest takes to power off after an ACPI request, unless told. */
export const DEFAULT_SHUTDOWN_SECONDS = 2;
/** Images whose fake guests ignore ACPI requests, unless told (as the real `stubborn` guest image does). */
export const DEFAULT_ACPI_IGNORING_IMAGES: readonly string[] = ['stubborn'];
/** Images whose fake guests dirty memory faster than a copy, unless told (as the real `dirty` image does). */
export const DEFAULT_MEMORY_DIRTYING_IMAGES: readonly string[] = ['dirty'];

/**
 * The fake's capabilities: its hosts share no storage (each host has its own state folder), so a live
 * migration is a block migration, which it simulates; force-complete pauses the guest (no post-copy).
 */
export const FAKE_CAPABILITIES: DriverCapabilities = Object.freeze({
  supportsLiveMigration: true,
  supportsPostCopy: false,
  supportsBlockMigration: true,
  sharedInstancePath: false,
  supportsMigrateToSameHost: true,
});

export interface FakeDriverOptions {
  host: string;
  stateDir: string;
  /** Seconds a spawn takes. Default DEFAULT_SPAWN_SECONDS (3); 0 for benchmarks. */
  spawnSeconds?: number;
  /** Seconds a cooperative guest takes to power off after an ACPI request. Default 2. */
  shutdownSeconds?: number;
  /** Clock for timestamps and the lazy shutdown evaluation (epoch ms). Default Date.now. */
  now?: () => number;
  /** Random source for `spawn.failRate`, in [0, 1). Default Math.random. */
  rng?: () => number;
  /** The CPU the host offers (live migration's checks). Default x86_64 with no feature traits. */
  cpu?: HostCpu;
  /** Images whose guests ignore ACPI requests. Default DEFAULT_ACPI_IGNORING_IMAGES. */
  acpiIgnoringImages?: readonly string[];
  /** Images whose guests dirty memory faster than any copy. Default DEFAULT_MEMORY_DIRTYING_IMAGES. */
  memoryDirtyingImages?: readonly string[];
}

export class FakeDriver implements VirtDriver {
  readonly host: string;
  readonly capabilities: DriverCapabilities = FAKE_CAPABILITIES;
  readonly spawnSeconds: number;
  readonly shutdownSeconds: number;
  /** `<stateDir>/<host>/guests/`: one file per instance. */
  readonly guestsDir: string;
  /** `<stateDir>/<host>/faults.json` */
  readonly faultsFile: string;
  private readonly h: FakeHost & { cpu: HostCpu; live: LiveJobs };

  constructor(options: FakeDriverOptions) {
    // The host name becomes a directory and a task queue: hold it to the same rule as the fleet file.
    if (!HOST_NAME_PATTERN.test(options.host)) throw new Error(`invalid compute host name '${options.host}'`);
    const spawnSeconds = options.spawnSeconds ?? DEFAULT_SPAWN_SECONDS;
    const shutdownSeconds = options.shutdownSeconds ?? DEFAULT_SHUTDOWN_SECONDS;
    if (!(spawnSeconds >= 0) || !(shutdownSeconds >= 0))
      throw new Error('spawnSeconds and shutdownSeconds must be >= 0');
    this.host = options.host;
    this.spawnSeconds = spawnSeconds;
    this.shutdownSeconds = shutdownSeconds;
    this.guestsDir = guestsDir(path.join(options.stateDir, options.host));
    this.faultsFile = path.join(options.stateDir, options.host, 'faults.json');
    this.h = {
      host: this.host,
      spawnSeconds,
      shutdownSeconds,
      guests: new GuestStore(
        this.host,
        path.join(options.stateDir, options.host),
        shutdownSeconds,
        options.now ?? Date.now
      ),
      faults: new FaultStore(this.host, this.faultsFile, options.rng ?? Math.random),
      acpiIgnoringImages: new Set(options.acpiIgnoringImages ?? DEFAULT_ACPI_IGNORING_IMAGES),
      cpu: options.cpu ?? { architecture: 'x86_64', traits: [] },
      live: newLiveJobs(options.memoryDirtyingImages ?? DEFAULT_MEMORY_DIRTYING_IMAGES),
    };
  }

  /** Nothing to re-adopt: the guests are records in their files, read at each step. */
  initHost(): Promise<void> {
    return Promise.resolve();
  }

  // ----- faults (the fake's own: a test's or a user's handle) ---------------------------------------

  /** Replaces the injected faults (validated, written atomically: a running worker sees them next op). */
  setFaults(faults: Faults): Promise<void> {
    return this.h.faults.set(faults);
  }

  /** The faults currently injected; `{}` when there is no file or it is malformed (with a warning). */
  getFaults(): Promise<Faults> {
    return this.h.faults.get();
  }

  // ----- build, power, rebuild (./build.ts) ---------------------------------------------------------

  allocateNetworks(request: InstanceRequest): Promise<NetworkInfo> {
    return build.allocateNetworks(this.h, request);
  }

  prepareBlockDevices(request: BlockDevicesRequest): Promise<BlockDeviceInfo> {
    return build.prepareBlockDevices(this.h, request);
  }

  spawn(request: SpawnRequest, options?: SpawnOptions): Promise<SpawnResult> {
    return build.spawn(this.h, request, options);
  }

  destroy(request: InstanceRequest): Promise<boolean> {
    return build.destroy(this.h, request);
  }

  requestShutdown(request: InstanceRequest): Promise<PowerState> {
    return build.requestShutdown(this.h, request);
  }

  powerOff(request: InstanceRequest): Promise<PowerState> {
    return build.powerOff(this.h, request);
  }

  powerOn(request: InstanceRequest): Promise<PowerState> {
    return build.powerOn(this.h, request);
  }

  getPowerState(request: InstanceRequest): Promise<PowerState> {
    return build.getPowerState(this.h, request);
  }

  getPowerStates(): Promise<Record<string, PowerState>> {
    return build.getPowerStates(this.h);
  }

  // ----- pause, unpause, suspend, resume (./pause.ts) -----------------------------------------------

  pause(request: InstanceRequest): Promise<PowerState> {
    return pausing.pause(this.h, request);
  }

  unpause(request: InstanceRequest): Promise<PowerState> {
    return pausing.unpause(this.h, request);
  }

  suspend(request: InstanceRequest): Promise<PowerState> {
    return pausing.suspend(this.h, request);
  }

  resume(request: InstanceRequest): Promise<PowerState> {
    return pausing.resume(this.h, request);
  }

  // ----- snapshot (./snapshot.ts) -------------------------------------------------------------------

  snapshot(request: SnapshotRequest): Promise<SnapshotResult> {
    return snapshots.snapshot(this.h, request);
  }

  deleteImage(request: ImageRequest): Promise<boolean> {
    return snapshots.deleteImage(this.h, request);
  }

  getConsoleOutput(request: ConsoleOutputRequest): Promise<string> {
    return build.getConsoleOutput(this.h, request);
  }

  prepareRebuild(request: BlockDevicesRequest): Promise<RebuildPreparation> {
    return build.prepareRebuild(this.h, request);
  }

  // ----- reads ---------------------------------------------------------------------------------------

  /** The fake's record of the guest (with its bookkeeping), or undefined. */
  async getGuest(instanceId: string): Promise<FakeGuest | undefined> {
    return (await this.h.guests.readInstance(instanceId)).guests[instanceId];
  }

  /** Every guest on this host (including half-made ones), sorted by instance id. */
  async listGuests(): Promise<Guest[]> {
    const state = await this.h.guests.read();
    return Object.values(state.guests)
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId))
      .map(publicGuest);
  }

  /** The fake's records of every guest on this host (with their bookkeeping), sorted by instance id. */
  async listRecords(): Promise<FakeGuest[]> {
    const state = await this.h.guests.read();
    return Object.values(state.guests).sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  /** The guest a resize moved aside on this host (until confirm or revert), or undefined. */
  async getResizeAsideGuest(instanceId: string): Promise<FakeGuest | undefined> {
    return (await this.h.guests.readInstance(instanceId)).guests[migration.asideKey(instanceId)];
  }

  /** The images this host wrote (snapshots), by name. */
  listSnapshots(): Promise<Snapshots> {
    return this.h.guests.readSnapshots();
  }

  // ----- resize and cold migration (./migration.ts) --------------------------------------------------

  prepareResize(request: PrepareResizeRequest): Promise<void> {
    return migration.prepareResize(this.h, request);
  }

  migrateDiskAndPowerOff(request: MigrateDiskRequest, options: MigrateDiskOptions): Promise<MigrateDiskResult> {
    return migration.migrateDiskAndPowerOff(this.h, request, options);
  }

  finishMigration(request: FinishMigrationRequest): Promise<SpawnResult> {
    return migration.finishMigration(this.h, request);
  }

  confirmMigration(request: InstanceRequest): Promise<boolean> {
    return migration.confirmMigration(this.h, request);
  }

  destroyMigrationTarget(request: MigrationRequest): Promise<boolean> {
    return migration.destroyMigrationTarget(this.h, request);
  }

  finishRevertMigration(request: FinishRevertMigrationRequest): Promise<PowerState> {
    return migration.finishRevertMigration(this.h, request);
  }

  // ----- live migration (./live-migration.ts) ------------------------------------------------------------

  hostCpu(): Promise<HostCpu> {
    return Promise.resolve({ architecture: this.h.cpu.architecture, traits: [...this.h.cpu.traits] });
  }

  checkCanLiveMigrateSource(request: InstanceRequest): Promise<HostCpu> {
    return live.checkCanLiveMigrateSource(this.h, request);
  }

  checkCanLiveMigrateDestination(request: CheckLiveMigrationDestination): Promise<void> {
    return live.checkCanLiveMigrateDestination(this.h, request);
  }

  preLiveMigration(request: PreLiveMigrationRequest): Promise<void> {
    return live.preLiveMigration(this.h, request);
  }

  receiveLiveMigration(request: MigrationRequest, options: ReceiveOptions): Promise<never> {
    return live.receiveLiveMigration(this.h, request, options);
  }

  liveMigration(request: LiveMigrationRequest, options: LiveMigrationOptions): Promise<LiveMigrationResult> {
    return live.liveMigration(this.h, request, options);
  }

  forceCompleteLiveMigration(request: InstanceRequest): Promise<boolean> {
    return live.forceCompleteLiveMigration(this.h, request);
  }

  postLiveMigrationAtDestination(request: MigrationRequest): Promise<PowerState> {
    return live.postLiveMigrationAtDestination(this.h, request);
  }

  postLiveMigration(request: MigrationRequest): Promise<boolean> {
    return live.postLiveMigration(this.h, request);
  }

  rollbackLiveMigrationAtDestination(request: MigrationRequest): Promise<boolean> {
    return live.rollbackLiveMigrationAtDestination(this.h, request);
  }

  rollbackLiveMigration(request: InstanceRequest): Promise<PowerState> {
    return live.rollbackLiveMigration(this.h, request);
  }
}
