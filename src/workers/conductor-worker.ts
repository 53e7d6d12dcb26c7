/** The conductor worker: every workflow plus the conductor activities, on the `conductor` queue. */
import { Client } from '@temporalio/client';
import { Runtime, Worker } from '@temporalio/worker';

import { createConductorActivities } from '../activities/conductor';
import { CONDUCTOR_TASK_QUEUE } from '../shared/task-queues';
import { migrateToLatest, openStore } from '../store/db';
import { createInstanceRepository } from '../store/instances';
import { createPlacementRepository } from '../store/placement';
import { recordStackIdentity } from '../store/stack';
import { instanceWrites, pruneAppliedWrites } from '../store/write-once';
import { loadCatalogue } from './catalogue-file';
import { dataConverterFor } from './codec';
import { loadEnv, sqlitePath } from './config';
import { connectClient, connectWorker, installRuntime } from './connection';
import { activityInterceptors } from './interceptors';
import { ensureReconcileSchedule, RECONCILE_SCHEDULE_ID } from './reconcile-schedule';
import { claimNamespace } from './stack-identity';
import { workflowBundle } from './workflow-bundle';
import { notificationContext } from '../store/notifications';

async function run(): Promise<void> {
  const env = loadEnv();
  installRuntime(env, 'conductor');
  const store = await openStore({ databaseUrl: env.DATABASE_URL, sqlitePath: sqlitePath(env) });
  await migrateToLatest(store);
  await pruneAppliedWrites(store);
  // Temporal, for the activities that ask whether an operation's workflow still runs, and the schedule.
  const dataConverter = dataConverterFor(env);
  const temporal = new Client({
    connection: await connectClient(env),
    namespace: env.TEMPORAL_NAMESPACE,
    dataConverter,
  });
  // The store and the namespace name each other (the CLIs refuse a store of another stack).
  // Notifications this process writes name it as their publisher (src/store/notifications.ts).
  store.notifications = notificationContext(loadCatalogue(env.CATALOGUE_FILE));
  const stack = await recordStackIdentity(store, { address: env.TEMPORAL_ADDRESS, namespace: env.TEMPORAL_NAMESPACE });
  await claimNamespace(temporal.connection, env.TEMPORAL_NAMESPACE, stack.stackId);
  if (env.RECONCILE_PERIOD_SECONDS > 0) {
    const done = await ensureReconcileSchedule(temporal, env.RECONCILE_PERIOD_SECONDS);
    Runtime.instance().logger.info(`reconcile schedule ${done}`, {
      scheduleId: RECONCILE_SCHEDULE_ID,
      periodSeconds: env.RECONCILE_PERIOD_SECONDS,
    });
  }
  const worker = await Worker.create({
    connection: await connectWorker(env),
    dataConverter,
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowBundle: await workflowBundle(env.NODE_ENV === 'production', env.WORKFLOW_BUNDLE_PATH),
    activities: createConductorActivities({
      instances: createInstanceRepository(store),
      catalogue: loadCatalogue(env.CATALOGUE_FILE),
      writes: instanceWrites(store),
      temporal,
      placement: createPlacementRepository(store),
    }),
    interceptors: activityInterceptors,
  });
  try {
    await worker.run();
  } finally {
    await store.close();
    await temporal.connection.close();
  }
}

run().catch((err: unknown) => {
  console.error(`conductor worker: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
