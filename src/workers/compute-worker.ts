/**
 * A compute worker for one host (COMPUTE_HOST): activity-only, polling `compute-<host>`, with the fake
 * hypervisor driver. It holds no database credentials: it registers its inventory with placement by
 * starting the registerHost workflow, whose activity runs on the scheduler worker.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { Client } from '@temporalio/client';
import { Runtime, Worker } from '@temporalio/worker';

import { createComputeActivities } from '../activities/compute';
import { FakeDriver } from '../compute/fake';
import { FleetSchema } from '../domain/fleet';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, workflowIds } from '../shared/task-queues';
import type { reconcileHost } from '../workflows/reconcile-host';
import type { registerHost } from '../workflows/register-host';
import { dataConverterFor } from './codec';
import { loadEnv } from './config';
import { connectClient, connectWorker, installRuntime } from './connection';
import { computeWorkerOptions } from './interceptors';

async function run(): Promise<void> {
  const env = loadEnv();
  installRuntime(env, `compute-${env.COMPUTE_HOST ?? '?'}`);
  const host = env.COMPUTE_HOST;
  if (!host) throw new Error('COMPUTE_HOST is not set');
  const fleet = FleetSchema.parse(JSON.parse(readFileSync(env.FLEET_FILE, 'utf8')));
  const spec = fleet.hosts.find((h) => h.name === host);
  if (!spec) throw new Error(`host ${host} is not in the fleet file ${env.FLEET_FILE}`);

  const stateDir = path.join(env.DATA_DIR, 'compute');
  // The host's folder exists from the start, so a user can drop a faults.json in it at any time.
  mkdirSync(path.join(stateDir, host), { recursive: true });
  const driver = new FakeDriver({ host, stateDir, spawnSeconds: env.COMPUTE_SPAWN_SECONDS });
  const dataConverter = dataConverterFor(env);
  const worker = await Worker.create({
    connection: await connectWorker(env),
    dataConverter,
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: computeTaskQueue(host),
    activities: createComputeActivities({ host, driver }),
    // NOTE(nova): max_concurrent_builds, as worker concurrency.
    maxConcurrentActivityTaskExecutions: env.COMPUTE_MAX_CONCURRENT_BUILDS,
    // Typed domain errors, and every step heartbeated while it runs (a frozen worker is known in seconds).
    ...computeWorkerOptions(),
  });
  const registered = (async () => {
    const connection = await connectClient(env);
    try {
      const client = new Client({ connection, namespace: env.TEMPORAL_NAMESPACE, dataConverter });
      await client.workflow.execute<typeof registerHost>('registerHost', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.registerHost(host),
        args: [spec],
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
      Runtime.instance().logger.info('registered with placement', { host, taskQueue: computeTaskQueue(host) });
      // Back from the dead: destroy the guests evacuated away meanwhile and release their allocations here
      // (the conductor and the scheduler do the bookkeeping). A failure is logged, not fatal: the worker
      // still serves, and the next start reconciles again.
      try {
        const reconciled = await client.workflow.execute<typeof reconcileHost>('reconcileHost', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds.reconcileHost(host),
          args: [{ host }],
          workflowIdConflictPolicy: 'USE_EXISTING',
        });
        Runtime.instance().logger.info('reconciled evacuated instances', {
          host,
          evacuated: reconciled.cleaned.map((c) => c.instanceId),
        });
      } catch (err) {
        Runtime.instance().logger.error('start-up reconciliation failed', { host, error: String(err) });
      }
    } finally {
      await connection.close();
    }
  })();
  await Promise.all([worker.run(), registered]);
}

run().catch((err: unknown) => {
  console.error(`compute worker: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
