/**
 * Whether operations' workflows still run, asked of Temporal: what tells a live operation from one an
 * operator terminated (or that timed out) and that will never let go of its instance. One conductor
 * activity (over the worker's client), batched for many workflow ids, and the same lookup for the audit's
 * --live mode. Each id is described (its latest run; visibility lags behind, describe does not). What a
 * status name means (running, closed and how, unknown) is src/domain/workflow-status.ts.
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';

import { parseOrInvalid } from '../../domain/validation';
import type { WorkflowStatus } from '../../domain/workflow-status';
import { workflowStatusOf } from '../../domain/workflow-status';

/** A workflow's status name as Temporal gives it (RUNNING, COMPLETED, FAILED, TERMINATED …), or NOT_FOUND. */
export type WorkflowStatusName = string;

const WorkflowStatusSchema = z.object({ workflowIds: z.array(z.string().min(1).max(1000)).max(1000) });

/** Describe calls in flight at once. */
const CONCURRENCY = 16;

/** The status of the latest run of a workflow id; NOT_FOUND when Temporal has none (or no longer has it). */
export async function describeWorkflowStatus(client: Client, workflowId: string): Promise<WorkflowStatusName> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return 'NOT_FOUND';
    throw err;
  }
}

/** The status names of many workflow ids (each asked once, a few at a time). */
export async function describeWorkflowStatuses(
  client: Client,
  workflowIds: readonly string[]
): Promise<Record<string, WorkflowStatusName>> {
  const ids = [...new Set(workflowIds)];
  const out: Record<string, WorkflowStatusName> = {};
  for (let i = 0; i < ids.length; i += CONCURRENCY) {
    const chunk = ids.slice(i, i + CONCURRENCY);
    const names = await Promise.all(chunk.map((id) => describeWorkflowStatus(client, id)));
    chunk.forEach((id, j) => (out[id] = names[j] ?? 'NOT_FOUND'));
  }
  return out;
}

/** The same, as what each status means: running, closed (and how) or unknown. */
export async function describeWorkflows(
  client: Client,
  workflowIds: readonly string[]
): Promise<Record<string, WorkflowStatus>> {
  const names = await describeWorkflowStatuses(client, workflowIds);
  return Object.fromEntries(Object.entries(names).map(([id, name]) => [id, workflowStatusOf(name)]));
}

export function createWorkflowStatusActivities(client: Client | undefined) {
  return {
    /** The status of each workflow id's latest run. Fails (retryably) while Temporal cannot be asked. */
    async workflowStatus(input: z.input<typeof WorkflowStatusSchema>): Promise<Record<string, WorkflowStatusName>> {
      const { workflowIds } = parseOrInvalid(WorkflowStatusSchema, input);
      if (client === undefined) throw new Error('this conductor worker was started without a Temporal client');
      return describeWorkflowStatuses(client, workflowIds);
    },
  };
}
