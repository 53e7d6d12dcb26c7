/** Instance states, with Nova's lower-case names. Const objects plus derived unions, not TS enums. */

export const VmState = {
  Building: 'building',
  Active: 'active',
  Stopped: 'stopped',
  Resized: 'resized',
  /** Paused in memory (Nova's PAUSED): its guest frozen, still on its host. */
  Paused: 'paused',
  /** Suspended to disk (Nova's SUSPENDED): its memory saved on its host, no process, its resources kept. */
  Suspended: 'suspended',
  /** Shelved (Nova's SHELVED): its disk saved as an image, its guest off, still on its host with its claim. */
  Shelved: 'shelved',
  /** Shelved and offloaded (Nova's SHELVED_OFFLOADED): only its image is left; no host, no guest, no claim. */
  ShelvedOffloaded: 'shelved_offloaded',
  Error: 'error',
  Deleted: 'deleted',
} as const;
export type VmState = (typeof VmState)[keyof typeof VmState];

export const TaskState = {
  Scheduling: 'scheduling',
  Networking: 'networking',
  BlockDeviceMapping: 'block_device_mapping',
  Spawning: 'spawning',
  PoweringOff: 'powering-off',
  PoweringOn: 'powering-on',
  Rebuilding: 'rebuilding',
  RebuildBlockDeviceMapping: 'rebuild_block_device_mapping',
  RebuildSpawning: 'rebuild_spawning',
  ResizePrep: 'resize_prep',
  ResizeMigrating: 'resize_migrating',
  ResizeMigrated: 'resize_migrated',
  ResizeFinish: 'resize_finish',
  ResizeReverting: 'resize_reverting',
  ResizeConfirming: 'resize_confirming',
  Deleting: 'deleting',
  /** A live migration under way (Nova's task_states.MIGRATING). */
  Migrating: 'migrating',
  /** A soft reboot requested, then under way on the host (Nova's REBOOTING, REBOOT_STARTED). */
  Rebooting: 'rebooting',
  RebootStarted: 'reboot_started',
  /** A hard reboot requested, then under way (Nova's REBOOTING_HARD, REBOOT_STARTED_HARD). */
  RebootingHard: 'rebooting_hard',
  RebootStartedHard: 'reboot_started_hard',
  /** Pause, unpause, suspend and resume under way (Nova's PAUSING, UNPAUSING, SUSPENDING, RESUMING). */
  Pausing: 'pausing',
  Unpausing: 'unpausing',
  Suspending: 'suspending',
  Resuming: 'resuming',
  /** A snapshot under way (Nova's IMAGE_SNAPSHOT, IMAGE_PENDING_UPLOAD, IMAGE_UPLOADING). */
  ImageSnapshot: 'image_snapshot',
  ImagePendingUpload: 'image_pending_upload',
  ImageUploading: 'image_uploading',
  /** A shelve under way (Nova's SHELVING, SHELVING_IMAGE_PENDING_UPLOAD, SHELVING_IMAGE_UPLOADING). */
  Shelving: 'shelving',
  ShelvingImagePendingUpload: 'shelving_image_pending_upload',
  ShelvingImageUploading: 'shelving_image_uploading',
  /** A shelve offload under way (Nova's SHELVING_OFFLOADING). */
  ShelvingOffloading: 'shelving_offloading',
  /** An unshelve under way (Nova's UNSHELVING; then the build's scheduling and spawning). */
  Unshelving: 'unshelving',
} as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

export const PowerState = {
  NoState: 'nostate',
  Running: 'running',
  Shutdown: 'shutdown',
  Crashed: 'crashed',
  /** Suspended in memory: a live migration's switch-over (or a paused guest), Nova's power_state.PAUSED. */
  Paused: 'paused',
  /**
   * Its memory saved to disk and its process gone (Nova's power_state.SUSPENDED, 7).
   * NOTE(nova): libvirt reports a managed-saved domain as shut off, so Nova on libvirt records a
   * suspended instance's power state as shutdown (4); here both drivers report `suspended`, so the
   * record says what the host holds (saved memory, not a powered-off guest).
   */
  Suspended: 'suspended',
} as const;
export type PowerState = (typeof PowerState)[keyof typeof PowerState];

/** The instance record as the conductor stores it and every workflow returns it. */
export interface InstanceRecord {
  instanceId: string;
  name: string;
  vmState: VmState;
  taskState: TaskState | null;
  /** The request (workflow id) holding the task state: the operation lock's owner. */
  taskOwner: string | null;
  powerState: PowerState;
  host: string | null;
  availabilityZone: string | null;
  flavor: string;
  image: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  serverGroup: string | null;
  createdAt: string;
  updatedAt: string;
}

/** The fields an update writes; fields left undefined are not touched. Clearing the task state releases its owner. */
export type InstancePatch = Partial<Omit<InstanceRecord, 'instanceId' | 'createdAt' | 'updatedAt'>>;
