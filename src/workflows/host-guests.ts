/**
 * hostGuests: asks compute hosts, each on its own queue, which guests they run (read-only). The audit
 * runs it: the compute processes hold no store credentials, so what a host runs is only known by asking
 * it. A host that does not answer within the clean-up bound (a down or hung host) is reported as null.
 */
import { log } from '@temporalio/workflow';

import type { HostGuestsInput } from '../domain/schemas';
import { HostGuestsInputSchema } from '../domain/schemas';
import { failureMessage, parseInput } from './lib/failures';
import { computeOn } from './lib/proxies';

/** Per host: the instance ids of its guests, or null when the host did not answer. */
export type HostGuestsResult = Record<string, string[] | null>;

export async function hostGuests(input: HostGuestsInput): Promise<HostGuestsResult> {
  const { hosts, timeouts } = parseInput(HostGuestsInputSchema, input);
  const answers = await Promise.all(
    hosts.map((host) =>
      computeOn(host, timeouts)
        .cleanup.listGuests()
        .then(
          ({ guests }) => guests.map((g) => g.instanceId).sort(),
          (err: unknown) => {
            log.warn('a compute host did not report its guests', { host, error: failureMessage(err) });
            return null;
          }
        )
    )
  );
  return Object.fromEntries(hosts.map((host, i) => [host, answers[i] ?? null]));
}
