/**
 * Scheduler activities the reconciler reads placement through: the hosts (up or down, as the scheduler
 * sees them), the allocations on a page of hosts, and the allocations of many consumers at once.
 */
import { z } from 'zod';

import type { Resources } from '../../domain/resources';
import { HostNameSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { PlacementRepository } from '../../store/placement';
import type { HostLiveness } from './liveness';

export function createReconcileReads({
  placement,
  liveness,
}: {
  placement: PlacementRepository;
  liveness: HostLiveness;
}) {
  return {
    /** Every compute host, sorted, with whether it is up (`up = !forcedDown && live`). */
    async listHostsUp(): Promise<Array<{ host: string; up: boolean }>> {
      return (await placement.listHostStates((h) => liveness.isUp(h))).map((h) => ({ host: h.host, up: h.up }));
    },

    /** The allocations on each of these hosts. */
    async allocationsOnHosts(input: {
      hosts: string[];
    }): Promise<Array<{ consumerId: string; host: string; resources: Resources }>> {
      const { hosts } = parseOrInvalid(z.object({ hosts: z.array(HostNameSchema).max(1000) }), input);
      const out = [];
      for (const host of hosts)
        for (const a of await placement.allocationsByHost(host))
          out.push({ consumerId: a.consumerId, host, resources: a.resources });
      return out;
    },

    /** Where each of these consumers holds allocations. */
    async allocationsOf(input: {
      consumerIds: string[];
    }): Promise<Record<string, Array<{ host: string; resources: Resources }>>> {
      const { consumerIds } = parseOrInvalid(
        z.object({ consumerIds: z.array(z.string().min(1).max(64)).max(10_000) }),
        input
      );
      const out: Record<string, Array<{ host: string; resources: Resources }>> = {};
      for (const id of [...new Set(consumerIds)]) out[id] = await placement.getAllocations(id);
      return out;
    },
  };
}
