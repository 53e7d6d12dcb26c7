/**
 * The body of Nova's `unshelve` server action, by microversion (nova/api/openstack/compute/shelve.py):
 * below 2.77 whatever it holds is ignored; from 2.77 `null` or `{"availability_zone": <name>}`; from 2.91
 * `null` or an object with an optional `availability_zone` (a name or null) and an optional `host`. The
 * workflow's input from it, checked as Nova's compute API does: an unknown host 400, a zone no host is in
 * 400, a host outside the zone asked 409.
 */
import type { FastifyRequest } from 'fastify';

import type { ApiDeps } from '../deps';
import { badRequest, conflict } from '../errors';
import { atLeast } from '../microversion';

const invalid = (why: string) => badRequest(`Invalid input for field/attribute unshelve. ${why}`);

function parseBody(req: FastifyRequest, arg: unknown): { availabilityZone?: string; host?: string } {
  if (!atLeast(req.apiVersion, '2.77') || arg === null) return {};
  if (typeof arg !== 'object' || Array.isArray(arg)) throw invalid('Value must be an object or null');
  const body = arg as Record<string, unknown>;
  const allowed = atLeast(req.apiVersion, '2.91') ? ['availability_zone', 'host'] : ['availability_zone'];
  const extra = Object.keys(body).find((k) => !allowed.includes(k));
  if (extra !== undefined) throw invalid(`Additional properties are not allowed ('${extra}' was unexpected)`);
  const az = body.availability_zone;
  const host = body.host;
  // NOTE(nova): `"availability_zone": null` (2.91) unpins the instance's zone in Nova (any zone); here it
  // asks no zone, and the instance stays in its own.
  if (!atLeast(req.apiVersion, '2.91') && typeof az !== 'string')
    throw invalid("'availability_zone' is a required property");
  if (az !== undefined && az !== null && (typeof az !== 'string' || az.length === 0 || az.length > 255))
    throw invalid('availability_zone must be a string of 1-255 characters');
  if (host !== undefined && (typeof host !== 'string' || host.length === 0))
    throw invalid('host must be a non-empty string');
  return {
    ...(typeof az === 'string' ? { availabilityZone: az } : {}),
    ...(typeof host === 'string' ? { host } : {}),
  };
}

/** The `unshelve` workflow's input (without the instance) from the action's body; 400 or 409 as Nova. */
export async function unshelveInput(
  deps: ApiDeps,
  req: FastifyRequest,
  arg: unknown
): Promise<{ availabilityZone?: string; host?: string }> {
  const input = parseBody(req, arg);
  if (input.availabilityZone === undefined && input.host === undefined) return input;
  const hosts = await deps.hostStates();
  if (input.availabilityZone !== undefined && !hosts.some((h) => h.availabilityZone === input.availabilityZone))
    throw badRequest('The requested availability zone is not available');
  if (input.host !== undefined) {
    const found = hosts.find((h) => h.host === input.host);
    if (!found) throw badRequest(`Compute host ${input.host} could not be found.`);
    if (input.availabilityZone !== undefined && found.availabilityZone !== input.availabilityZone)
      throw conflict(`Host "${input.host}" is not in the availability zone "${input.availabilityZone}".`);
  }
  return input;
}
