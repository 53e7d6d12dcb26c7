/** The conductor worker: every workflow plus the conductor activities, on the `conductor` queue. */
import { Client } from '@temporalio/client';
import { Runtime, Worker } from '@temporalio/worker';

import { createConductorActivities } from '../activities/conductor';
import { createWorkflowStatusActivities } from '../activities/conductor/workflow-status';
import { CONDUCTOR_TASK_QUEUE } from '../shared/task-queues';
import { migrateToLatest, openStore } from '../store/db';
import { createInstanceRepository } from '../store/instances';
import { instanceWrites, pruneAppliedWrites } from '../store/write-once';
import { loadCatalogue } from './catalogue-file';
import { loadEnv, sqlitePath } from './config';
import { connectClient, connectWorker, installRuntime } from './connection';
import { activityInterceptors } from './interceptors';
import { ensureReconcileSchedule, RECONCILE_SCHEDULE_ID } from './reconcile-schedule';
import { workflowBundle } from './workflow-bundle';

async function run(): Promise<void> {
  const env = loadEnv();
  installRuntime(env, 'conductor');
  const store = await openStore({ databaseUrl: env.DATABASE_URL, sqlitePath: sqlitePath(env) });
  await migrateToLatest(store);
  await pruneAppliedWrites(store);
  // The activities that ask which workflows still run, and the reconciler's schedule, use a client.
  const clientConnection = await connectClient(env);
  const client = new Client({ connection: clientConnection, namespace: env.TEMPORAL_NAMESPACE });
  if (env.RECONCILE_PERIOD_SECONDS > 0) {
    const done = await ensureReconcileSchedule(client, env.RECONCILE_PERIOD_SECONDS);
    Runtime.instance().logger.info(`reconcile schedule ${done}`, {
      scheduleId: RECONCILE_SCHEDULE_ID,
      periodSeconds: env.RECONCILE_PERIOD_SECONDS,
    });
  }
  const worker = await Worker.create({
    connection: await connectWorker(env),
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowBundle: await workflowBundle(env.NODE_ENV === 'production'),
    activities: {
      ...createConductorActivities({
        instances: createInstanceRepository(store),
        catalogue: loadCatalogue(env.CATALOGUE_FILE),
        writes: instanceWrites(store),
      }),
      ...createWorkflowStatusActivities({ client }),
    },
    interceptors: activityInterceptors,
  });
  try {
    await worker.run();
  } finally {
    await store.close();
    await clientConnection.close().catch(() => undefined);
  }
}

run().catch((err: unknown) => {
  console.error(`conductor worker: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
