/**
 * Stateless tokens: `<base64url payload>.<base64url HMAC-SHA256>`, carrying the user, the project, the
 * roles and the expiry, checked by any API process that has the key (no token table, no shared state).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import { z } from 'zod';

import { keystoneId } from './ids';
import { ROLES } from './users';
import type { ApiUser } from './users';

const ClaimsSchema = z.object({
  userId: z.string(),
  userName: z.string(),
  projectId: z.string(),
  projectName: z.string(),
  roles: z.array(z.enum(ROLES)),
  issuedAt: z.string(),
  expiresAt: z.string(),
  auditId: z.string(),
});
export type TokenClaims = z.infer<typeof ClaimsSchema>;

export function claimsFor(user: ApiUser, now: Date, ttlSeconds: number): TokenClaims {
  return {
    userId: keystoneId('user', user.name),
    userName: user.name,
    projectId: keystoneId('project', user.project),
    projectName: user.project,
    roles: user.roles,
    issuedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
    auditId: randomBytes(16).toString('base64url').slice(0, 22),
  };
}

const sign = (key: string, data: string) =>
  createHmac('sha256', Buffer.from(key, 'base64')).update(data).digest('base64url');

export function issueToken(key: string, claims: TokenClaims): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${payload}.${sign(key, payload)}`;
}

/** The token's claims when its signature holds and it has not expired; undefined otherwise. */
export function verifyToken(key: string, token: string, now: Date): TokenClaims | undefined {
  const [payload, mac, extra] = token.split('.');
  if (!payload || !mac || extra !== undefined) return undefined;
  const expected = Buffer.from(sign(key, payload));
  const given = Buffer.from(mac);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
  let claims: TokenClaims;
  try {
    claims = ClaimsSchema.parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
  } catch {
    return undefined;
  }
  return Date.parse(claims.expiresAt) > now.getTime() ? claims : undefined;
}

export const isAdmin = (c: TokenClaims): boolean => c.roles.includes('admin');
