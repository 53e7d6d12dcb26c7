/**
 * Which workflows still run: a conductor activity over a Temporal client (the conductor worker passes
 * its own), batched for many workflow ids, and the same lookup for the audit's --live mode. Each id is
 * described (its latest run; visibility lags behind, describe does not): running, closed and how, or
 * unknown to Temporal.
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';

import { parseOrInvalid } from '../../domain/validation';
import type { WorkflowStatus } from '../../domain/workflow-status';
import { workflowStatusOf } from '../../domain/workflow-status';

/** Describe calls in flight at once. */
const CONCURRENCY = 16;

const WorkflowStatusesSchema = z.object({ workflowIds: z.array(z.string().min(1).max(1000)).max(10_000) });

/** The status of each workflow id (duplicates asked once). */
export async function describeWorkflows(
  client: Client,
  workflowIds: readonly string[]
): Promise<Record<string, WorkflowStatus>> {
  const ids = [...new Set(workflowIds)];
  const statuses: Record<string, WorkflowStatus> = {};
  for (let i = 0; i < ids.length; i += CONCURRENCY) {
    const chunk = ids.slice(i, i + CONCURRENCY);
    const found = await Promise.all(chunk.map((id) => describeOne(client, id)));
    chunk.forEach((id, j) => (statuses[id] = found[j] ?? 'unknown'));
  }
  return statuses;
}

async function describeOne(client: Client, workflowId: string): Promise<WorkflowStatus> {
  try {
    return workflowStatusOf((await client.workflow.getHandle(workflowId).describe()).status.name);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return 'unknown';
    throw err;
  }
}

export function createWorkflowStatusActivities({ client }: { client: Client }) {
  return {
    /** Running, closed (completed, failed, terminated, timed-out, cancelled) or unknown, per workflow id. */
    async workflowStatuses(input: { workflowIds: string[] }): Promise<Record<string, WorkflowStatus>> {
      const { workflowIds } = parseOrInvalid(WorkflowStatusesSchema, input);
      return describeWorkflows(client, workflowIds);
    },
  };
}

export type WorkflowStatusActivities = ReturnType<typeof createWorkflowStatusActivities>;
