/** The only place that spells task-queue names and workflow ids. */

/** Conductor workflows and the conductor's own activities (the only writer of instance records). */
export const CONDUCTOR_TASK_QUEUE = 'conductor';
/** Scheduler and placement activities: selectDestinations, claims, registration, audit. */
export const SCHEDULER_TASK_QUEUE = 'scheduler';

export { HOST_NAME_PATTERN } from '../domain/host';

/** The per-host queue a compute worker polls: `compute-<host>`. */
export function computeTaskQueue(host: string): string {
  return `compute-${host}`;
}

export const workflowIds = {
  buildInstance: (instanceId: string) => `build-${instanceId}`,
  /** A multi-create's child for its instance `index` (1-based): the parent's id with the suffix. */
  batchMember: (parentWorkflowId: string, index: number) => `${parentWorkflowId}-${index}`,
  /** One server-group API call (create, list, show, delete). */
  serverGroup: (action: string, requestId: string) => `server-group-${action}-${requestId}`,
  placementAttempt: (instanceId: string, operation: string) => `place-${operation}-${instanceId}`,
  stop: (instanceId: string, requestId: string) => `stop-${instanceId}-${requestId}`,
  start: (instanceId: string, requestId: string) => `start-${instanceId}-${requestId}`,
  reboot: (instanceId: string, requestId: string) => `reboot-${instanceId}-${requestId}`,
  pause: (instanceId: string, requestId: string) => `pause-${instanceId}-${requestId}`,
  unpause: (instanceId: string, requestId: string) => `unpause-${instanceId}-${requestId}`,
  suspend: (instanceId: string, requestId: string) => `suspend-${instanceId}-${requestId}`,
  resume: (instanceId: string, requestId: string) => `resume-${instanceId}-${requestId}`,
  snapshot: (instanceId: string, requestId: string) => `snapshot-${instanceId}-${requestId}`,
  shelve: (instanceId: string, requestId: string) => `shelve-${instanceId}-${requestId}`,
  shelveOffload: (instanceId: string, requestId: string) => `shelve-offload-${instanceId}-${requestId}`,
  unshelve: (instanceId: string, requestId: string) => `unshelve-${instanceId}-${requestId}`,
  rebuild: (instanceId: string, requestId: string) => `rebuild-${instanceId}-${requestId}`,
  /** An evacuation: a run of the `rebuild` workflow (`evacuate: true`), named for what it does. */
  evacuate: (instanceId: string, requestId: string) => `evacuate-${instanceId}-${requestId}`,
  resizeMigrate: (instanceId: string, requestId: string) => `resize-${instanceId}-${requestId}`,
  deleteInstance: (instanceId: string, requestId: string) => `delete-${instanceId}-${requestId}`,
  liveMigrate: (instanceId: string, requestId: string) => `live-migrate-${instanceId}-${requestId}`,
  /** A read of the guest's console log from its host (consoleOutput). */
  consoleOutput: (instanceId: string, requestId: string) => `console-${instanceId}-${requestId}`,
  registerHost: (host: string) => `register-host-${host}`,
  /** An operator's disable / enable / force-down / up of a host's service (setHostService). */
  setHostService: (host: string, requestId: string) => `host-service-${host}-${requestId}`,
  /** A compute host's start-up reconciliation (evacuated guests and their source allocations). */
  reconcileHost: (host: string) => `reconcile-host-${host}`,
} as const;
