/**
 * A worker process of the baselines (bench/e2e/hollow-workflows.ts), laid out like the conductor's:
 * HOLLOW_ROLE=workflows (the workflows, like the conductor worker), scheduler or compute (the no-op
 * activity on that queue, like the scheduler and a compute worker).
 */
import path from 'node:path';

import { NativeConnection, Worker } from '@temporalio/worker';

import { withScopeHoisting } from '../../src/workers/workflow-bundle';
import { createHollowActivities } from './hollow-activities';
import { HOLLOW_COMPUTE_QUEUE, HOLLOW_SCHEDULER_QUEUE, HOLLOW_WORKFLOW_QUEUE } from './hollow-workflows';

async function run(): Promise<void> {
  const role = process.env.HOLLOW_ROLE;
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const worker =
    role === 'workflows'
      ? await Worker.create({
          connection,
          taskQueue: HOLLOW_WORKFLOW_QUEUE,
          workflowsPath: path.join(__dirname, 'hollow-workflows.ts'),
          // Bundled as the conductor's workflows are (one scope per bundle), so that only the code differs.
          bundlerOptions: { webpackConfigHook: withScopeHoisting },
          // The state-equivalent hollow's local activities run here, as a build's run in the conductor.
          activities: createHollowActivities(),
        })
      : await Worker.create({
          connection,
          taskQueue: role === 'scheduler' ? HOLLOW_SCHEDULER_QUEUE : HOLLOW_COMPUTE_QUEUE,
          activities: createHollowActivities(),
        });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => worker.shutdown());
  await worker.run();
  await connection.close();
}

run().catch((err: unknown) => {
  console.error(`hollow worker: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
