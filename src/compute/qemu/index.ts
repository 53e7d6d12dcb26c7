/**
 * A real hypervisor for one compute host: a VirtDriver (../driver.ts) whose guests are QEMU processes,
 * driven over QMP, with Nova's libvirt driver as the reference (no libvirt: it refuses same-machine
 * migrations, and its Node bindings have no migration API). Each guest is a detached QEMU in its own
 * session that outlives the compute worker; a new driver on the same data directory re-adopts it
 * (`adoptGuests`, or lazily on first use).
 *
 * The steps live by concern: ./build.ts (spawn, power, destroy, rebuild), ./pause.ts (pause, unpause,
 * suspend, resume), ./resize.ts (resize and cold migration), ./live.ts (live migration), ./adopt.ts (re-adoption); ./guest.ts is what they share,
 * ./process.ts the processes, ./qmp.ts the QMP client, ./layout.ts the files, ./limits.ts how many heavy
 * steps run at once, ./accel.ts TCG or KVM.
 */
import path from 'node:path';

import type { PowerState } from '../../domain/instance';
import { Slots } from '../../shared/slots';
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
import type { Accel } from './accel';
import { detectAccel } from './accel';
import type { AdoptionReport } from './adopt';
import { adoptGuests } from './adopt';
import * as build from './build';
import { Monitors, requireRecord } from './guest';
import type { GuestRecord } from './layout';
import { defaultRuntimeDir, Layout } from './layout';
import { HeavyStepLimits, MachineSlots } from './limits';
import * as live from './live';
import * as checks from './live-checks';
import type { LiveHost } from './live';
import { tailLines } from './process';
import * as pausing from './pause';
import * as resize from './resize';
import * as snapshots from './snapshot';

export type { AdoptionReport, AdoptedGuest } from './adopt';
export { QmpClient, QmpError, QmpUnavailable } from './qmp';

const BUILT = path.extname(__filename) === '.js';
/** The repository root, from src/compute/qemu/ or dist/src/compute/qemu/. */
const PROJECT_ROOT = path.resolve(__dirname, '..', '..', '..', ...(BUILT ? ['..'] : []));

/** Where scripts/build-guest-images.sh puts the images unless GUEST_IMAGE_DIR says. */
export function defaultImageDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.GUEST_IMAGE_DIR ?? path.join(PROJECT_ROOT, '.tools', 'guest-images');
}

function envNumber(name: string, min = 128): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min)
    throw new Error(`${name} must be an integer of at least ${min}, not '${raw}'`);
  return value;
}

function kibibytes(kb: number | undefined): number | undefined {
  return kb === undefined ? undefined : kb * 1024;
}

function mebibytes(mb: number | undefined): number | undefined {
  return mb === undefined ? undefined : mb * 1024 * 1024;
}

export interface QemuDriverOptions {
  host: string;
  /** `$DATA_DIR`: instances live in `<dataDir>/instances/`, shared by every host. */
  dataDir: string;
  /** The guest images (vmlinuz, initrd.gz, <image>.qcow2). Default defaultImageDir(). */
  imageDir?: string;
  /** QMP sockets; must be short. Default $QEMU_RUNTIME_DIR or /tmp/cq-<uid>. */
  runtimeDir?: string;
  /** Default: detected (TCG unless hardware KVM; see ./accel.ts). */
  accel?: Accel;
  /** A guest's memory is its flavor's, at least 128 MiB and at most this. Default $QEMU_MEMORY_CAP_MB, else 256. */
  memoryCapMb?: number;
  /** A guest's vCPUs are its flavor's, at most this. Default 2. */
  vcpuCap?: number;
  /** How long a guest may take to its boot line. Default 90 s. */
  bootTimeoutMs?: number;
  /** Boots and migrations at once on this host. Default 2. */
  maxHeavyStepsPerHost?: number;
  /** Boots and migrations at once on this machine, all hosts and data dirs together. Default 2. */
  maxHeavyStepsPerMachine?: number;
  /** The CPU the host offers. Default x86_64 with no feature traits (one `-cpu qemu64` everywhere). */
  cpu?: HostCpu;
  /** Nova's live_migration_permit_post_copy: force-complete as post-copy. Default true. */
  permitPostCopy?: boolean;
  /** QEMU's migration max-bandwidth in bytes/s. Default $QEMU_MAX_BANDWIDTH_MB (MiB/s), else no cap (libvirt's). */
  maxBandwidthBytes?: number;
  /**
   * A resize's or cold migration's disk copy, bytes/s. Default $QEMU_DISK_COPY_KB (KiB/s), else full
   * speed. A test knob: the fault tests slow the copy so a kill lands mid-transfer.
   */
  diskCopyBytesPerSecond?: number;
}

