/**
 * Conductor activities of a delete (Nova's terminate_instance) and of the clean-up a returning compute
 * host does for it: who holds the instance, which of its migrations are still under way, how those end,
 * and which guests a host still has for instances that are gone.
 */
import { z } from 'zod';

import type { InstanceRecord } from '../../domain/instance';
import { TaskState as Task, VmState as Vm } from '../../domain/instance';
import type { MigrationRecord } from '../../domain/migration';
import { MIGRATION_FINISHED_STATUSES } from '../../domain/migration';
import { InstanceIdSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { ConductorDeps } from './deps';
import { onceWriter } from './deps';

/** The actions whose request runs the instance's resize or cold migration (and waits in VERIFY_RESIZE). */
const MOVE_ACTIONS = ['resize', 'migrate'];

export interface InstanceHolder {
  /** The request (workflow id) running an operation on the instance. */
  workflowId: string;
  /** Why it holds the instance: the task state it set, or a resize awaiting its confirmation. */
  holds: 'task-state' | 'resize-awaiting-confirmation';
}

export interface DeletePlan {
  instance: InstanceRecord;
  /** The operation to stop before the delete takes the instance; null when none holds it. */
  holder: InstanceHolder | null;
  /** Its migrations still under way (a resized instance's included): guests and allocations on their hosts too. */
  migrations: MigrationRecord[];
}

export interface DeletedGuest {
  instanceId: string;
  /** The instance's delete action, to record the clean-up on; null for an instance with no record. */
  actionId: string | null;
  /**
   * deleted: the instance is deleted or has no record; elsewhere: it lives on another host (or none)
   * with no operation and no migration touching this host (e.g. a failed attempt's guest left on a host
   * that was down). Absent on answers of before the distinction (read as deleted).
   */
  reason?: 'deleted' | 'elsewhere';
}

const HostGuestsSchema = z.object({
  host: z.string().min(1).max(255),
  instanceIds: z.array(z.string().min(1).max(64)).max(100_000),
});

export function createDeletionActivities(deps: ConductorDeps) {
  const { instances } = deps;
  const once = onceWriter(deps);

  return {
    /**
     * What a delete of the instance must deal with (read-only): the request holding it (its task state's
     * owner, or the resize that waits in VERIFY_RESIZE, which holds no task state) and its migrations
     * still under way. InstanceNotFound for an unknown instance.
     */
    async planDelete(input: { instanceId: string }): Promise<DeletePlan> {
      const instanceId = parseOrInvalid(InstanceIdSchema, input.instanceId);
      const instance = await instances.get(instanceId);
      const migrations = (await instances.listMigrations(instanceId)).filter(
        (m) => !MIGRATION_FINISHED_STATUSES.includes(m.status)
      );
      let holder: InstanceHolder | null = null;
      if (instance.taskState !== null && instance.taskOwner !== null) {
        holder = { workflowId: instance.taskOwner, holds: 'task-state' };
      } else if (instance.vmState === Vm.Resized) {
        const move = (await instances.listActions(instanceId)).filter((a) => MOVE_ACTIONS.includes(a.action)).at(-1);
        // Its action finished at VERIFY_RESIZE; its workflow waits on for the decision.
        if (move) holder = { workflowId: move.requestId, holds: 'resize-awaiting-confirmation' };
      }
      return { instance, holder, migrations };
    },

    /**
     * Ends the migrations a delete leaves behind, each as a compare-and-swap from the status it was read
     * in: a resize or cold migration that waited for its confirmation is `confirmed` (NOTE(nova):
     * _confirm_resize_on_deleting), one interrupted before that `error`, an evacuation under way `error`.
     * A finished evacuation (`done`) is left to the returning source host, which marks it completed.
     */
    async endMigrationsOnDelete(input: { migrations: Array<{ migrationId: string; status: string }> }): Promise<void> {
      const { migrations } = parseOrInvalid(
        z.object({
          migrations: z.array(z.object({ migrationId: z.string().min(1).max(64), status: z.string().min(1).max(32) })),
        }),
        input
      );
      await once(async (repo) => {
        for (const { migrationId, status } of migrations) {
          if (status === 'done' || MIGRATION_FINISHED_STATUSES.includes(status)) continue;
          const next = status === 'finished' ? 'confirmed' : 'error';
          await repo.updateMigration(migrationId, { status: next }, { status: [status], method: 'deleteInstance' });
        }
      });
    },

    /**
     * Of the instances a compute host has guests or allocations for, those that are gone from it: deleted,
     * with no record at all (NOTE(nova): _cleanup_running_deleted_instances), or living elsewhere with no
     * operation running on them and no migration under way from or to this host. An instance whose delete
     * is still running is left to that delete.
     */
    async findDeletedInstances(input: z.input<typeof HostGuestsSchema>): Promise<DeletedGuest[]> {
      const { host, instanceIds } = parseOrInvalid(HostGuestsSchema, input);
      const found: DeletedGuest[] = [];
      for (const instanceId of [...new Set(instanceIds)].sort()) {
        const instance = await instances.find(instanceId);
        if (instance === undefined) {
          // A migration's allocation is the migration's business (its resize, or the reconciler's).
          if ((await instances.findMigration(instanceId)) !== undefined) continue;
          // Guests and claims are made only for instances with a record; no record: nothing owns it.
          found.push({ instanceId, actionId: null, reason: 'deleted' });
          continue;
        }
        if (instance.vmState !== Vm.Deleted) {
          // Living elsewhere: only when nothing is under way that may still put it here.
          if (instance.host === host || instance.taskState !== null) continue;
          // An evacuation from this host, finished or not, is the evacuated clean-up's (it completes the
          // evacuation too); the evacuation may have become `done` since that clean-up looked.
          const moving = (await instances.listMigrations(instanceId)).some(
            (m) =>
              (m.migrationType === 'evacuation' && m.sourceHost === host && m.status !== 'completed') ||
              (!MIGRATION_FINISHED_STATUSES.includes(m.status) && (m.sourceHost === host || m.destHost === host))
          );
          if (moving) continue;
          const last = (await instances.listActions(instanceId)).at(-1);
          found.push({ instanceId, actionId: last?.actionId ?? null, reason: 'elsewhere' });
          continue;
        }
        if (instance.taskState === Task.Deleting) continue;
        const actions = await instances.listActions(instanceId);
        const last = actions.filter((a) => a.action === 'delete' || a.action === 'create').at(-1);
        found.push({ instanceId, actionId: last?.actionId ?? null, reason: 'deleted' });
      }
      return found;
    },
  };
}
