/**
 * The workflowStatuses conductor activity over a stand-in Temporal client: each id described once, its
 * status mapped, an id Temporal does not know is `unknown`, bad input an InvalidRequest, other errors
 * thrown (the activity is retried).
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';

import { createWorkflowStatusActivities } from '../../../src/activities/conductor/workflow-status';

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

describe('workflowStatuses', () => {
  it('describes each id once and maps its status; an unknown id is unknown', async () => {
    const asked: string[] = [];
    const activities = createWorkflowStatusActivities({
      client: fakeClient({ a: 'RUNNING', b: 'TERMINATED', c: 'TIMED_OUT', d: 'COMPLETED' }, asked),
    });
    expect(await activities.workflowStatuses({ workflowIds: ['a', 'b', 'a', 'c', 'd', 'gone'] })).toEqual({
      a: 'running',
      b: 'terminated',
      c: 'timed-out',
      d: 'completed',
      gone: 'unknown',
    });
    expect(asked.sort()).toEqual(['a', 'b', 'c', 'd', 'gone']);
  });

  it('refuses bad input with InvalidRequest and lets other errors through (the activity retries)', async () => {
    const activities = createWorkflowStatusActivities({
      client: fakeClient({ x: new Error('connection refused') }, []),
    });
    await expect(activities.workflowStatuses({ workflowIds: [''] })).rejects.toMatchObject({ name: 'InvalidRequest' });
    await expect(activities.workflowStatuses({ workflowIds: ['x'] })).rejects.toThrow('connection refused');
  });
});
