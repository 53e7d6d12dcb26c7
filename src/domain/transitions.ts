/**
 * Which operation may start from which state: one table (Nova's @check_instance_state decorators on the
 * compute API, plus the task state each operation holds while it runs). Workflows take the lock with
 * the row of their operation; the evacuation's takeover rule reads REBUILD_TASK_STATES.
 */
import type { TaskState as TaskStateType, VmState as VmStateType } from './instance';
import { TaskState, VmState } from './instance';

export interface Transition {
  /** The instance action's name in the instance's history. */
  action: string;
  /** The vm states the operation may start from. */
  from: readonly VmStateType[];
  /** The task state the operation holds first (the operation lock). */
  taskState: TaskStateType;
  /**
   * Task states the operation may take over; none means the task state must be free (null). Evacuate
   * takes over an instance another operation holds (e.g. a stop stuck on the dead host), never a rebuild;
   * delete takes over any, but only from the request it stopped first (the owner it names).
   */
  takesOver?: 'any-but-rebuild' | 'any';
}

/** The rows, by operation. */
export const TRANSITIONS = {
  stop: { action: 'stop', from: [VmState.Active, VmState.Error], taskState: TaskState.PoweringOff },
  start: { action: 'start', from: [VmState.Stopped], taskState: TaskState.PoweringOn },
  rebuild: {
    action: 'rebuild',
    from: [VmState.Active, VmState.Stopped, VmState.Error],
    taskState: TaskState.Rebuilding,
  },
  evacuate: {
    action: 'evacuate',
    from: [VmState.Active, VmState.Stopped, VmState.Error],
    taskState: TaskState.Rebuilding,
    takesOver: 'any-but-rebuild',
  },
  resize: { action: 'resize', from: [VmState.Active, VmState.Stopped], taskState: TaskState.ResizePrep },
  migrate: { action: 'migrate', from: [VmState.Active, VmState.Stopped], taskState: TaskState.ResizePrep },
  confirmResize: { action: 'confirmResize', from: [VmState.Resized], taskState: TaskState.ResizeConfirming },
  revertResize: { action: 'revertResize', from: [VmState.Resized], taskState: TaskState.ResizeReverting },
  // NOTE(nova): reboot is ALLOW_SOFT_REBOOT ([ACTIVE]) for SOFT and ALLOW_HARD_REBOOT (those plus STOPPED,
  // PAUSED, SUSPENDED, ERROR) for HARD; one action name, `reboot`, for both.
  reboot: { action: 'reboot', from: [VmState.Active], taskState: TaskState.Rebooting },
  rebootHard: {
    action: 'reboot',
    from: [VmState.Active, VmState.Stopped, VmState.Paused, VmState.Suspended, VmState.Error],
    taskState: TaskState.RebootingHard,
  },
  // Nova's pause (ACTIVE), unpause (PAUSED), suspend (ACTIVE) and resume (SUSPENDED).
  pause: { action: 'pause', from: [VmState.Active], taskState: TaskState.Pausing },
  unpause: { action: 'unpause', from: [VmState.Paused], taskState: TaskState.Unpausing },
  suspend: { action: 'suspend', from: [VmState.Active], taskState: TaskState.Suspending },
  resume: { action: 'resume', from: [VmState.Suspended], taskState: TaskState.Resuming },
  // Nova's snapshot and shelve (ACTIVE, STOPPED, PAUSED, SUSPENDED), shelve_offload (SHELVED) and unshelve
  // (SHELVED, SHELVED_OFFLOADED).
  snapshot: {
    action: 'createImage',
    from: [VmState.Active, VmState.Stopped, VmState.Paused, VmState.Suspended],
    taskState: TaskState.ImageSnapshot,
  },
  shelve: {
    action: 'shelve',
    from: [VmState.Active, VmState.Stopped, VmState.Paused, VmState.Suspended],
    taskState: TaskState.Shelving,
  },
  shelveOffload: { action: 'shelveOffload', from: [VmState.Shelved], taskState: TaskState.ShelvingOffloading },
  unshelve: {
    action: 'unshelve',
    from: [VmState.Shelved, VmState.ShelvedOffloaded],
    taskState: TaskState.Unshelving,
  },
  // Nova's live_migrate is @check_instance_state(vm_state=[ACTIVE, PAUSED]): a paused one stays paused.
  liveMigrate: { action: 'live-migration', from: [VmState.Active, VmState.Paused], taskState: TaskState.Migrating },
  // NOTE(nova): terminate_instance is allowed from every vm state (the API's delete has no state check
  // but the task state: here the operation holding the instance is cancelled first).
  delete: {
    action: 'delete',
    from: Object.values(VmState),
    taskState: TaskState.Deleting,
    takesOver: 'any',
  },
} as const satisfies Record<string, Transition>;

export type OperationName = keyof typeof TRANSITIONS;

/** The task states of a build under way, in order (the build holds its instance from its creation). */
export const BUILD_TASK_STATES = [
  TaskState.Scheduling,
  TaskState.Networking,
  TaskState.BlockDeviceMapping,
  TaskState.Spawning,
] as const;

/** The task states of a rebuild or an evacuation under way: an evacuation never takes over one of these. */
export const REBUILD_TASK_STATES: readonly TaskStateType[] = [
  TaskState.Rebuilding,
  TaskState.RebuildBlockDeviceMapping,
  TaskState.RebuildSpawning,
];
