/**
 * `npm run api`: the OpenStack-compatible API process (started by `make start` and `make cluster` beside
 * the workers). Listens on API_HOST:API_PORT (127.0.0.1:8774); reads the store as a client (the workers
 * own the schema) and starts the conductor's workflows through Temporal, as the CLIs do.
 */
import { Client } from '@temporalio/client';

import { LIVENESS_REFRESH_MS, TaskQueuePollerLiveness } from '../activities/scheduler/liveness';
import { createApiRepository } from '../store/api';
import { openMigratedStoreWhenReady } from '../store/db';
import { createInstanceRepository } from '../store/instances';
import { createPlacementRepository } from '../store/placement';
import { loadCatalogue } from '../workers/catalogue-file';
import { dataConverterFor } from '../workers/codec';
import { loadEnv, sqlitePath } from '../workers/config';
import { connectClient } from '../workers/connection';
import { buildApp } from './app';
import { loadOrCreateUsers } from './users';

import { publicUrl, usersFile } from './settings';
import { notificationContext } from '../store/notifications';

async function main(): Promise<void> {
  const env = loadEnv();
  const { users } = loadOrCreateUsers(usersFile(env));
  const store = await openMigratedStoreWhenReady({
    databaseUrl: env.DATABASE_URL,
    sqlitePath: sqlitePath(env),
    poolSize: 4,
  });
  // Notifications this process writes name it as their publisher (src/store/notifications.ts).
  store.notifications = notificationContext(loadCatalogue(env.CATALOGUE_FILE));
  const connection = await connectClient(env);
  const client = new Client({ connection, namespace: env.TEMPORAL_NAMESPACE, dataConverter: dataConverterFor(env) });
  const placement = createPlacementRepository(store);
  const liveness = new TaskQueuePollerLiveness(
    connection,
    env.TEMPORAL_NAMESPACE,
    async () => (await placement.listHostStates(() => true)).map((h) => h.host),
    env.HOST_DOWN_AFTER_SECONDS * 1000
  );
  await liveness.start(LIVENESS_REFRESH_MS, (err) =>
    console.error(`api: liveness refresh failed: ${(err as Error).message}`)
  );
  const app = await buildApp({
    instances: createInstanceRepository(store),
    api: createApiRepository(store),
    catalogue: loadCatalogue(env.CATALOGUE_FILE),
    users,
    publicUrl: publicUrl(env),
    tokenTtlSeconds: env.API_TOKEN_TTL_SECONDS,
    temporal: () => Promise.resolve(client),
    hostStates: () => placement.listHostStates((h) => liveness.isUp(h)),
  });
  const stop = () => {
    liveness.stop();
    void app
      .close()
      .then(() => connection.close())
      .then(() => store.close())
      .finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await app.listen({ host: env.API_HOST, port: env.API_PORT });
  console.error(`api: listening on http://${env.API_HOST}:${env.API_PORT} (public ${publicUrl(env)})`);
}

main().catch((err: unknown) => {
  console.error(`api: ${(err as Error).message}`);
  process.exit(1);
});
