/** The API app over a temporary store, for inject tests (no socket), with tokens for its users. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';

import { buildApp } from '../../src/api/app';
import type { ApiDeps } from '../../src/api/deps';
import type { UsersFile } from '../../src/api/users';
import { DEFAULT_CATALOGUE } from '../../src/domain/catalogue';
import type { HostState } from '../../src/domain/host';
import { createApiRepository } from '../../src/store/api';
import type { Store } from '../../src/store/db';
import { migrateToLatest, openStore } from '../../src/store/db';
import { createInstanceRepository } from '../../src/store/instances';

export const TEST_USERS: UsersFile = {
  tokenKey: Buffer.alloc(32, 7).toString('base64'),
  users: [
    { name: 'admin', password: 'admin-secret', project: 'admin', roles: ['admin', 'member', 'reader'] },
    { name: 'demo', password: 'demo-secret', project: 'demo', roles: ['member', 'reader'] },
    { name: 'other', password: 'other-secret', project: 'other', roles: ['member', 'reader'] },
    { name: 'watcher', password: 'watcher-secret', project: 'demo', roles: ['reader'] },
  ],
};

export interface TestApi {
  app: FastifyInstance;
  deps: ApiDeps;
  store: Store;
  close(): Promise<void>;
  /** A token of that user (password from TEST_USERS). */
  token(user: string): Promise<string>;
}

export async function openTestApi(
  overrides: Partial<ApiDeps> & { store?: Store; hosts?: HostState[] } = {}
): Promise<TestApi> {
  const dir = mkdtempSync(path.join(tmpdir(), 'conductor-api-'));
  const store = overrides.store ?? (await openStore({ sqlitePath: path.join(dir, 'conductor.sqlite') }));
  await migrateToLatest(store);
  const deps: ApiDeps = {
    instances: createInstanceRepository(store),
    api: createApiRepository(store),
    catalogue: DEFAULT_CATALOGUE,
    users: TEST_USERS,
    publicUrl: 'http://127.0.0.1:8774',
    tokenTtlSeconds: 3600,
    temporal: () => Promise.reject<Client>(new Error('no Temporal in this test')),
    hostStates: () => Promise.resolve(overrides.hosts ?? []),
    ...overrides,
  };
  const app = await buildApp(deps);
  return {
    app,
    deps,
    store,
    async close() {
      await app.close();
      if (!overrides.store) await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
    async token(user: string) {
      const u = TEST_USERS.users.find((x) => x.name === user)!;
      const res = await app.inject({
        method: 'POST',
        url: '/identity/v3/auth/tokens',
        payload: {
          auth: {
            identity: {
              methods: ['password'],
              password: { user: { name: u.name, domain: { name: 'Default' }, password: u.password } },
            },
            scope: { project: { name: u.project, domain: { name: 'Default' } } },
          },
        },
      });
      if (res.statusCode !== 201) throw new Error(`token for ${user}: ${res.statusCode} ${res.body}`);
      return res.headers['x-subject-token'] as string;
    },
  };
}
