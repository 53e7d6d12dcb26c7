import path from 'node:path';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../../src/shared/task-queues';
import { createTimeSkippingEnv, withWorkers } from '../helpers/temporal';
import type { dayLongRoundTrip } from './fixtures/harness-workflows';

const HOSTS = ['host-1', 'host-2'];

describe('time-skipping harness', () => {
  let env: TestWorkflowEnvironment;
  let code: string;

  beforeAll(async () => {
    [env, { code }] = await Promise.all([
      createTimeSkippingEnv(),
      bundleWorkflowCode({
        workflowsPath: path.join(__dirname, 'fixtures', 'harness-workflows.ts'),
        logger: new DefaultLogger('WARN'),
      }),
    ]);
  });
  afterAll(async () => env?.teardown());

  it('routes activities to the conductor, scheduler and per-host queues and skips a one-day timer', async () => {
    const answer = (name: string) => ({ activities: { whoAmI: () => Promise.resolve(name) } });
    let wallMs = Infinity;
    const result = await withWorkers(
      env,
      [
        { taskQueue: CONDUCTOR_TASK_QUEUE, workflowBundle: { code }, ...answer('conductor') },
        { taskQueue: SCHEDULER_TASK_QUEUE, ...answer('scheduler') },
        ...HOSTS.map((h) => ({ taskQueue: computeTaskQueue(h), ...answer(h) })),
      ],
      async () => {
        const started = Date.now();
        const out = await env.client.workflow.execute<typeof dayLongRoundTrip>('dayLongRoundTrip', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: `harness-${Date.now()}`,
          args: [{ hosts: HOSTS, wait: '1 day' }],
        });
        wallMs = Date.now() - started;
        return out;
      }
    );

    const once = ['conductor', 'scheduler', ...HOSTS];
    expect(result.answers).toEqual([...once, ...once]);
    // Workflow time moved a whole day; the wall clock did not.
    expect(result.waitedMs).toBeGreaterThanOrEqual(24 * 3600 * 1000);
    expect(wallMs).toBeLessThan(1_000);
  });
});
