/**
 * The workflowStatus conductor activity over a stand-in Temporal client: each id described once, an id
 * Temporal does not know NOT_FOUND, bad input an InvalidRequest, other errors thrown (the activity is
 * retried); the audit's mapped lookup (describeWorkflows) reads the same answers.
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';

import { createWorkflowStatusActivities, describeWorkflows } from '../../../src/activities/conductor/workflow-status';

function fakeClient(statuses: Record<string, string | Error>, asked: string[]): Client {
  return {
    workflow: {
      getHandle: (workflowId: string) => ({
        describe: () => {
          asked.push(workflowId);
          const status = statuses[workflowId];
          if (status === undefined)
            return Promise.reject(new WorkflowNotFoundError('not found', workflowId, undefined));
          if (status instanceof Error) return Promise.reject(status);
          return Promise.resolve({ status: { name: status } });
        },
      }),
    },
  } as unknown as Client;
}

describe('workflowStatus', () => {
  it('describes each id once; an id Temporal does not know is NOT_FOUND; the audit reads what each means', async () => {
    const asked: string[] = [];
    const client = fakeClient({ a: 'RUNNING', b: 'TERMINATED', c: 'TIMED_OUT', d: 'COMPLETED' }, asked);
    const activities = createWorkflowStatusActivities(client);
    expect(await activities.workflowStatus({ workflowIds: ['a', 'b', 'a', 'c', 'd', 'gone'] })).toEqual({
      a: 'RUNNING',
      b: 'TERMINATED',
      c: 'TIMED_OUT',
      d: 'COMPLETED',
      gone: 'NOT_FOUND',
    });
    expect(asked.sort()).toEqual(['a', 'b', 'c', 'd', 'gone']);
    expect(await describeWorkflows(client, ['a', 'b', 'c', 'gone'])).toEqual({
      a: 'running',
      b: 'terminated',
      c: 'timed-out',
      gone: 'unknown',
    });
  });

  it('refuses bad input with InvalidRequest and lets other errors through (the activity retries)', async () => {
    const activities = createWorkflowStatusActivities(fakeClient({ x: new Error('connection refused') }, []));
    await expect(activities.workflowStatus({ workflowIds: [''] })).rejects.toMatchObject({ name: 'InvalidRequest' });
    await expect(activities.workflowStatus({ workflowIds: ['x'] })).rejects.toThrow('connection refused');
    await expect(createWorkflowStatusActivities(undefined).workflowStatus({ workflowIds: ['x'] })).rejects.toThrow(
      'without a Temporal client'
    );
  });
});
