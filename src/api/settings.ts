/** The API's settings derived from the environment (src/workers/config.ts reads it). */
import path from 'node:path';

import type { Env } from '../workers/config';

/** The users file: API_USERS_FILE, default $DATA_DIR/api-users.json. */
export const usersFile = (env: Env): string => env.API_USERS_FILE ?? path.join(env.DATA_DIR, 'api-users.json');

/** The address clients reach the API at (catalog and links), without a trailing slash. */
export const publicUrl = (env: Env): string =>
  (env.API_PUBLIC_URL ?? `http://${env.API_HOST}:${env.API_PORT}`).replace(/\/+$/, '');

/** What `make start` prints about the API: its address, the admin password, a clouds.yaml to paste. */
export function apiReadyLines(env: Env, adminPassword: string | undefined): string {
  const url = publicUrl(env);
  return [
    `  OpenStack API     ${url} (identity ${url}/identity/v3, compute ${url}/compute/v2.1, OpenAPI ${url}/openapi.json)`,
    `  API users         ${usersFile(env)}${adminPassword ? ` (admin password: ${adminPassword})` : ''}`,
    `  openstack CLI     export OS_AUTH_URL=${url}/identity/v3 OS_USERNAME=admin OS_PASSWORD=<above> OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3`,
    '',
  ].join('\n');
}
