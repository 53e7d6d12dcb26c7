/**
 * What the driver's methods take and return (src/compute/driver.ts re-exports these). Every method takes
 * one request object of plain data, plus, for a long step, an options object with its abort signal and
 * progress callback.
 */
import type { BlockDeviceInfo, Guest, GuestFlavor, GuestImage, NetworkInfo } from './guest';

// ----- references -----

/** One instance's guest on this host. */
export interface InstanceRequest {
  instanceId: string;
}

/** A snapshot of an instance's disk into a new image (Nova's driver.snapshot). */
export interface SnapshotRequest {
  instanceId: string;
  /** The new image's name: its bytes go to the image store under it. */
  imageName: string;
}

/** What a snapshot wrote: the image's size. */
export interface SnapshotResult {
  imageName: string;
  sizeGb: number;
}

/** One image of the image store. */
export interface ImageRequest {
  imageName: string;
}

/** One instance's guest of one move (resize, cold or live migration) on this host. */
export interface MigrationRequest {
  instanceId: string;
  migrationId: string;
}

// ----- build, rebuild -----

/** The flavor and image a root disk is laid out for (prepareBlockDevices, prepareRebuild). */
export interface BlockDevicesRequest {
  instanceId: string;
  flavor: GuestFlavor;
  image: GuestImage;
}

export interface SpawnRequest {
  instanceId: string;
  name: string;
  flavor: GuestFlavor;
  image: GuestImage;
  /** Nova's adminPass, set in the guest; a driver keeps it nowhere. */
  adminPassword?: string;
  /** Nova's user_data (base64), handed to the guest; a driver keeps it nowhere. */
  userData?: string;
  /**
   * The root disk is a whole copy of the image rather than an overlay on it: an unshelve's, whose shelved
   * image is deleted once the guest runs (Nova's libvirt keeps its own copy in the _base image cache).
   */
  ownDisk?: boolean;
}

export interface SpawnOptions {
  /** Aborting rejects the spawn with the signal's reason and tears down the half-made guest. */
  signal?: AbortSignal;
  /** Called with 0..100 at the start, at least every progress interval, and at the end. */
  onProgress?: (percent: number) => void;
}

export interface SpawnResult {
  guest: Guest;
  /** False when a guest already existed (a retried spawn): nothing new was made. */
  created: boolean;
}

export interface RebuildPreparation {
  removedGuest: boolean;
  network: NetworkInfo;
  blockDevices: BlockDeviceInfo;
}

// ----- console -----

export interface ConsoleOutputRequest {
  instanceId: string;
  /** Only the last N lines (Nova's `length`); all of them when absent. */
  lines?: number;
}

// ----- resize / cold migration -----

export interface PrepareResizeRequest {
  instanceId: string;
  sourceHost: string;
  oldFlavor: GuestFlavor;
  newFlavor: GuestFlavor;
  image: GuestImage;
}

export interface MigrateDiskRequest {
  instanceId: string;
  migrationId: string;
  newFlavor: GuestFlavor;
}

/** The phases of migrate_disk_and_power_off, as its progress reports them. */
export type MigrateDiskPhase = 'powering-off' | 'transferring';

export interface MigrateDiskOptions {
  signal?: AbortSignal;
  /** Seconds a clean shutdown may take before a forced power-off; 0 forces at once. */
  shutdownTimeoutSeconds: number;
  /** Seconds between re-sent ACPI requests while it waits (Nova's shutdown_retry_interval). Default 10. */
  shutdownRetryIntervalSeconds?: number;
  onProgress?: (phase: MigrateDiskPhase, percent: number) => void;
}

export interface MigrateDiskResult {
  /** False when the disk had been transferred already (a retried call). */
  transferred: boolean;
  /** The root disk that was transferred, in GB. */
  diskGb: number;
}

export interface FinishMigrationRequest {
  instanceId: string;
  migrationId: string;
  name: string;
  flavor: GuestFlavor;
  image: GuestImage;
  powerOn: boolean;
}

export interface FinishRevertMigrationRequest {
  instanceId: string;
  migrationId: string;
  /** Power the restored guest on (it was running before the move). */
  powerOn: boolean;
}

// ----- live migration -----

/** The CPU a host offers (what a live migration's destination must match). */
export interface HostCpu {
  architecture: string;
  /** CPU feature traits (HW_CPU_*) the host's CPU has. */
  traits: string[];
}

export interface CheckLiveMigrationDestination {
  instanceId: string;
  sourceHost: string;
  sourceCpu: HostCpu;
  /**
   * True: the disks are copied with the memory; false: the hosts share the instance's storage. Already
   * resolved against the driver's capabilities by the caller (see ./capabilities.ts).
   */
  blockMigration: boolean;
}

export interface PreLiveMigrationRequest {
  instanceId: string;
  migrationId: string;
  name: string;
  flavor: GuestFlavor;
  image: GuestImage;
}

export interface LiveMigrationRequest {
  instanceId: string;
  migrationId: string;
  /** The longest the final switch-over pause may be (Nova's live_migration_downtime), ms. */
  maxDowntimeMs: number;
  /** Rounds over which the allowed downtime is stepped up to maxDowntimeMs (live_migration_downtime_steps). */
  downtimeSteps: number;
  /** Seconds per GiB of guest RAM before the copy is aborted (live_migration_completion_timeout). */
  completionTimeoutSecondsPerGb: number;
}

/** Progress of a live migration's memory copy, reported as it runs. */
export interface LiveMigrationProgress {
  round: number;
  memoryMb: number;
  remainingMb: number;
  copiedMb: number;
  dirtyMbPerSecond: number;
  /** The downtime the copy may switch over at, this round. */
  allowedDowntimeMs: number;
  percent: number;
}

export interface LiveMigrationOptions {
  /** Aborting cancels the copy (Nova's live_migration_abort: QEMU's migrate_cancel); the guest runs on. */
  signal?: AbortSignal;
  onProgress?: (progress: LiveMigrationProgress) => void;
}

export interface ReceiveOptions {
  signal?: AbortSignal;
  onProgress?: () => void;
}

export interface LiveMigrationResult {
  rounds: number;
  copiedMb: number;
  /** The switch-over pause (the guest paused on the source), ms. */
  downtimeMs: number;
  /** The operator forced the completion (post-copy, or the guest paused to converge). */
  forced: boolean;
  /** False when a retried call found the switch-over done already. */
  switched: boolean;
}
