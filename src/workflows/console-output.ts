/**
 * consoleOutput: the guest's console log (Nova's `console log show`, os-getConsoleOutput), read from its
 * host through the host's own queue (the compute activity getConsoleOutput). Read-only: no lock, no
 * action, nothing written. Fails InstanceNotFound (no such instance, or no guest of it on its host),
 * InstanceInvalidState (the instance has no host: Nova's InstanceNotReady), ComputeHostUnavailable (its
 * host did not answer).
 */
import type { ConsoleOutputInput } from '../domain/schemas';
import { ConsoleOutputInputSchema } from '../domain/schemas';
import { FailureType } from '../domain/errors';
import { parseInput, refusalFailure } from './lib/failures';
import { computeOn, conductor } from './lib/proxies';
import { noHost } from './lib/failures';
import { hostFailure } from './stop';

export interface ConsoleOutputResult {
  instanceId: string;
  host: string;
  /** The console's text, one newline-terminated line each. */
  output: string;
}

export async function consoleOutput(input: ConsoleOutputInput): Promise<ConsoleOutputResult> {
  const { instanceId, lines, timeouts } = parseInput(ConsoleOutputInputSchema, input);
  const instance = await conductor.getInstance({ instanceId }).catch((err: unknown) => {
    throw refusalFailure(err, FailureType.InstanceNotFound);
  });
  // NOTE(nova): get_console_output is check_instance_host'ed: an instance with no host is refused.
  const host = instance.host;
  if (host === null) throw noHost(instance, 'consoleOutput');
  const { output } = await computeOn(host, timeouts)
    .short.getConsoleOutput({ instanceId, ...(lines === undefined ? {} : { lines }) })
    .catch((err: unknown) => {
      const unavailable = hostFailure(err, host);
      if (unavailable !== err) throw unavailable;
      // The host's typed answer (InstanceNotFound: no guest of it there), as this workflow's failure.
      throw refusalFailure(err, FailureType.OperationFailed);
    });
  return { instanceId, host, output };
}
