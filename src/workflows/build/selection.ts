/** The scheduler request of a build (one instance, or a multi-create's batch) from its validated input. */
import type { Flavor, Image } from '../../domain/catalogue';
import type { RequestSpecInput } from '../../domain/request-spec';
import type { BuildInstanceRequest } from '../../domain/schemas';

/** Hosts a build may try: one when a host is requested or forced (NOTE(nova): never rescheduled elsewhere). */
export function buildAttempts(req: BuildInstanceRequest): number {
  return (req.host ?? req.forceHost) ? 1 : req.maxAttempts;
}

export function selectionRequest(
  req: BuildInstanceRequest,
  instanceIds: string[],
  flavor: Flavor,
  image: Image
): RequestSpecInput {
  return {
    instanceIds,
    flavor,
    image,
    availabilityZone: req.availabilityZone,
    schedulerHints: req.schedulerHints,
    requestedHost: req.host,
    forcedHost: req.forceHost,
    maxAttempts: buildAttempts(req),
  };
}
