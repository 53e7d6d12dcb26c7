/**
 * The virt driver interface of one compute host, shaped like Nova's virt/driver.py ComputeDriver: what
 * the compute activities (src/activities/compute) call, and the types and driver-level errors they see.
 * The fake hypervisor (./fake) is one implementation.
 *
 * Every operation is idempotent, keyed by instance id (and migration id for a move), because Temporal
 * delivers activities at least once. A driver throws driver-level errors (DriverError, ImageUnacceptable,
 * FlavorDiskSmallerThanImage, like libvirt's) or domain errors (HypervisorBusy, InstanceNotFound); the
 * compute activities classify them into reschedule / abort, as Nova's compute manager does.
 */
import { z } from 'zod';

import type { Flavor, Image } from '../domain/catalogue';
import { PowerState } from '../domain/instance';

// ---------------------------------------------------------------------------------------------------
// Driver-level errors (libvirtError and friends). The compute activities map them to domain errors;
// they never cross the wire as they are.

/** An unexpected hypervisor failure (libvirtError). Nova reschedules a spawn on it. */
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
// Guests and what they are made of (persisted by the fake, reported by listGuests).

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
  /**
   * `spawning` while a spawn is under way (a half-made guest); `active` once it completed; `migrating`:
   * the destination's guest of a live migration under way (receiving memory, not yet running).
   */
  status: z.enum(['spawning', 'active', 'migrating']),
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
  /**
   * What the guest was given of its secrets, never the secrets: whether an admin password was set, and
   * the SHA-256 (hex) of its user data. Absent: none given.
   */
  adminPasswordSet: z.boolean().optional(),
  userDataSha256: z.string().optional(),
});
export type Guest = z.infer<typeof GuestSchema>;

// ---------------------------------------------------------------------------------------------------
// Requests and results.

export interface SpawnRequest {
  instanceId: string;
  name: string;
  flavor: GuestFlavor;
  image: GuestImage;
  /** Nova's adminPass, set in the guest; a driver keeps it nowhere. */
  adminPassword?: string;
  /** Nova's user_data (base64), handed to the guest; a driver keeps it nowhere. */
  userData?: string;
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
  /** True: the disks are copied with the memory; false: the hosts must share the instance's storage. */
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
  /** The operator forced the completion (the guest was paused to converge). */
  forced: boolean;
  /** False when a retried call found the switch-over done already. */
  switched: boolean;
}

// ---------------------------------------------------------------------------------------------------

/** The hypervisor of one compute host (Nova's ComputeDriver), as the compute activities use it. */
export interface VirtDriver {
  /** The compute host this driver runs guests on. */
  readonly host: string;

  // ----- build -----
  /** Plugs a port for the instance; the same port on a retry (and on every host). */
  allocateNetworks(instanceId: string): Promise<NetworkInfo>;
  /** Prepares the root disk from the image; FlavorDiskSmallerThanImage when the image does not fit. */
  prepareBlockDevices(instanceId: string, flavor: GuestFlavor, image: GuestImage): Promise<BlockDeviceInfo>;
  /** Creates and boots the guest; tears the half-made guest down on failure or abort. Never makes two. */
  spawn(request: SpawnRequest, options?: SpawnOptions): Promise<SpawnResult>;
  /** Removes the guest, its networks and block devices; `false` when there was no guest. */
  destroy(instanceId: string): Promise<boolean>;

  // ----- power -----
  /** Sends an ACPI shutdown request and returns the power state right after, without waiting. */
  requestShutdown(instanceId: string): Promise<PowerState>;
  /** Forced, immediate power-off (virDomainDestroy). */
  powerOff(instanceId: string): Promise<PowerState>;
  /** Boots a stopped guest; a running guest stays running. */
  powerOn(instanceId: string): Promise<PowerState>;
  /** The guest's power state now (get_info); InstanceNotFound when the host has no such guest. */
  getPowerState(instanceId: string): Promise<PowerState>;
  /** Every guest on this host, sorted by instance id. */
  listGuests(): Promise<Guest[]>;

  // ----- rebuild / evacuate -----
  /** Nova's rebuild_block_device_mapping: removes the old guest, keeps or plugs the port, lays out the disk. */
  prepareRebuild(instanceId: string, flavor: GuestFlavor, image: GuestImage): Promise<RebuildPreparation>;

  // ----- resize / cold migration -----
  /** Destination (prep_resize): can this host take the instance? Writes nothing. */
  prepareResize(request: PrepareResizeRequest): Promise<void>;
  /** Source (migrate_disk_and_power_off): clean power-off, disk transfer, guest kept aside. */
  migrateDiskAndPowerOff(request: MigrateDiskRequest, options: MigrateDiskOptions): Promise<MigrateDiskResult>;
  /** Destination (finish_migration): the guest from the transferred disk, with the new flavor. */
  finishMigration(request: FinishMigrationRequest): Promise<SpawnResult>;
  /** Source (confirm_migration): deletes the guest kept aside; `false` when there was none. */
  confirmMigration(instanceId: string): Promise<boolean>;
  /** Destination (revert_resize: destroy): deletes the guest this migration made; `false` when none. */
  destroyMigrationTarget(instanceId: string, migrationId: string): Promise<boolean>;
  /** Source (finish_revert_migration): puts the kept guest back, powered on when asked. */
  finishRevertMigration(instanceId: string, migrationId: string, powerOn: boolean): Promise<PowerState>;

  // ----- live migration -----
  /** The CPU this host offers. */
  hostCpu(): HostCpu;
  /** Source (check_can_live_migrate_source): the guest is here and can move. Writes nothing. */
  checkCanLiveMigrateSource(instanceId: string): Promise<HostCpu>;
  /** Destination (check_can_live_migrate_destination): CPU, storage, no guest of it here. Writes nothing. */
  checkCanLiveMigrateDestination(request: CheckLiveMigrationDestination): Promise<void>;
  /** Destination (pre_live_migration): the port plugged and an empty guest ready to receive memory. */
  preLiveMigration(request: PreLiveMigrationRequest): Promise<void>;
  /** Source (live_migration): copies memory in rounds, then pauses the guest for the switch-over. */
  liveMigration(request: LiveMigrationRequest, options: LiveMigrationOptions): Promise<LiveMigrationResult>;
  /**
   * Destination, while the source copies: the hypervisor receiving the memory; reports progress until
   * aborted (the copy is over). Its silence is how a destination that died mid-copy shows.
   */
  receiveLiveMigration(instanceId: string, migrationId: string, options: ReceiveOptions): Promise<never>;
  /** Source (live_migration_force_complete): pauses the guest so the copy converges. False: no copy running. */
  forceCompleteLiveMigration(instanceId: string): Promise<boolean>;
  /** Destination (post_live_migration_at_destination): the received guest runs. */
  postLiveMigrationAtDestination(instanceId: string, migrationId: string): Promise<PowerState>;
  /** Source (post_live_migration): the source guest, its port and disks removed. False: none was left. */
  postLiveMigration(instanceId: string, migrationId: string): Promise<boolean>;
  /** Destination (rollback_live_migration_at_destination): the half-received guest removed. */
  rollbackLiveMigrationAtDestination(instanceId: string, migrationId: string): Promise<boolean>;
  /** Source (_rollback_live_migration): the guest resumed, running as before. */
  rollbackLiveMigration(instanceId: string): Promise<PowerState>;
}
