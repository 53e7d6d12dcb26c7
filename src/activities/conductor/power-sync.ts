/**
 * Conductor activities of the reconciler's power-state sync (src/domain/power-sync.ts): the instances on
 * some hosts, and the writes of a decision, each a compare-and-swap on what was read (no task state, the
 * same host, vm state and power state), so an instance an operation took or changed meanwhile is skipped.
 *
 * A stop takes the instance with task state `powering-off` under the reconciler (`beginPowerSync`, which
 * starts the `stop` action, as Nova's compute_api.stop does), the workflow powers the guest off, then
 * `finishPowerSync` leaves it `stopped` with the decision's event. A power state only copied
 * (`recordPowerState`) is one write with a `syncPowerState` action and its event.
 */
import { z } from 'zod';

import type { InstanceRecord } from '../../domain/instance';
import { PowerState, TaskState, VmState } from '../../domain/instance';
import { POWER_SYNC_EVENT } from '../../domain/power-sync';
import { HostNameSchema, InstanceIdSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { InstanceRepository } from '../../store/instances';
import type { ConductorDeps } from './deps';
import { onceWriter } from './deps';

const PowerStateSchema = z.enum(Object.values(PowerState) as [PowerState, ...PowerState[]]);
const VmStateSchema = z.enum(Object.values(VmState) as [VmState, ...VmState[]]);
const RequestIdSchema = z.string().min(1).max(255);

const ReadSchema = z.object({
  instanceId: InstanceIdSchema,
  host: HostNameSchema,
  expectVmState: VmStateSchema,
  expectPowerState: PowerStateSchema,
});

const BeginSchema = ReadSchema.extend({
  /** The reconciler's workflow id: it holds the task state. */
  owner: RequestIdSchema,
  /** The request id of the `stop` action (one per decision). */
  requestId: RequestIdSchema,
});

const FinishSchema = z.object({
  instanceId: InstanceIdSchema,
  owner: RequestIdSchema,
  actionId: z.string().min(1).max(64),
  /** The guest's power state after the power-off; null when the host did not answer (left as it was). */
  powerState: PowerStateSchema.nullable(),
  details: z.string().max(4000),
});

const RecordSchema = ReadSchema.extend({
  powerState: PowerStateSchema,
  requestId: RequestIdSchema,
  details: z.string().max(4000),
});

/** True when the instance is still as the decision read it (no task, the same host and states). */
function unchanged(record: InstanceRecord, read: z.infer<typeof ReadSchema>): boolean {
  return (
    record.taskState === null &&
    record.host === read.host &&
    record.vmState === read.expectVmState &&
    record.powerState === read.expectPowerState
  );
}

async function event(repo: InstanceRepository, actionId: string, host: string | null, details: string, ok = true) {
  const now = new Date().toISOString();
  await repo.recordEvent({
    actionId,
    event: POWER_SYNC_EVENT,
    attempt: 1,
    host,
    result: ok ? 'Success' : 'Error',
    details,
    startedAt: now,
    finishedAt: now,
  });
}

export function createPowerSyncActivities(deps: ConductorDeps) {
  const { instances } = deps;
  const once = onceWriter(deps);
  return {
    /** The instances (not deleted) whose host is one of `hosts`. */
    async instancesOnHosts(input: { hosts: string[] }): Promise<InstanceRecord[]> {
      const { hosts } = parseOrInvalid(z.object({ hosts: z.array(HostNameSchema).max(1000) }), input);
      const lists = await Promise.all(hosts.map((host) => instances.list({ host })));
      return lists.flat().filter((i) => i.vmState !== VmState.Deleted);
    },

    /**
     * Takes the instance for a stop decided by the power-state sync: task state `powering-off` held by the
     * reconciler and a `stop` action, only when it is still as read. `taken: false` otherwise (nothing
     * written). Idempotent: a retry finds it taken by the same owner.
     */
    async beginPowerSync(input: z.input<typeof BeginSchema>): Promise<{ taken: boolean; actionId: string | null }> {
      const req = parseOrInvalid(BeginSchema, input);
      return once(async (repo) => {
        const current = await repo.get(req.instanceId);
        const mine = current.taskState === TaskState.PoweringOff && current.taskOwner === req.owner;
        if (!mine) {
          if (!unchanged(current, req)) return { taken: false, actionId: null };
          try {
            await repo.update(
              req.instanceId,
              { taskState: TaskState.PoweringOff, taskOwner: req.owner },
              { taskState: null, vmState: req.expectVmState, method: 'syncPowerState' }
            );
          } catch {
            return { taken: false, actionId: null };
          }
        }
        const { actionId } = await repo.startAction(req.instanceId, 'stop', req.requestId);
        return { taken: true, actionId };
      });
    },

    /**
     * Leaves the instance the sync took `stopped` with the guest's power state (or, when its host did not
     * answer, as it was), the task state cleared, the decision's event on the `stop` action.
     */
    async finishPowerSync(input: z.input<typeof FinishSchema>): Promise<InstanceRecord> {
      const req = parseOrInvalid(FinishSchema, input);
      return once(async (repo) => {
        const current = await repo.get(req.instanceId);
        if (current.taskState === null) return current; // a retry after the first answer was lost
        const stopped = req.powerState !== null;
        const record = await repo.update(
          req.instanceId,
          stopped ? { vmState: VmState.Stopped, powerState: req.powerState!, taskState: null } : { taskState: null },
          { taskState: TaskState.PoweringOff, owner: req.owner, method: 'syncPowerState' }
        );
        await event(repo, req.actionId, record.host, req.details, stopped);
        await repo.finishAction(req.actionId, stopped ? 'Success' : 'Error');
        return record;
      });
    },

    /** Copies the guest's power state into the record (only when it is still as read), with its event. */
    async recordPowerState(input: z.input<typeof RecordSchema>): Promise<{ recorded: boolean }> {
      const req = parseOrInvalid(RecordSchema, input);
      return once(async (repo) => {
        const current = await repo.get(req.instanceId);
        if (current.powerState === req.powerState && current.host === req.host) return { recorded: true };
        if (!unchanged(current, req)) return { recorded: false };
        try {
          await repo.update(
            req.instanceId,
            { powerState: req.powerState },
            { taskState: null, vmState: req.expectVmState, method: 'syncPowerState' }
          );
        } catch {
          return { recorded: false };
        }
        const { actionId } = await repo.startAction(req.instanceId, 'syncPowerState', req.requestId);
        await event(repo, actionId, req.host, req.details);
        await repo.finishAction(actionId, 'Success');
        return { recorded: true };
      });
    },
  };
}

export type PowerSyncActivities = ReturnType<typeof createPowerSyncActivities>;