export class QemuDriver implements VirtDriver {
  readonly host: string;
  readonly accel: Accel;
  readonly layout: Layout;
  readonly capabilities: DriverCapabilities;
  /** What the last re-adoption (initHost) found. */
  lastAdoption: AdoptionReport | undefined;
  private readonly h: LiveHost;

  constructor(options: QemuDriverOptions) {
    if (!HOST_NAME_PATTERN.test(options.host)) throw new Error(`invalid compute host name '${options.host}'`);
    const runtimeDir = options.runtimeDir ?? defaultRuntimeDir();
    this.host = options.host;
    this.accel = options.accel ?? detectAccel().accel;
    this.layout = new Layout(options.dataDir, options.host, options.imageDir ?? defaultImageDir(), runtimeDir);
    this.h = {
      host: options.host,
      layout: this.layout,
      accel: this.accel,
      limits: new HeavyStepLimits(
        new Slots(options.maxHeavyStepsPerHost ?? 2),
        new MachineSlots(path.join(runtimeDir, 'slots'), options.maxHeavyStepsPerMachine ?? 2)
      ),
      memoryCapMb: options.memoryCapMb ?? envNumber('QEMU_MEMORY_CAP_MB') ?? 256,
      vcpuCap: options.vcpuCap ?? 2,
      bootTimeoutMs: options.bootTimeoutMs ?? 90_000,
      monitors: new Monitors(),
      cpu: options.cpu ?? { architecture: 'x86_64', traits: [] },
      permitPostCopy: options.permitPostCopy ?? true,
      maxBandwidthBytes: options.maxBandwidthBytes ?? mebibytes(envNumber('QEMU_MAX_BANDWIDTH_MB', 1)),
      diskCopyBytesPerSecond: options.diskCopyBytesPerSecond ?? kibibytes(envNumber('QEMU_DISK_COPY_KB', 1)),
      migrating: new Set(),
      copying: new Set(),
      forced: new Map(),
    };
    this.capabilities = Object.freeze({
      supportsLiveMigration: true,
      supportsPostCopy: this.h.permitPostCopy,
      // NOTE(nova): no block migration yet (NBD + drive-mirror): the instance path is shared by every host.
      supportsBlockMigration: false,
      sharedInstancePath: true,
      supportsMigrateToSameHost: true,
    });
  }

  /**
   * Nova's init_host: every guest record of this host checked against its process (a guest whose QEMU is
   * gone reads off; this host's QEMUs that no record names are killed). The report is kept for the worker
   * (`lastAdoption`). Idempotent.
   */
  async initHost(): Promise<void> {
    this.lastAdoption = await adoptGuests(this.h);
  }

  /** Re-adoption, with its report: what initHost does. */
  async adoptGuests(): Promise<AdoptionReport> {
    this.lastAdoption = await adoptGuests(this.h);
    return this.lastAdoption;
  }

  /** Closes the QMP connections (the guests run on). */
  close(): Promise<void> {
    return this.h.monitors.closeAll();
  }

  /** The guest's serial console, its last `lines` lines, each ending in a newline (Nova's get_console_output). */
  async getConsoleOutput({ instanceId, lines }: ConsoleOutputRequest): Promise<string> {
    await requireRecord(this.h, instanceId);
    const text = await tailLines(this.layout.console(this.layout.instanceDir(instanceId)), lines);
    return text.map((line) => `${line}\n`).join('');
  }

  /** The record of the guest here (pid, sockets, argv), or undefined: for tests and operators. */
  guestRecord(instanceId: string): Promise<GuestRecord | undefined> {
    return this.layout.readRecord(this.layout.instanceDir(instanceId));
  }

  // ----- build, power, rebuild (./build.ts) ---------------------------------------------------------

  allocateNetworks({ instanceId }: InstanceRequest): Promise<NetworkInfo> {
    return Promise.resolve(build.allocateNetworks(instanceId));
  }

  prepareBlockDevices({ flavor, image }: BlockDevicesRequest): Promise<BlockDeviceInfo> {
    return Promise.resolve().then(() => build.prepareBlockDevices(flavor, image));
  }

  spawn(request: SpawnRequest, options?: SpawnOptions): Promise<SpawnResult> {
    return build.spawn(this.h, request, options);
  }

  destroy({ instanceId }: InstanceRequest): Promise<boolean> {
    return build.destroy(this.h, instanceId);
  }

  requestShutdown({ instanceId }: InstanceRequest): Promise<PowerState> {
    return build.requestShutdown(this.h, instanceId);
  }

  powerOff({ instanceId }: InstanceRequest): Promise<PowerState> {
    return build.powerOff(this.h, instanceId);
  }

  powerOn({ instanceId }: InstanceRequest): Promise<PowerState> {
    return build.powerOn(this.h, instanceId);
  }

