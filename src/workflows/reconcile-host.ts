/**
 * reconcileHost: what a compute host does when it comes back (Nova's _destroy_evacuated_instances at
 * nova-compute start-up), made durable. The compute worker starts it, on the conductor queue, right after
 * it has registered: the compute holds no database credentials, so the conductor and the scheduler do the
 * bookkeeping and the host only lists and destroys its own guests.
 *
 * 1. The host's guests (compute activity on its own queue: the worker that started this is polling it)
 *    and the consumers of its allocations (scheduler).
 * 2. Of those instances, the ones evacuated away from this host: an evacuation from it is `done` and the
 *    instance now lives elsewhere (conductor). In-progress evacuations are left alone: one may still fail
 *    and leave the instance here.
 * 3. For each: its guest here destroyed, its allocation on this host released (the instance keeps the one
 *    on its new host), the migration marked `completed`, and a `compute_destroy_evacuated_instance` event
 *    recorded on the instance's evacuate action.
 *
 * 4. Of the same instances, those that are gone (deleted, or with no record): the guest here destroyed
 *    and every allocation on this host released, with a `compute_destroy_deleted_instance` event on the
 *    instance's delete action.
 *    This finishes a local delete (Nova's _local_delete while the host was down) and any guest a closed
 *    operation left behind
 *    (NOTE(nova): _cleanup_running_deleted_instances, with `running_deleted_instance_action = reap`).
 *    Likewise instances that live on another host with nothing under way that involves this one (a
 *    failed attempt's guest left on a host that was down): `compute_destroy_stray_guest`.
 *
 * Idempotent: a run that died half-way is simply run again (every step is).
 */

import { log } from '@temporalio/workflow';

import type { ReconcileHostInput } from '../domain/schemas';
import { ReconcileHostInputSchema } from '../domain/schemas';
import { parseInput } from './lib/failures';
import { tagInstance } from './lib/instance-attributes';
import { computeOn, conductor, scheduler } from './lib/proxies';

export interface ReconciledInstance {
  instanceId: string;
  migrationId: string;
  /** Where the instance lives now. */
  currentHost: string | null;
  guestDestroyed: boolean;
  allocationReleased: boolean;
}

export interface DeletedInstanceCleaned {
  instanceId: string;
  guestDestroyed: boolean;
  allocationReleased: boolean;
}

export interface ReconcileHostResult {
  host: string;
  /** Guests the host had when it came back. */
  guests: number;
  /** The evacuated instances cleaned up. */
  cleaned: ReconciledInstance[];
  /** The deleted (or unknown) instances whose guest or allocation was left here, cleaned up. */
  deleted?: DeletedInstanceCleaned[];
  /** Instances living elsewhere whose guest or allocation was left here (a failed attempt's), cleaned up. */
  strays?: DeletedInstanceCleaned[];
}

export async function reconcileHost(input: ReconcileHostInput): Promise<ReconcileHostResult> {
  const { host, timeouts } = parseInput(ReconcileHostInputSchema, input);
  tagInstance({ host });
  const compute = computeOn(host, timeouts);
  const [{ guests }, { consumerIds }] = await Promise.all([
    compute.short.listGuests(),
    scheduler.listHostConsumers({ host }),
  ]);
  const guestIds = new Set(guests.map((g) => g.instanceId));
  const candidates = [...new Set([...guestIds, ...consumerIds])].sort();
  const evacuated =
    candidates.length === 0 ? [] : await conductor.findEvacuatedInstances({ host, instanceIds: candidates });

  const cleaned: ReconciledInstance[] = [];
  for (const { instanceId, migrationId, currentHost, actionId } of evacuated) {
    const startedAt = new Date().toISOString();
    const guestDestroyed = guestIds.has(instanceId)
      ? (await compute.short.destroyInstance({ instanceId })).destroyed
      : false;
    const { released } = await scheduler.releaseAllocations({ consumerId: instanceId, host });
    await conductor.updateEvacuation({ migrationId, status: 'completed', expectStatus: ['done', 'completed'] });
    if (actionId !== null) {
      await conductor.recordEvent({
        actionId,
        event: 'compute_destroy_evacuated_instance',
        attempt: 1,
        host,
        result: 'Success',
        details: `guest destroyed: ${guestDestroyed ? 'yes' : 'none was left'}; source allocation released: ${released > 0 ? 'yes' : 'none was left'}`,
        startedAt,
        finishedAt: new Date().toISOString(),
      });
    }
    cleaned.push({ instanceId, migrationId, currentHost, guestDestroyed, allocationReleased: released > 0 });
  }

  const evacuatedIds = new Set(cleaned.map((c) => c.instanceId));
  const rest = candidates.filter((id) => !evacuatedIds.has(id));
  const gone = rest.length === 0 ? [] : await conductor.findDeletedInstances({ host, instanceIds: rest });
  const deleted: DeletedInstanceCleaned[] = [];
  const strays: DeletedInstanceCleaned[] = [];
  for (const { instanceId, actionId, reason } of gone) {
    const elsewhere = reason === 'elsewhere';
    const startedAt = new Date().toISOString();
    const guestDestroyed = guestIds.has(instanceId)
      ? (await compute.short.destroyInstance({ instanceId })).destroyed
      : false;
    const { released } = await scheduler.releaseAllocations({ consumerId: instanceId, host });
    if (actionId !== null) {
      await conductor.recordEvent({
        actionId,
        event: elsewhere ? 'compute_destroy_stray_guest' : 'compute_destroy_deleted_instance',
        attempt: 1,
        host,
        result: 'Success',
        details: `${elsewhere ? 'the instance lives elsewhere' : 'the instance is deleted'}: guest destroyed: ${guestDestroyed ? 'yes' : 'none was left'}; allocation here released: ${released > 0 ? 'yes' : 'none was left'}`,
        startedAt,
        finishedAt: new Date().toISOString(),
      });
    }
    (elsewhere ? strays : deleted).push({ instanceId, guestDestroyed, allocationReleased: released > 0 });
  }
  log.info('host reconciled', {
    host,
    guests: guestIds.size,
    evacuated: cleaned.length,
    deleted: deleted.length,
    strays: strays.length,
  });
  return { host, guests: guestIds.size, cleaned, deleted, ...(strays.length > 0 ? { strays } : {}) };
}
