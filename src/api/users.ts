/**
 * Keystone-lite's users: a small JSON file (API_USERS_FILE, default $DATA_DIR/api-users.json) with the
 * token signing key and, per user, a password, a project and roles (admin, member, reader). Made on first
 * start with an `admin` user (project admin, every role) and a `demo` user (project demo, member and
 * reader), each with a generated password; the file is readable by its owner only.
 * NOTE(nova): this is a token issuer for this API, not Keystone: no domains but Default, no catalog
 * management, no identity admin API.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { z } from 'zod';

export const ROLES = ['admin', 'member', 'reader'] as const;
export type Role = (typeof ROLES)[number];

const UserSchema = z
  .object({
    name: z.string().min(1).max(255),
    password: z.string().min(8).max(255),
    project: z.string().min(1).max(255),
    roles: z.array(z.enum(ROLES)).min(1),
  })
  .strict();

export const UsersFileSchema = z
  .object({
    /** HMAC-SHA256 key of the tokens (base64, at least 32 bytes). */
    tokenKey: z.string().min(44),
    users: z.array(UserSchema).min(1),
  })
  .strict();
export type UsersFile = z.infer<typeof UsersFileSchema>;
export type ApiUser = z.infer<typeof UserSchema>;

const secret = (bytes: number) => randomBytes(bytes).toString('base64url');

export function defaultUsers(): UsersFile {
  return {
    tokenKey: randomBytes(32).toString('base64'),
    users: [
      { name: 'admin', password: secret(12), project: 'admin', roles: ['admin', 'member', 'reader'] },
      { name: 'demo', password: secret(12), project: 'demo', roles: ['member', 'reader'] },
    ],
  };
}

/** Reads the users file, creating it (mode 0600) with generated passwords when absent; `created` says which. */
export function loadOrCreateUsers(file: string): { users: UsersFile; created: boolean } {
  if (!existsSync(file)) {
    const users = defaultUsers();
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(users, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    return { users, created: true };
  }
  const parsed = UsersFileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`API users file ${file}: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return { users: parsed.data, created: false };
}

/** The user with that name and password; undefined otherwise (the comparison takes the same time either way). */
export function authenticate(users: UsersFile, name: string, password: string): ApiUser | undefined {
  const user = users.users.find((u) => u.name === name);
  const given = Buffer.from(password);
  const expected = Buffer.from(user?.password ?? '\u0000'.repeat(given.length || 1));
  const same = given.length === expected.length && timingSafeEqual(given, expected);
  return user && same ? user : undefined;
}
