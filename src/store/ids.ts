/**
 * Deterministic identifiers for things the conductor keys by name (RFC 4122 UUIDv5): the API shows them,
 * and the versioned notifications carry them (src/store/notifications.ts).
 */
import { createHash } from 'node:crypto';

/** The namespace of every id this API derives (a fixed random UUID). */
const NAMESPACE = 'f3a1c2d4-5b6e-4f70-8a91-b2c3d4e5f607';

export function uuid5(name: string, namespace = NAMESPACE): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const h = hash.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** An image's id: the UUIDv5 of its catalogue name. */
export const imageId = (name: string): string => uuid5(`image:${name}`);
/** A server group's id: the UUIDv5 of its name (the conductor keys groups by name). */
export const serverGroupId = (name: string): string => uuid5(`server-group:${name}`);
/** A compute service's id at 2.53 and later. */
export const serviceId = (host: string): string => uuid5(`service:${host}`);
/** A hypervisor's id at 2.53 and later. */
export const hypervisorId = (host: string): string => uuid5(`hypervisor:${host}`);
/** Keystone-style ids (32 hex digits) of users and projects, derived from their names. */
export const keystoneId = (kind: 'user' | 'project' | 'role', name: string): string =>
  uuid5(`${kind}:${name}`).replace(/-/g, '');
