/**
 * The virt driver interface of one compute host, shaped like Nova's virt/driver.py ComputeDriver: what
 * the compute activities (src/activities/compute) call, and the types and driver-level errors they see.
 * Implementations: the fake hypervisor (./fake: JSON records, fault injection, for scale and fault tests)
 * and QEMU (./qemu: real guests). Nothing here is specific to either; the driver contract suite
 * (test/contract/virt-driver-contract.ts) is what both must pass.
 *
 * Every operation is idempotent, keyed by instance id (and migration id for a move), because Temporal
 * delivers activities at least once. A driver throws driver-level errors (DriverError, ImageUnacceptable,
 * FlavorDiskSmallerThanImage, like libvirt's) or domain errors (HypervisorBusy, InstanceNotFound); the
 * compute activities classify them into reschedule / abort, as Nova's compute manager does.
 */
import type { PowerState } from '../domain/instance';
import type { DriverCapabilities } from './capabilities';
import type { BlockDeviceInfo, Guest, NetworkInfo } from './guest';
import type {
  BlockDevicesRequest,
  CheckLiveMigrationDestination,
  ConsoleOutputRequest,
  FinishMigrationRequest,
  FinishRevertMigrationRequest,
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
  PreLiveMigrationRequest,
  PrepareResizeRequest,
  RebuildPreparation,
  ReceiveOptions,
  SpawnOptions,
  SpawnRequest,
  SpawnResult,
  SnapshotRequest,
  SnapshotResult,
} from './requests';

export * from './capabilities';
export * from './guest';
export * from './requests';

// ---------------------------------------------------------------------------------------------------
// Driver-level errors (libvirtError and friends). The compute activities map them to domain errors;
// they never cross the wire as they are.

/** An unexpected hypervisor failure (libvirtError). Nova reschedules a spawn on it. */
export class DriverError extends Error {
  override readonly name = 'DriverError';
}

/**
 * A move the hypervisor refuses before it touched the guest, leaving the instance as it was (Nova's
 * InstanceFaultRollback around libvirt's ResizeError "Unable to resize disk down.").
 */
export class ResizeRefused extends DriverError {}

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

/**
 * The hypervisor of one compute host (Nova's ComputeDriver), as the compute activities use it. Every
 * method takes one request object (and a long step an options object); every step is idempotent.
 */
export interface VirtDriver {
  /** The compute host this driver runs guests on. */
  readonly host: string;
  /** What this driver can do (Nova's `capabilities`); the compute activities consult it. */
  readonly capabilities: DriverCapabilities;

  /**
   * Called once when the compute worker starts, before it takes any work (Nova's init_host): a driver
   * whose guests outlive the worker re-adopts them here. Idempotent.
   */
  initHost(): Promise<void>;

  // ----- build -----
  /** Plugs a port for the instance; the same port on a retry (and on every host). */
  allocateNetworks(request: InstanceRequest): Promise<NetworkInfo>;
  /** Prepares the root disk from the image; FlavorDiskSmallerThanImage when the image does not fit. */
  prepareBlockDevices(request: BlockDevicesRequest): Promise<BlockDeviceInfo>;
  /** Creates and boots the guest; tears the half-made guest down on failure or abort. Never makes two. */
  spawn(request: SpawnRequest, options?: SpawnOptions): Promise<SpawnResult>;
  /**
   * Removes the guest, its networks and block devices, and a copy a resize moved aside on this host;
   * `false` when there was neither.
   */
  destroy(request: InstanceRequest): Promise<boolean>;

  // ----- power -----
  /** Sends an ACPI shutdown request and returns the power state right after, without waiting. */
  requestShutdown(request: InstanceRequest): Promise<PowerState>;
  /** Forced, immediate power-off (virDomainDestroy). */
  powerOff(request: InstanceRequest): Promise<PowerState>;
  /** Boots a stopped guest from its disk; a running guest stays running. */
  powerOn(request: InstanceRequest): Promise<PowerState>;
  /** Freezes the running guest in memory (Nova's pause); a paused one stays paused. Returns `paused`. */
  pause(request: InstanceRequest): Promise<PowerState>;
  /** Runs the paused guest on (unpause); a running one stays running. Returns `running`. */
  unpause(request: InstanceRequest): Promise<PowerState>;
  /**
   * Saves the guest's memory on this host and ends its process (Nova's suspend, libvirt's managed save);
   * its disks and port stay. A suspended one stays suspended. Returns `suspended`.
   */
  suspend(request: InstanceRequest): Promise<PowerState>;
  /** Restores the suspended guest from its saved memory, running on (no boot); a running one stays running. */
  resume(request: InstanceRequest): Promise<PowerState>;
  /** The guest's power state now (get_info); InstanceNotFound when the host has no such guest. */
  getPowerState(request: InstanceRequest): Promise<PowerState>;
  /** Every guest on this host, sorted by instance id. */
  listGuests(): Promise<Guest[]>;
  /**
   * The power state of every guest this host runs, by instance id, in one call (Nova's get_info over the
   * host, for _sync_power_states). A resize's moved-aside copy is not listed. Read-only.
   */
  getPowerStates(): Promise<Record<string, PowerState>>;
  /**
   * The guest's console log (Nova's get_console_output), its last `lines` lines when given, each ending
   * in a newline; InstanceNotFound when the host has no such guest.
   */
  getConsoleOutput(request: ConsoleOutputRequest): Promise<string>;

