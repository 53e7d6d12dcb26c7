import path from 'node:path';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../../src/shared/task-queues';
import { createDevServerEnv, withWorkers } from '../helpers/temporal';
import type { dayLongRoundTrip } from '../workflows/fixtures/harness-workflows';

describe('dev server harness', () => {
  let env: TestWorkflowEnvironment;
  let code: string;

  beforeAll(async () => {
    [env, { code }] = await Promise.all([
      createDevServerEnv(),
      bundleWorkflowCode({
        workflowsPath: path.join(__dirname, '..', 'workflows', 'fixtures', 'harness-workflows.ts'),
        logger: new DefaultLogger('WARN'),
      }),
    ]);
  });
  afterAll(async () => env?.teardown());

  it('runs workers on the named queues against `temporal server start-dev` with real visibility', async () => {
    const workflowId = `dev-harness-${Date.now()}`;
    const answer = (name: string) => ({ activities: { whoAmI: () => Promise.resolve(name) } });
    const result = await withWorkers(
      env,
      [
        { taskQueue: CONDUCTOR_TASK_QUEUE, workflowBundle: { code }, ...answer('conductor') },
        { taskQueue: SCHEDULER_TASK_QUEUE, ...answer('scheduler') },
        { taskQueue: computeTaskQueue('host-1'), ...answer('host-1') },
      ],
      () =>
        env.client.workflow.execute<typeof dayLongRoundTrip>('dayLongRoundTrip', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId,
          args: [{ hosts: ['host-1'], wait: '100 milliseconds' }],
        })
    );
    expect(result.answers).toEqual(['conductor', 'scheduler', 'host-1', 'conductor', 'scheduler', 'host-1']);

    // The dev server has real visibility: list by query (the time-skipping server cannot).
    await vi.waitFor(
      async () => {
        const ids: string[] = [];
        for await (const wf of env.client.workflow.list({ query: `WorkflowType = 'dayLongRoundTrip'` }))
          ids.push(wf.workflowId);
        expect(ids).toContain(workflowId);
      },
      { timeout: 5_000, interval: 100 }
    );
  });
});
