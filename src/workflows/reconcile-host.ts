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

export interface ReconcileHostResult {
  host: string;
  /** Guests the host had when it came back. */
  guests: number;
  /** The evacuated instances cleaned up. */
  cleaned: ReconciledInstance[];
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
  log.info('host reconciled', { host, guests: guestIds.size, evacuated: cleaned.length });
  return { host, guests: guestIds.size, cleaned };
}
