import type { HostSpec } from '../domain/fleet';
import { HostSpecSchema } from '../domain/fleet';
import { parseInput } from './lib/failures';
import { scheduler } from './lib/proxies';

/**
 * A compute host reports its inventory to placement at start-up through this workflow: the compute
 * process holds no database credentials, the scheduler worker does. Idempotent.
 */
export async function registerHost(input: HostSpec): Promise<HostSpec> {
  const spec = parseInput(HostSpecSchema, input);
  return scheduler.registerHost(spec);
}
