/**
 * setHostService: an operator's switch on a compute host's service, Nova's `openstack compute service set
 * --disable [--disable-reason]` / `--enable` and `--down` / `--up` (forced_down), on the conductor queue
 * so the stock `temporal` CLI can run it as well as `npm run conductor -- host …`.
 *
 * - `disabled: true` (with an optional reason): the scheduler's ComputeFilter no longer picks the host
 *   for new instances; what runs there stays. `disabled: false` enables it and clears the reason.
 * - `forcedDown: true`: the host is reported down whatever its liveness (its worker may still run), so
 *   `evacuate` may take its instances and the scheduler sends it nothing; `false` lets liveness decide.
 *
 * The flags are placement's (scheduler activities), read afresh by every scheduling pass and every
 * `isHostUp`, so they hold from the next call on. Returns the host's service state as the scheduler now
 * sees it. An unknown host is InvalidRequest naming `host`, with nothing changed; setting a flag to what
 * it is already is a no-op (a retried request succeeds).
 */
import { log } from '@temporalio/workflow';

import type { HostUpResult } from '../activities/scheduler';
import { FailureType, InvalidRequest } from '../domain/errors';
import type { SetHostServiceInput } from '../domain/schemas';
import { SetHostServiceInputSchema } from '../domain/schemas';
import { parseInput, refusalFailure } from './lib/failures';
import { tagInstance } from './lib/instance-attributes';
import { scheduler } from './lib/proxies';

export type HostService = HostUpResult;

export async function setHostService(input: SetHostServiceInput): Promise<HostService> {
  const { host, disabled, disabledReason, forcedDown } = parseInput(SetHostServiceInputSchema, input);
  tagInstance({ host });
  // An unknown host is refused here, before either flag is written.
  const before = await scheduler.isHostUp({ host }).catch(refuse);
  if (!before.known) {
    const unknown = new InvalidRequest('host', `no compute host named '${host}' is registered`);
    throw refusalFailure(unknown);
  }
  if (disabled !== undefined) {
    const reason = disabledReason === undefined ? {} : { reason: disabledReason };
    await scheduler.setHostDisabled({ host, value: disabled, ...reason }).catch(refuse);
  }
  if (forcedDown !== undefined) await scheduler.setHostForcedDown({ host, value: forcedDown }).catch(refuse);
  if (disabled === undefined && forcedDown === undefined) return before;
  const after = await scheduler.isHostUp({ host }).catch(refuse);
  log.info('host service set', { host, enabled: after.enabled, forcedDown: after.forcedDown, up: after.up });
  return after;
}

/** An activity's failure as this workflow's typed failure. */
function refuse(err: unknown): never {
  throw refusalFailure(err, FailureType.OperationFailed);
}