  // ----- snapshot (./fake/snapshot.ts, ./qemu/snapshot.ts) -----
  /**
   * Nova's driver.snapshot: the guest's disk copied into a new image in the image store, consistent (a
   * running guest is paused for the copy and runs on after it; an off or paused one stays as it is).
   * Idempotent: an image of that name already written is returned as it is.
   */
  snapshot(request: SnapshotRequest): Promise<SnapshotResult>;
  /** Removes an image's bytes from the image store (a failed snapshot, an unshelved image); false if none. */
  deleteImage(request: ImageRequest): Promise<boolean>;

  // ----- rebuild / evacuate -----
  /** Nova's rebuild_block_device_mapping: removes the old guest, keeps or plugs the port, lays out the disk. */
  prepareRebuild(request: BlockDevicesRequest): Promise<RebuildPreparation>;

  // ----- resize / cold migration -----
  /** Destination (prep_resize): can this host take the instance? Writes nothing. */
  prepareResize(request: PrepareResizeRequest): Promise<void>;
  /** Source (migrate_disk_and_power_off): clean power-off, disk transfer, guest kept aside. */
  migrateDiskAndPowerOff(request: MigrateDiskRequest, options: MigrateDiskOptions): Promise<MigrateDiskResult>;
  /** Destination (finish_migration): the guest from the transferred disk, with the new flavor. */
  finishMigration(request: FinishMigrationRequest): Promise<SpawnResult>;
  /** Source (confirm_migration): deletes the guest kept aside; `false` when there was none. */
  confirmMigration(request: InstanceRequest): Promise<boolean>;
  /** Destination (revert_resize: destroy): deletes the guest this migration made; `false` when none. */
  destroyMigrationTarget(request: MigrationRequest): Promise<boolean>;
  /** Source (finish_revert_migration): puts the kept guest back, powered on when asked. */
  finishRevertMigration(request: FinishRevertMigrationRequest): Promise<PowerState>;

  // ----- live migration -----
  /** The CPU this host offers. */
  hostCpu(): Promise<HostCpu>;
  /** Source (check_can_live_migrate_source): the guest is here and can move. Writes nothing. */
  checkCanLiveMigrateSource(request: InstanceRequest): Promise<HostCpu>;
  /** Destination (check_can_live_migrate_destination): CPU, no guest of it here. Writes nothing. */
  checkCanLiveMigrateDestination(request: CheckLiveMigrationDestination): Promise<void>;
  /** Destination (pre_live_migration): the port plugged and an empty guest ready to receive memory. */
  preLiveMigration(request: PreLiveMigrationRequest): Promise<void>;
  /**
   * Source (live_migration): copies memory in rounds, then switches over (the guest paused on the source,
   * running nowhere else until postLiveMigrationAtDestination). Aborting the signal is Nova's
   * live_migration_abort: the copy is cancelled and the guest runs on here.
   */
  liveMigration(request: LiveMigrationRequest, options: LiveMigrationOptions): Promise<LiveMigrationResult>;
  /**
   * Destination, while the source copies: watches the incoming guest (the fake simulates it; QEMU watches
   * its `-incoming` process and its MIGRATION events) and reports progress while it is alive, until
   * aborted (the copy is over). Its silence is how a destination that died mid-copy shows. It moves no
   * memory itself: the destination stays passive, the source's liveMigration does the copy.
   */
  receiveLiveMigration(request: MigrationRequest, options: ReceiveOptions): Promise<never>;
  /**
   * Source (live_migration_force_complete): post-copy when `capabilities.supportsPostCopy`, else pauses
   * the guest so the copy converges. Asked once the instance's liveMigration call has begun here but
   * before its copy runs, it is applied when the copy begins (Nova queues it for the migration's
   * monitor). False: no live migration of the instance is under way here.
   */
  forceCompleteLiveMigration(request: InstanceRequest): Promise<boolean>;
  /** Destination (post_live_migration_at_destination): the received guest runs. */
  postLiveMigrationAtDestination(request: MigrationRequest): Promise<PowerState>;
  /** Source (post_live_migration): the source guest, its port and disks removed. False: none was left. */
  postLiveMigration(request: MigrationRequest): Promise<boolean>;
  /** Destination (rollback_live_migration_at_destination): the half-received guest removed. */
  rollbackLiveMigrationAtDestination(request: MigrationRequest): Promise<boolean>;
  /** Source (_rollback_live_migration): the guest resumed, running as before. */
  rollbackLiveMigration(request: InstanceRequest): Promise<PowerState>;
}