  getPowerState({ instanceId }: InstanceRequest): Promise<PowerState> {
    return build.getPowerState(this.h, instanceId);
  }

  getPowerStates(): Promise<Record<string, PowerState>> {
    return build.getPowerStates(this.h);
  }

  // ----- pause, unpause, suspend, resume (./pause.ts) -----------------------------------------------

  pause({ instanceId }: InstanceRequest): Promise<PowerState> {
    return pausing.pause(this.h, instanceId);
  }

  unpause({ instanceId }: InstanceRequest): Promise<PowerState> {
    return pausing.unpause(this.h, instanceId);
  }

  suspend({ instanceId }: InstanceRequest): Promise<PowerState> {
    return pausing.suspend(this.h, instanceId);
  }

  resume({ instanceId }: InstanceRequest): Promise<PowerState> {
    return pausing.resume(this.h, instanceId);
  }

  // ----- snapshot (./snapshot.ts) -------------------------------------------------------------------

  snapshot(request: SnapshotRequest): Promise<SnapshotResult> {
    return snapshots.snapshot(this.h, request);
  }

  deleteImage(request: ImageRequest): Promise<boolean> {
    return snapshots.deleteImage(this.h, request);
  }

  listGuests(): Promise<Guest[]> {
    return build.listGuests(this.h);
  }

  prepareRebuild({ instanceId, flavor, image }: BlockDevicesRequest): Promise<RebuildPreparation> {
    return build.prepareRebuild(this.h, instanceId, flavor, image);
  }

  // ----- resize and cold migration (./resize.ts) ----------------------------------------------------

  prepareResize(request: PrepareResizeRequest): Promise<void> {
    return resize.prepareResize(this.h, request);
  }

  migrateDiskAndPowerOff(request: MigrateDiskRequest, options: MigrateDiskOptions): Promise<MigrateDiskResult> {
    return resize.migrateDiskAndPowerOff(this.h, request, options);
  }

  finishMigration(request: FinishMigrationRequest): Promise<SpawnResult> {
    return resize.finishMigration(this.h, request);
  }

  confirmMigration({ instanceId }: InstanceRequest): Promise<boolean> {
    return resize.confirmMigration(this.h, instanceId);
  }

  destroyMigrationTarget({ instanceId, migrationId }: MigrationRequest): Promise<boolean> {
    return resize.destroyMigrationTarget(this.h, instanceId, migrationId);
  }

  finishRevertMigration({ instanceId, migrationId, powerOn }: FinishRevertMigrationRequest): Promise<PowerState> {
    return resize.finishRevertMigration(this.h, instanceId, migrationId, powerOn);
  }

  // ----- live migration (./live.ts) -----------------------------------------------------------------

  hostCpu(): Promise<HostCpu> {
    return Promise.resolve({ architecture: this.h.cpu.architecture, traits: [...this.h.cpu.traits] });
  }

  checkCanLiveMigrateSource({ instanceId }: InstanceRequest): Promise<HostCpu> {
    return checks.checkCanLiveMigrateSource(this.h, instanceId);
  }

  checkCanLiveMigrateDestination(request: CheckLiveMigrationDestination): Promise<void> {
    return checks.checkCanLiveMigrateDestination(this.h, request);
  }

  preLiveMigration(request: PreLiveMigrationRequest): Promise<void> {
    return live.preLiveMigration(this.h, request);
  }

  receiveLiveMigration({ instanceId, migrationId }: MigrationRequest, options: ReceiveOptions): Promise<never> {
    return live.receiveLiveMigration(this.h, instanceId, migrationId, options);
  }

  liveMigration(request: LiveMigrationRequest, options: LiveMigrationOptions): Promise<LiveMigrationResult> {
    return live.liveMigration(this.h, request, options);
  }

  forceCompleteLiveMigration({ instanceId }: InstanceRequest): Promise<boolean> {
    return live.forceCompleteLiveMigration(this.h, instanceId);
  }

  postLiveMigrationAtDestination({ instanceId, migrationId }: MigrationRequest): Promise<PowerState> {
    return live.postLiveMigrationAtDestination(this.h, instanceId, migrationId);
  }

  postLiveMigration({ instanceId, migrationId }: MigrationRequest): Promise<boolean> {
    return live.postLiveMigration(this.h, instanceId, migrationId);
  }

  rollbackLiveMigrationAtDestination({ instanceId, migrationId }: MigrationRequest): Promise<boolean> {
    return live.rollbackLiveMigrationAtDestination(this.h, instanceId, migrationId);
  }

  rollbackLiveMigration({ instanceId }: InstanceRequest): Promise<PowerState> {
    return live.rollbackLiveMigration(this.h, instanceId);
  }
}
