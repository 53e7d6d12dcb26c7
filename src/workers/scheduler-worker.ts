/** The scheduler worker: selectDestinations, claims and placement, on the `scheduler` queue. */
import { Runtime, Worker } from '@temporalio/worker';

import { createSchedulerActivities } from '../activities/scheduler';
import { LIVENESS_REFRESH_MS, TaskQueuePollerLiveness } from '../activities/scheduler/liveness';
import { DEFAULT_SCHEDULER_CONFIG } from '../scheduler/types';
import { SCHEDULER_TASK_QUEUE } from '../shared/task-queues';
import { migrateToLatest, openStore } from '../store/db';
import { createInstanceRepository } from '../store/instances';
import { createPlacementRepository } from '../store/placement';
import { loadCatalogue } from './catalogue-file';
import { dataConverterFor } from './codec';
import { loadEnv, sqlitePath } from './config';
import { connectClient, connectWorker, installRuntime } from './connection';
import { activityInterceptors } from './interceptors';
import { notificationContext } from '../store/notifications';

async function run(): Promise<void> {
  const env = loadEnv();
  installRuntime(env, 'scheduler');
  const store = await openStore({ databaseUrl: env.DATABASE_URL, sqlitePath: sqlitePath(env) });
  await migrateToLatest(store);
  // Notifications this process writes name it as their publisher (src/store/notifications.ts).
  store.notifications = notificationContext(loadCatalogue(env.CATALOGUE_FILE));
  const placement = createPlacementRepository(store);
  const client = await connectClient(env);
  const liveness = new TaskQueuePollerLiveness(
    client,
    env.TEMPORAL_NAMESPACE,
    async () => (await placement.listHostStates(() => true)).map((h) => h.host),
    env.HOST_DOWN_AFTER_SECONDS * 1000
  );
  await liveness.start(LIVENESS_REFRESH_MS, (err) => {
    Runtime.instance().logger.warn('liveness refresh failed', { error: (err as Error).message });
  });
  const worker = await Worker.create({
    connection: await connectWorker(env),
    dataConverter: dataConverterFor(env),
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: SCHEDULER_TASK_QUEUE,
    activities: createSchedulerActivities({
      placement,
      instances: createInstanceRepository(store),
      catalogue: loadCatalogue(env.CATALOGUE_FILE),
      liveness,
      config: DEFAULT_SCHEDULER_CONFIG,
      rng: Math.random,
    }),
    interceptors: activityInterceptors,
  });
  try {
    await worker.run();
  } finally {
    liveness.stop();
    await client.close();
    await store.close();
  }
}

run().catch((err: unknown) => {
  console.error(`scheduler worker: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
