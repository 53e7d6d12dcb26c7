/**
 * Conductor activities, on the `conductor` queue: the only writers of instance records (Nova's
 * "conductor as database proxy"). Every write is idempotent or a compare-and-swap, because Temporal
 * delivers activities at least once.
 */
import { z } from 'zod';

import type { Catalogue, Flavor, Image } from '../../domain/catalogue';
import { resolveFlavor, resolveImage } from '../../domain/catalogue';
import { InvalidRequest } from '../../domain/errors';
import type { InstanceRecord, PowerState, TaskState, VmState } from '../../domain/instance';
import { PowerState as Power, TaskState as Task, VmState as Vm } from '../../domain/instance';
import { InstanceIdSchema, InstanceNameSchema, SchedulerHintsSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { InstanceRepository } from '../../store/instances';

export interface ConductorDeps {
  instances: InstanceRepository;
  catalogue: Catalogue;
  now?: () => Date;
}

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
}

export interface InstancePatch {
  vmState?: VmState;
  taskState?: TaskState | null;
  taskOwner?: string | null;
  powerState?: PowerState;
  host?: string | null;
  availabilityZone?: string | null;
  flavor?: string;
  image?: string;
  vcpus?: number;
  memoryMb?: number;
  diskGb?: number;
}

export interface UpdateInstanceInput {
  instanceId: string;
  patch: InstancePatch;
  /** Compare-and-swap: the update applies only from these states (Nova's expected_task_state). */
  expectTaskState?: TaskState | null | Array<TaskState | null>;
  expectVmState?: VmState | VmState[];
  /** The operation asking, named in InstanceInvalidState. */
  method: string;
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

export interface FaultInput {
  instanceId: string;
  actionId?: string;
  code: number;
  message: string;
  details?: string;
  /** The state the instance is left in; defaults to error with no task. */
  patch?: InstancePatch;
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
  /** Evacuate is the one operation allowed while another task state is set. */
  allowTaskSet: z.boolean().default(false),
});
export type BeginOperationInput = z.input<typeof BeginOperationSchema>;

export function createConductorActivities(deps: ConductorDeps) {
  const { instances, catalogue } = deps;

  return {
    /**
     * Creates the instance record (building/scheduling) and its `create` action, after resolving the
     * flavor and image. Idempotent on the instance id. Throws InvalidRequest before writing anything.
     */
    async createInstance(input: z.input<typeof CreateInstanceSchema>): Promise<CreateInstanceResult> {
      const req = parseOrInvalid(CreateInstanceSchema, input);
      const flavor = resolveFlavor(catalogue, req.flavor);
      const image = resolveImage(catalogue, req.image);
      // NOTE(nova): the API refuses a flavor below the image's min_ram/min_disk (FlavorMemoryTooSmall,
      // FlavorDiskTooSmall) before anything is created; the real image size is only known on the host.
      if (image.minRamMb > flavor.memoryMb)
        throw new InvalidRequest(
          'flavor',
          `flavor's memory ${flavor.memoryMb} MB is smaller than image ${image.name}'s minimum ${image.minRamMb} MB`
        );
      if (flavor.diskGb > 0 && image.minDiskGb > flavor.diskGb)
        throw new InvalidRequest(
          'flavor',
          `flavor's disk ${flavor.diskGb} GB is smaller than image ${image.name}'s minimum ${image.minDiskGb} GB`
        );
      const group = req.schedulerHints.group;
      if (group && !(await instances.getServerGroup(group)))
        throw new InvalidRequest('schedulerHints.group', `unknown server group '${group}'`);
      const instance = await instances.create({
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
      const { actionId } = await instances.startAction(req.instanceId, 'create', req.requestId);
      return { instance, flavor, image, actionId };
    },

    async getInstance(input: { instanceId: string }): Promise<InstanceRecord> {
      return instances.get(parseOrInvalid(InstanceIdSchema, input.instanceId));
    },

    /** Compare-and-swap update; InstanceInvalidState names the current state when it does not apply. */
    async updateInstance(input: UpdateInstanceInput): Promise<InstanceRecord> {
      const { instanceId, patch, expectTaskState, expectVmState, method } = input;
      return instances.update(instanceId, patch, { taskState: expectTaskState, vmState: expectVmState, method });
    },

    /**
     * Begins an operation on an existing instance: the compare-and-swap of `taskState` from null (the
     * operation lock; Nova's expected_task_state) and the instance action. A conflicting operation
     * fails at once with InstanceInvalidState naming the current state. Idempotent on the request id:
     * a retry after the swap already applied finds the instance in `taskState` and goes on.
     */
    async beginOperation(input: BeginOperationInput): Promise<{ instance: InstanceRecord; actionId: string }> {
      const req = parseOrInvalid(BeginOperationSchema, input);
      let instance: InstanceRecord;
      try {
        instance = await instances.update(
          req.instanceId,
          { taskState: req.taskState, taskOwner: req.requestId },
          { taskState: req.allowTaskSet ? undefined : null, vmState: req.expectVmState, method: req.action }
        );
      } catch (err) {
        // A retry whose swap already applied holds the lock itself: go on. Anyone else's lock: refuse.
        const current = await instances.get(req.instanceId);
        if (current.taskOwner !== req.requestId || current.taskState !== req.taskState) throw err;
        instance = current;
      }
      const { actionId } = await instances.startAction(req.instanceId, req.action, req.requestId);
      return { instance, actionId };
    },

    /** Starts an action for an operation on an existing instance (idempotent on the request id). */
    async startAction(input: { instanceId: string; action: string; requestId: string }): Promise<{ actionId: string }> {
      return instances.startAction(input.instanceId, input.action, input.requestId);
    },

    async finishAction(input: { actionId: string; result: 'Success' | 'Error' }): Promise<void> {
      await instances.finishAction(input.actionId, input.result);
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
      await instances.recordFault(input.instanceId, {
        code: input.code,
        message: input.message,
        details: input.details ?? '',
      });
      const record = await instances.update(input.instanceId, input.patch ?? { vmState: Vm.Error, taskState: null }, {
        method: 'recordFailure',
      });
      if (input.actionId) await instances.finishAction(input.actionId, 'Error');
      return record;
    },
  };
}

export type ConductorActivities = ReturnType<typeof createConductorActivities>;
