/** Shared pieces of the compute routes: links, the caller's roles, paging, time formats. */
import type { FastifyRequest } from 'fastify';

import type { ApiDeps } from '../deps';
import { badRequest, forbidden } from '../errors';
import type { TokenClaims } from '../tokens';
import { isAdmin } from '../tokens';

export const computeBase = (deps: ApiDeps) => `${deps.publicUrl}/compute`;

/** Nova's self and bookmark links of a resource (`servers/<id>`). */
export function links(deps: ApiDeps, path: string) {
  const base = computeBase(deps);
  return [
    { rel: 'self', href: `${base}/v2.1/${path}` },
    { rel: 'bookmark', href: `${base}/${path}` },
  ];
}

export function caller(req: FastifyRequest): TokenClaims {
  if (!req.auth) throw new Error('route without authentication'); // the onRequest hook guarantees it
  return req.auth;
}

/** Admin-only APIs: 403 in Nova's envelope otherwise. */
export function requireAdmin(req: FastifyRequest, rule = 'this operation'): TokenClaims {
  const c = caller(req);
  if (!isAdmin(c)) throw forbidden(`Policy doesn't allow ${rule} to be performed.`);
  return c;
}

/** Writes need the member (or admin) role: a reader may only read. */
export function requireMember(req: FastifyRequest): TokenClaims {
  const c = caller(req);
  if (!c.roles.includes('member') && !isAdmin(c))
    throw forbidden('Policy does not allow this operation to be performed.');
  return c;
}

/** Nova's times in bodies: ISO-8601 without fractions, with Z (servers) or without zone (other APIs). */
export const isoZ = (iso: string): string => iso.replace(/\.\d+Z$/, 'Z');
export const isoNaive = (iso: string): string => iso.replace(/Z$/, '').replace(/\.(\d{1,6})\d*$/, '.$1');

/** The `limit` query parameter: a non-negative integer (Nova's common.get_limit_and_marker). */
export function parseLimit(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw badRequest(`Invalid input for query parameters limit. Value: ${value}.`);
  return Number(value);
}

/** Pages `items` after the marker (by `key`), at most `limit`; `markerMissing` when the marker is unknown. */
export function page<T>(items: T[], key: (t: T) => string, limit: number | undefined, marker: string | undefined) {
  let rest = items;
  if (marker !== undefined) {
    const at = items.findIndex((i) => key(i) === marker);
    if (at < 0) return { items: [], markerMissing: true, more: false };
    rest = items.slice(at + 1);
  }
  const more = limit !== undefined && rest.length > limit;
  return { items: limit === undefined ? rest : rest.slice(0, limit), markerMissing: false, more };
}
