/**
 * Conductor activities, on the `conductor` queue: the only writers of instance records (Nova's
 * "conductor as database proxy"). Every write is idempotent or a compare-and-swap, because Temporal
 * delivers activities at least once.
 */
import { z } from 'zod';

import type { Flavor, Image } from '../../domain/catalogue';
import { checkImageFitsFlavor, resolveImage } from '../../domain/catalogue';
import { unknownServerGroup } from '../../domain/errors';
import type { InstancePatch, InstanceRecord, TaskState, VmState } from '../../domain/instance';
import { PowerState as Power, TaskState as Task, VmState as Vm } from '../../domain/instance';
import { InstanceIdSchema, InstanceNameSchema, SchedulerHintsSchema } from '../../domain/schemas';
import { REBUILD_TASK_STATES } from '../../domain/transitions';
import { parseOrInvalid } from '../../domain/validation';
import type { InstanceRepository } from '../../store/instances';
import { resolveAnyFlavor } from '../../store/instances';
import type { ConductorDeps } from './deps';
import { onceWriter } from './deps';
import { createDeletionActivities } from './deletion';
import { createEvacuationActivities } from './evacuation';
import { createImageActivities, liveCatalogue } from './images';
import { createMigrationActivities } from './migrations';
import { createPowerSyncActivities } from './power-sync';
import { createReconcileActivities } from './reconcile';
import { createServerGroupActivities } from './server-groups';
import { createWorkflowStatusActivities } from './workflow-status';

export type { ConductorDeps };
export type { MigrationPlan, MigrationRecord, ResizeMigrationStatus } from '../../domain/migration';
export { RESIZE_MIGRATION_STATUSES } from '../../domain/migration';

const CreateInstanceSchema = z.object({
  instanceId: InstanceIdSchema,
  name: InstanceNameSchema,
  flavor: z.string().min(1).max(255),
  image: z.string().min(1).max(255),
  availabilityZone: z.string().min(1).max(255).optional(),
  schedulerHints: SchedulerHintsSchema.default({}),
  requestId: z.string().min(1).max(255),
});

export interface CreateInstanceResult {
  instance: InstanceRecord;
  flavor: Flavor;
  image: Image;
  actionId: string;
  /** The request whose `create` action made the instance (the one holding it while it builds). */
  requestId: string;
  /**
   * Set when the instance already existed (the same workflow id re-run, or the same instance id): nothing
   * was created or changed. `fault`: its last fault when it is `error` (`type`: the failure's type).
   */
  existing?: {
    requestId: string | null;
    fault: { code: number; message: string; type: string | null } | null;
  };
}

export type { InstancePatch };

export interface UpdateInstanceInput {
  instanceId: string;
  patch: InstancePatch;
  /** Compare-and-swap: the update applies only from these states (Nova's expected_task_state). */
  expectTaskState?: TaskState | null | Array<TaskState | null>;
  expectVmState?: VmState | VmState[];
  /** The operation asking, named in InstanceInvalidState. */
  method: string;
  /** Events of steps that finished since the operation's last write, recorded in the same transaction. */
  events?: EventInput[];
  /** The operation's action finished in the same transaction, once the update applied (its end in one write). */
  finishAction?: { actionId: string; result: 'Success' | 'Error' };
}

export interface EventInput {
  actionId: string;
  event: string;
  attempt: number;
  host: string | null;
  result: 'Success' | 'Error' | null;
  details?: string;
  startedAt: string;
  finishedAt?: string;
}

export interface FinishBuildInput {
  instanceId: string;
  actionId: string;
  host: string;
  availabilityZone: string | null;
  events: EventInput[];
}

/** Records events in order; each is idempotent on action, event and attempt. */
async function recordEvents(repo: InstanceRepository, events: readonly EventInput[] | undefined): Promise<void> {
  for (const event of events ?? []) await repo.recordEvent(event);
}

export interface FaultInput {
  instanceId: string;
  actionId?: string;
  code: number;
  message: string;
  details?: string;
  /** The state the instance is left in; defaults to error with no task. */
  patch?: InstancePatch;
  /**
   * Apply `patch` only while the instance is still in this task state (the failing operation's): if
   * another operation took the instance over meanwhile, the fault is recorded and its state left alone.
   */
  expectTaskState?: TaskState | null;
  /** Events of steps that finished since the operation's last write, recorded with the fault. */
  events?: EventInput[];
}

const BeginOperationSchema = z.object({
  instanceId: InstanceIdSchema,
  /** The instance action's name: stop, start, rebuild, evacuate, resize, migrate … */
  action: z.string().min(1).max(64),
  requestId: z.string().min(1).max(255),
  /** The task state the operation holds while it runs. */
  taskState: z.enum(Object.values(Task) as [TaskState, ...TaskState[]]),
  /** The vm states the operation may start from. */
  expectVmState: z.array(z.enum(Object.values(Vm) as [VmState, ...VmState[]])).min(1),
  /** Evacuate is the one operation allowed while another task state is set (never a rebuild's). */
  allowTaskSet: z.boolean().default(false),
  /**
   * With allowTaskSet: the request the caller saw holding the instance (null: none), so a takeover
   * happens only from what the caller saw, and of two racing evacuations one wins.
   */
  expectOwner: z.string().min(1).max(255).nullable().optional(),
  /** Delete: takes over any task state, rebuilds' included, but only from `expectOwner` (required then). */
  takeOverAny: z.boolean().default(false),
});
export type BeginOperationInput = z.input<typeof BeginOperationSchema>;

