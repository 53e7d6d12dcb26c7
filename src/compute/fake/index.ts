/**
 * A fake hypervisor for one compute host: a VirtDriver (../driver.ts) that holds no database credentials.
 * It knows its host name and two files under `<stateDir>/<host>/`:
 *
 * - `guests.json`: the guests, their networks and block devices (./guest-store.ts).
 * - `faults.json`: faults injected by a user or a test (../faults.ts, ./fault-store.ts).
 *
 * The steps live by concern: build, power, destroy and rebuild in ./build.ts, resize and migration in
 * ./migration.ts, the spawn and transfer timing in ./spawn-clock.ts.
 */
import path from 'node:path';

import type { PowerState } from '../../domain/instance';
import { HOST_NAME_PATTERN } from '../../shared/task-queues';
import type {
  BlockDeviceInfo,
  CheckLiveMigrationDestination,
  FinishMigrationRequest,
  Guest,
  GuestFlavor,
  GuestImage,
  HostCpu,
  LiveMigrationOptions,
  LiveMigrationRequest,
  LiveMigrationResult,
  MigrateDiskOptions,
  MigrateDiskRequest,
  MigrateDiskResult,
  NetworkInfo,
  PrepareResizeRequest,
  PreLiveMigrationRequest,
  RebuildPreparation,
  ReceiveOptions,
  SpawnOptions,
  SpawnRequest,
  SpawnResult,
  VirtDriver,
} from '../driver';
import type { Faults } from '../faults';
import * as build from './build';
import type { FakeHost } from './build';
import { FaultStore } from './fault-store';
import { GuestStore } from './guest-store';
import * as live from './live-migration';
import type { LiveJobs } from './live-migration';
import { newLiveJobs } from './live-migration';
import * as migration from './migration';

export { networkInfoFor } from './guest-store';
export { SPAWN_FAULT_POINT, SPAWN_PROGRESS_INTERVAL_MS } from './spawn-clock';

/** Seconds a fake spawn (and a disk transfer) takes, unless told. */
export const DEFAULT_SPAWN_SECONDS = 3;
/** Seconds a cooperative fake guest takes to power off after an ACPI request, unless told. */
export const DEFAULT_SHUTDOWN_SECONDS = 2;

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
}

export class FakeDriver implements VirtDriver {
  readonly host: string;
  readonly spawnSeconds: number;
  readonly shutdownSeconds: number;
  /** `<stateDir>/<host>/guests.json` */
  readonly guestsFile: string;
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
    this.guestsFile = path.join(options.stateDir, options.host, 'guests.json');
    this.faultsFile = path.join(options.stateDir, options.host, 'faults.json');
    this.h = {
      host: this.host,
      spawnSeconds,
      shutdownSeconds,
      guests: new GuestStore(this.host, this.guestsFile, shutdownSeconds, options.now ?? Date.now),
      faults: new FaultStore(this.host, this.faultsFile, options.rng ?? Math.random),
      cpu: options.cpu ?? { architecture: 'x86_64', traits: [] },
      live: newLiveJobs(),
    };
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

  allocateNetworks(instanceId: string): Promise<NetworkInfo> {
    return build.allocateNetworks(this.h, instanceId);
  }

  prepareBlockDevices(instanceId: string, flavor: GuestFlavor, image: GuestImage): Promise<BlockDeviceInfo> {
    return build.prepareBlockDevices(this.h, instanceId, flavor, image);
  }

  spawn(request: SpawnRequest, options?: SpawnOptions): Promise<SpawnResult> {
    return build.spawn(this.h, request, options);
  }

  destroy(instanceId: string): Promise<boolean> {
    return build.destroy(this.h, instanceId);
  }

  requestShutdown(instanceId: string): Promise<PowerState> {
    return build.requestShutdown(this.h, instanceId);
  }

  powerOff(instanceId: string): Promise<PowerState> {
    return build.powerOff(this.h, instanceId);
  }

  powerOn(instanceId: string): Promise<PowerState> {
    return build.powerOn(this.h, instanceId);
  }

  getPowerState(instanceId: string): Promise<PowerState> {
    return build.getPowerState(this.h, instanceId);
  }

  prepareRebuild(instanceId: string, flavor: GuestFlavor, image: GuestImage): Promise<RebuildPreparation> {
    return build.prepareRebuild(this.h, instanceId, flavor, image);
  }

  // ----- reads ---------------------------------------------------------------------------------------

  /** The guest, or undefined. */
  async getGuest(instanceId: string): Promise<Guest | undefined> {
    return (await this.h.guests.read()).guests[instanceId];
  }

  /** Every guest on this host (including half-made ones), sorted by instance id. */
  async listGuests(): Promise<Guest[]> {
    const state = await this.h.guests.read();
    return Object.values(state.guests).sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  /** The guest a resize moved aside on this host (until confirm or revert), or undefined. */
  async getResizeAsideGuest(instanceId: string): Promise<Guest | undefined> {
    return (await this.h.guests.read()).guests[migration.asideKey(instanceId)];
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

  confirmMigration(instanceId: string): Promise<boolean> {
    return migration.confirmMigration(this.h, instanceId);
  }

  destroyMigrationTarget(instanceId: string, migrationId: string): Promise<boolean> {
    return migration.destroyMigrationTarget(this.h, instanceId, migrationId);
  }

  finishRevertMigration(instanceId: string, migrationId: string, powerOn: boolean): Promise<PowerState> {
    return migration.finishRevertMigration(this.h, instanceId, migrationId, powerOn);
  }

  // ----- live migration (./live-migration.ts) ------------------------------------------------------------

  hostCpu(): HostCpu {
    return { architecture: this.h.cpu.architecture, traits: [...this.h.cpu.traits] };
  }

  checkCanLiveMigrateSource(instanceId: string): Promise<HostCpu> {
    return live.checkCanLiveMigrateSource(this.h, instanceId);
  }

  checkCanLiveMigrateDestination(request: CheckLiveMigrationDestination): Promise<void> {
    return live.checkCanLiveMigrateDestination(this.h, request);
  }

  preLiveMigration(request: PreLiveMigrationRequest): Promise<void> {
    return live.preLiveMigration(this.h, request);
  }

  receiveLiveMigration(instanceId: string, migrationId: string, options: ReceiveOptions): Promise<never> {
    return live.receiveLiveMigration(this.h, instanceId, migrationId, options);
  }

  liveMigration(request: LiveMigrationRequest, options: LiveMigrationOptions): Promise<LiveMigrationResult> {
    return live.liveMigration(this.h, request, options);
  }

  forceCompleteLiveMigration(instanceId: string): Promise<boolean> {
    return live.forceCompleteLiveMigration(this.h, instanceId);
  }

  postLiveMigrationAtDestination(instanceId: string, migrationId: string): Promise<PowerState> {
    return live.postLiveMigrationAtDestination(this.h, instanceId, migrationId);
  }

  postLiveMigration(instanceId: string, migrationId: string): Promise<boolean> {
    return live.postLiveMigration(this.h, instanceId, migrationId);
  }

  rollbackLiveMigrationAtDestination(instanceId: string, migrationId: string): Promise<boolean> {
    return live.rollbackLiveMigrationAtDestination(this.h, instanceId, migrationId);
  }

  rollbackLiveMigration(instanceId: string): Promise<PowerState> {
    return live.rollbackLiveMigration(this.h, instanceId);
  }
}
