/**
 * Whether operations' workflows still run, asked of Temporal: what tells a live operation from one an
 * operator terminated (or that timed out) and that will never let go of its instance.
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';

import { parseOrInvalid } from '../../domain/validation';

/** A workflow's status name as Temporal gives it (RUNNING, COMPLETED, FAILED, TERMINATED …), or NOT_FOUND. */
export type WorkflowStatusName = string;

const WorkflowStatusSchema = z.object({ workflowIds: z.array(z.string().min(1).max(1000)).max(1000) });

/** The status of the latest run of a workflow id; NOT_FOUND when Temporal has none (or no longer has it). */
export async function describeWorkflowStatus(client: Client, workflowId: string): Promise<WorkflowStatusName> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return 'NOT_FOUND';
    throw err;
  }
}

export function createWorkflowStatusActivities(client: Client | undefined) {
  return {
    /** The status of each workflow id's latest run. Fails (retryably) while Temporal cannot be asked. */
    async workflowStatus(input: z.input<typeof WorkflowStatusSchema>): Promise<Record<string, WorkflowStatusName>> {
      const { workflowIds } = parseOrInvalid(WorkflowStatusSchema, input);
      if (client === undefined) throw new Error('this conductor worker was started without a Temporal client');
      const out: Record<string, WorkflowStatusName> = {};
      for (const id of [...new Set(workflowIds)]) out[id] = await describeWorkflowStatus(client, id);
      return out;
    },
  };
}