/** The task states an evacuation may take over: none, or any but a rebuild's or an evacuation's. */
const TAKE_OVER_FROM: readonly (TaskState | null)[] = [
  null,
  ...Object.values(Task).filter((t) => !REBUILD_TASK_STATES.includes(t)),
];

export function createConductorActivities(deps: ConductorDeps) {
  const { instances, catalogue } = deps;
  const once = onceWriter(deps);

  return {
    // Resize and cold migration: planMigration, createMigration, updateMigration (at the end of this file).
    ...createMigrationActivities(deps),
    ...createDeletionActivities(deps),
    ...createServerGroupActivities(deps),
    ...createWorkflowStatusActivities(deps.temporal),
    // The reconciler's reads and compare-and-swap writes, and reset-state (src/activities/conductor/reconcile.ts).
    ...createReconcileActivities(deps),
    // The reconciler's power-state sync (src/activities/conductor/power-sync.ts).
    ...createPowerSyncActivities(deps),
    // Rebuild's spec and the evacuation's migration record (src/activities/conductor/evacuation.ts).
    ...createEvacuationActivities(deps),
    // Stored images: snapshots (src/activities/conductor/images.ts).
    ...createImageActivities(deps),
    /**
     * Creates the instance record (building/scheduling) and its `create` action, after resolving the
     * flavor and image. Idempotent on the instance id. Throws InvalidRequest before writing anything.
     */
    async createInstance(input: z.input<typeof CreateInstanceSchema>): Promise<CreateInstanceResult> {
      const req = parseOrInvalid(CreateInstanceSchema, input);
      const flavor = await resolveAnyFlavor(catalogue, instances, req.flavor);
      const image = resolveImage(await liveCatalogue(deps, req.image), req.image);
      checkImageFitsFlavor(flavor, image, 'flavor');
      const group = req.schedulerHints.group;
      if (group && !(await instances.getServerGroup(group)))
        throw unknownServerGroup(
          group,
          (await instances.listServerGroups()).map((g) => g.name)
        );
      // Once per call: a retry after a lost answer gets the first answer, never "a duplicate of itself".
      return once(async (repo) => {
        // Idempotent create: a build re-submitted under the same workflow id (a new run), or for an
        // instance id that exists, gets the instance as it is and creates and touches nothing.
        const previous = await repo.findActionByRequest('create', req.requestId);
        const found = await repo.find(previous?.instanceId ?? req.instanceId);
        const asExisting = async (existing: InstanceRecord): Promise<CreateInstanceResult> => {
          const actions = await repo.listActions(existing.instanceId);
          const create = actions.find((a) => a.action === 'create');
          const fault =
            existing.vmState === Vm.Error ? ((await repo.listFaults(existing.instanceId)).at(-1) ?? null) : null;
          return {
            instance: existing,
            flavor,
            image,
            actionId: create?.actionId ?? '',
            requestId: create?.requestId ?? req.requestId,
            existing: {
              requestId: create?.requestId ?? null,
              fault: fault && { code: fault.code, message: fault.message, type: fault.details },
            },
          };
        };
        if (found) return asExisting(found);
        const instance = await repo.create({
          instanceId: req.instanceId,
          name: req.name,
          vmState: Vm.Building,
          taskState: Task.Scheduling,
          // The build holds its instance from the start: no other operation until it is done.
          taskOwner: req.requestId,
          powerState: Power.NoState,
          host: null,
          availabilityZone: req.availabilityZone ?? null,
          flavor: flavor.name,
          image: image.name,
          vcpus: flavor.vcpus,
          memoryMb: flavor.memoryMb,
          diskGb: flavor.diskGb,
          serverGroup: group ?? null,
        });
        // A rival build of the same instance id created it first (create returns the record it found).
        if (instance.taskOwner !== req.requestId) return asExisting(instance);
        const { actionId } = await repo.startAction(req.instanceId, 'create', req.requestId);
        return { instance, flavor, image, actionId, requestId: req.requestId };
      });
    },

    /** An image of the catalogue or the store by name (its properties: os_shutdown_timeout …); null if unknown. */
    async getImage(input: { name: string }): Promise<Image | null> {
      return (await liveCatalogue(deps, input.name)).images.find((i) => i.name === input.name) ?? null;
    },

    async getInstance(input: { instanceId: string }): Promise<InstanceRecord> {
      return instances.get(parseOrInvalid(InstanceIdSchema, input.instanceId));
    },

    /** Compare-and-swap update; InstanceInvalidState names the current state when it does not apply. */
    async updateInstance(input: UpdateInstanceInput): Promise<InstanceRecord> {
      const { instanceId, patch, expectTaskState, expectVmState, method, finishAction } = input;
      return once(async (repo) => {
        await recordEvents(repo, input.events);
        const updated = await repo.update(instanceId, patch, {
          taskState: expectTaskState,
          vmState: expectVmState,
          method,
        });
        if (finishAction) await repo.finishAction(finishAction.actionId, finishAction.result);
        return updated;
      });
    },

    /** Events of finished steps, in one transaction (idempotent on action, event and attempt). */
    async recordEvents(input: { events: EventInput[] }): Promise<void> {
      await once((repo) => recordEvents(repo, input.events));
    },

    /**
     * The end of a successful build, in one write: the instance active on its host (a compare-and-swap
     * from the build's spawning), the steps' events not yet recorded, the `create` action's Success; then
     * the host's failed-build count reset (Nova's compute reports a build that succeeded).
     */
    async finishBuild(input: FinishBuildInput): Promise<InstanceRecord> {
      const record = await once(async (repo) => {
        await recordEvents(repo, input.events);
        const updated = await repo.update(
          input.instanceId,
          {
            vmState: Vm.Active,
            taskState: null,
            powerState: Power.Running,
            host: input.host,
            availabilityZone: input.availabilityZone,
          },
          { taskState: Task.Spawning, method: 'buildInstance' }
        );
        await repo.finishAction(input.actionId, 'Success');
        return updated;
      });
      if (!deps.placement) throw new Error('finishBuild: the conductor activities were made without placement');
      await deps.placement.recordBuildResult(input.host, true);
      return record;
    },

    /**
     * Begins an operation on an existing instance: the compare-and-swap of `taskState` from null (the
     * operation lock; Nova's expected_task_state) and the instance action. A conflicting operation
     * fails at once with InstanceInvalidState naming the current state. Idempotent on the request id:
     * a retry after the swap already applied finds the instance in `taskState` and goes on.
     */
    async beginOperation(input: BeginOperationInput): Promise<{ instance: InstanceRecord; actionId: string }> {
      const req = parseOrInvalid(BeginOperationSchema, input);
      return once(async (repo) => {
        let instance: InstanceRecord;
        try {
          instance = await repo.update(
            req.instanceId,
            { taskState: req.taskState, taskOwner: req.requestId },
            req.takeOverAny
              ? // Delete: whatever the task state, from the owner it stopped (or none) and nobody else.
                { owner: req.expectOwner ?? null, vmState: req.expectVmState, method: req.action }
              : req.allowTaskSet
                ? {
                    // NOTE(nova): evacuate may take over a task state, never another rebuild or evacuation.
                    taskState: TAKE_OVER_FROM,
                    ...(req.expectOwner !== undefined ? { owner: req.expectOwner } : {}),
                    vmState: req.expectVmState,
                    method: req.action,
                  }
                : { taskState: null, vmState: req.expectVmState, method: req.action }
          );
        } catch (err) {
          // A retry whose swap already applied holds the lock itself: go on. Anyone else's lock: refuse.
          const current = await repo.get(req.instanceId);
          if (current.taskOwner !== req.requestId || current.taskState !== req.taskState) throw err;
          instance = current;
        }
        const { actionId } = await repo.startAction(req.instanceId, req.action, req.requestId);
        return { instance, actionId };
      });
    },

    /** Starts an action for an operation on an existing instance (idempotent on the request id). */
    async startAction(input: { instanceId: string; action: string; requestId: string }): Promise<{ actionId: string }> {
      return instances.startAction(input.instanceId, input.action, input.requestId);
    },

    async finishAction(input: { actionId: string; result: 'Success' | 'Error' }): Promise<void> {
      await once((repo) => repo.finishAction(input.actionId, input.result));
    },

    /** One event per step and attempt (idempotent on action, event and attempt). */
    async recordEvent(input: EventInput): Promise<void> {
      await instances.recordEvent(input);
    },

    /**
     * Persists a failure: the fault, the instance's final state (error with no task unless `patch`
     * says otherwise) and the action's Error result.
     */
    async recordFailure(input: FaultInput): Promise<InstanceRecord> {
      // Once: a retry after a lost answer must not record the fault twice.
      return once(async (instances) => {
        await recordEvents(instances, input.events);
        await instances.recordFault(input.instanceId, {
          code: input.code,
          message: input.message,
          details: input.details ?? '',
        });
        let record: InstanceRecord;
        try {
          record = await instances.update(input.instanceId, input.patch ?? { vmState: Vm.Error, taskState: null }, {
            method: 'recordFailure',
            ...(input.expectTaskState !== undefined ? { taskState: input.expectTaskState } : {}),
          });
        } catch (err) {
          if ((err as Error).name !== 'InstanceInvalidState') throw err;
          record = await instances.get(input.instanceId);
        }
        if (input.actionId) await instances.finishAction(input.actionId, 'Error');
        return record;
      });
    },
  };
}

export type ConductorActivities = ReturnType<typeof createConductorActivities>;
