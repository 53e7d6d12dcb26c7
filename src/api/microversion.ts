/**
 * Compute microversions (nova/api/openstack/wsgi.py): read from `OpenStack-API-Version: compute X.Y`
 * first, then the legacy `X-OpenStack-Nova-API-Version`; none means 2.1, `latest` the maximum; a
 * malformed value is 400 and one outside [2.1, 2.60] 406. Every compute response echoes it with Vary.
 */
import { ApiFault, badRequest } from './errors';

export interface Microversion {
  major: number;
  minor: number;
}

export const MIN_VERSION: Microversion = { major: 2, minor: 1 };
/** Below 2.64 (server groups' policy), 2.68, 2.75 and 2.95 (evacuate ends stopped): see the README. */
export const MAX_VERSION: Microversion = { major: 2, minor: 60 };

export const format = (v: Microversion): string => `${v.major}.${v.minor}`;

/** v is at least `min` ("2.47"). */
export function atLeast(v: Microversion, min: string): boolean {
  const [major, minor] = min.split('.').map(Number) as [number, number];
  return v.major > major || (v.major === major && v.minor >= minor);
}

function compare(a: Microversion, b: Microversion): number {
  return a.major - b.major || a.minor - b.minor;
}

function parseValue(value: string): Microversion {
  const v = value.trim().toLowerCase();
  if (v === 'latest') return MAX_VERSION;
  const m = /^(\d+)\.(\d+)$/.exec(v);
  if (!m) throw badRequest(`Invalid format of microversion: '${value}'. It must be of the form 'X.Y' or 'latest'.`);
  const parsed = { major: Number(m[1]), minor: Number(m[2]) };
  if (compare(parsed, MIN_VERSION) < 0 || compare(parsed, MAX_VERSION) > 0)
    throw new ApiFault(
      406,
      `Version ${format(parsed)} is not supported by the API. Minimum is ${format(MIN_VERSION)} and maximum is ${format(MAX_VERSION)}.`
    );
  return parsed;
}

/** The request's compute microversion from its headers (lower-cased names, as Node gives them). */
export function requestedVersion(headers: Record<string, string | string[] | undefined>): Microversion {
  const one = (h: string | string[] | undefined) => (Array.isArray(h) ? h.join(',') : h);
  const modern = one(headers['openstack-api-version']);
  if (modern !== undefined) {
    for (const part of modern.split(',')) {
      const [service, ...rest] = part.trim().split(/\s+/);
      if (service?.toLowerCase() === 'compute') {
        if (rest.length !== 1) throw badRequest(`Invalid format of microversion header: '${part.trim()}'.`);
        return parseValue(rest[0]!);
      }
    }
  }
  const legacy = one(headers['x-openstack-nova-api-version']);
  if (legacy !== undefined) return parseValue(legacy);
  return MIN_VERSION;
}

export function versionHeaders(v: Microversion): Record<string, string> {
  return {
    'OpenStack-API-Version': `compute ${format(v)}`,
    'X-OpenStack-Nova-API-Version': format(v),
    Vary: 'OpenStack-API-Version, X-OpenStack-Nova-API-Version',
  };
}
