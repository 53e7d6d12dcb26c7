/**
 * Conductor activities of the reconciler and of reset-state: what a batch of instances looks like (with
 * their migrations and the actions of the requests holding them), what the consumers of allocations are,
 * and the instance writes, each a compare-and-swap on the task state and owner read, so an operation that
 * took the instance meanwhile is never touched.
 */
import { z } from 'zod';

import type { InstancePatch, InstanceRecord, TaskState } from '../../domain/instance';
import { TaskState as Task, VmState as Vm } from '../../domain/instance';
import { migrationWorkflowOf } from '../../domain/migration';
import type { ActionView, ConsumerView, InstanceView } from '../../domain/reconcile';
import { RESET_STATE_EVENT } from '../../domain/reconcile';
import { InstanceIdSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { InstanceRepository } from '../../store/instances';
import type { ConductorDeps } from './deps';
import { onceWriter } from './deps';

const TaskStateSchema = z.enum(Object.values(Task) as [TaskState, ...TaskState[]]);
const RequestIdSchema = z.string().min(1).max(255);

const PageSchema = z.object({
  /** Instances after this id (ids ascending); absent: from the first. */
  after: z.string().max(64).nullable().default(null),
  limit: z.number().int().min(1).max(1000),
});

const TakeOverSchema = z.object({
  instanceId: InstanceIdSchema,
  /** What was read: the task state and the request holding it (null: none). */
  expectTaskState: TaskStateSchema,
  expectOwner: RequestIdSchema.nullable(),
  /** The reconciler's own request id, which holds the instance from now on. */
  requestId: RequestIdSchema,
});

const SettleSchema = z.object({
  instanceId: InstanceIdSchema,
  /** The request holding the instance (the reconciler, after its takeover). */
  expectOwner: RequestIdSchema,
  patch: z.object({
    vmState: z.enum(Object.values(Vm) as [string, ...string[]]).optional(),
    taskState: z.null(),
    powerState: z.string().optional(),
    host: z.string().nullable().optional(),
  }),
  /** A fault recorded with it (the outcome was unknown). */
  fault: z.string().max(2000).nullable(),
  /** The interrupted operation's action: finished as Error, the event recorded on it. */
  actionId: z.string().max(64).nullable(),
  event: z.object({ name: z.string().min(1).max(64), details: z.string().max(4000) }),
});

const ResetStateSchema = z.object({
  instanceId: InstanceIdSchema,
  vmState: z.enum([Vm.Active, Vm.Error]),
  expectTaskState: TaskStateSchema.nullable(),
  expectOwner: RequestIdSchema.nullable(),
  requestId: RequestIdSchema,
});

async function viewOf(repo: InstanceRepository, instance: InstanceRecord): Promise<InstanceView> {
  const [migrations, actions] = await Promise.all([
    repo.listMigrations(instance.instanceId),
    repo.listActions(instance.instanceId),
  ]);
  const owned = instance.taskOwner === null ? [] : actions.filter((a) => a.requestId === instance.taskOwner);
  const owner = owned.at(-1);
  const ownerAction: ActionView | null = owner
    ? { actionId: owner.actionId, action: owner.action, events: owner.events.map((e) => e.event) }
    : null;
  return {
    instance,
    ownerAction,
    migrations: migrations.map((migration) => {
      const workflowId = migrationWorkflowOf(migration, actions) ?? null;
      const action = actions.filter((a) => a.requestId === workflowId).at(0);
      return { migration, workflowId, actionId: action?.actionId ?? null };
    }),
  };
}

export function createReconcileActivities(deps: ConductorDeps) {
  const { instances } = deps;
  const once = onceWriter(deps);
  return {
    /** One page of instances (ids ascending) as the reconciler reads them, and the id to continue after. */
    async reconcileInstancePage(
      input: z.input<typeof PageSchema>
    ): Promise<{ views: InstanceView[]; next: string | null }> {
      const { after, limit } = parseOrInvalid(PageSchema, input);
      const page = await instances.listPage({ after, limit });
      const views = await Promise.all(page.map((i) => viewOf(instances, i)));
      return { views, next: page.length < limit ? null : (page.at(-1)?.instanceId ?? null) };
    },

    /** What each allocation consumer is: an instance (its state), a migration (its status) or nothing. */
    async describeConsumers(input: { consumerIds: string[] }): Promise<Record<string, ConsumerView>> {
      const { consumerIds } = parseOrInvalid(
        z.object({ consumerIds: z.array(z.string().min(1).max(64)).max(10_000) }),
        input
      );
      const out: Record<string, ConsumerView> = {};
      for (const id of [...new Set(consumerIds)]) {
        const instance = await instances.find(id);
        if (instance) {
          out[id] = { kind: 'instance', vmState: instance.vmState, taskState: instance.taskState, host: instance.host };
          continue;
        }
        const migration = await instances.findMigration(id);
        out[id] = migration
          ? { kind: 'migration', status: migration.status, instanceId: migration.instanceId }
          : { kind: 'none' };
      }
      return out;
    },

    /**
     * The reconciler takes an instance over from a request whose workflow is closed: the owner becomes the
     * reconciler, the task state stays, as a compare-and-swap on the state and owner read
     * (InstanceInvalidState when either moved on). Idempotent: a retry finds the reconciler holding it.
     */
    async takeOverTask(input: z.input<typeof TakeOverSchema>): Promise<InstanceRecord> {
      const req = parseOrInvalid(TakeOverSchema, input);
      return once(async (repo) => {
        try {
          return await repo.update(
            req.instanceId,
            { taskOwner: req.requestId },
            { taskState: req.expectTaskState, owner: req.expectOwner, method: 'reconcile' }
          );
        } catch (err) {
          const current = await repo.get(req.instanceId);
          if (current.taskOwner === req.requestId && current.taskState === req.expectTaskState) return current;
          throw err;
        }
      });
    },

    /**
     * Leaves an instance the reconciler holds in its stable state, in one write: the state (task state
     * cleared), the fault if any, the interrupted action finished as Error and the decision's event on it.
     */
    async settleInstance(input: z.input<typeof SettleSchema>): Promise<InstanceRecord> {
      const req = parseOrInvalid(SettleSchema, input);
      return once(async (repo) => {
        const record = await repo.update(req.instanceId, req.patch as InstancePatch, {
          owner: req.expectOwner,
          method: 'reconcile',
        });
        if (req.fault !== null) await repo.recordFault(req.instanceId, { code: 500, message: req.fault, details: '' });
        if (req.actionId !== null) {
          const now = new Date().toISOString();
          await repo.recordEvent({
            actionId: req.actionId,
            event: req.event.name,
            attempt: 1,
            host: record.host,
            result: 'Success',
            details: req.event.details,
            startedAt: now,
            finishedAt: now,
          });
          await repo.finishAction(req.actionId, 'Error');
        }
        return record;
      });
    },

    /**
     * Nova's reset-state: the vm state set, the task state and its owner cleared (a compare-and-swap on the
     * ones read), with a `resetState` action and its event. The caller has checked that no operation
     * workflow holds the instance.
     */
    async resetInstanceState(
      input: z.input<typeof ResetStateSchema>
    ): Promise<{ instance: InstanceRecord; actionId: string }> {
      const req = parseOrInvalid(ResetStateSchema, input);
      return once(async (repo) => {
        const before = await repo.get(req.instanceId);
        const instance = await repo.update(
          req.instanceId,
          { vmState: req.vmState, taskState: null },
          { taskState: req.expectTaskState, owner: req.expectOwner, vmState: ALL_BUT_DELETED, method: 'resetState' }
        );
        const { actionId } = await repo.startAction(req.instanceId, 'resetState', req.requestId);
        const now = new Date().toISOString();
        await repo.recordEvent({
          actionId,
          event: RESET_STATE_EVENT,
          attempt: 1,
          host: instance.host,
          result: 'Success',
          details: `vm state ${before.vmState} → ${req.vmState}; task state ${before.taskState ?? 'None'} (held by ${before.taskOwner ?? 'no request'}) cleared`,
          startedAt: now,
          finishedAt: now,
        });
        await repo.finishAction(actionId, 'Success');
        return { instance, actionId };
      });
    },
  };
}

/** reset-state applies to any instance that is not deleted. */
const ALL_BUT_DELETED = Object.values(Vm).filter((v) => v !== Vm.Deleted);

export type ReconcileActivities = ReturnType<typeof createReconcileActivities>;
