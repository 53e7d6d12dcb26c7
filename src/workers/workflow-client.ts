/**
 * Starting the conductor's workflows by their typed references, and reading a workflow's typed failure:
 * shared by the CLIs (src/cli/operation.ts) and the OpenStack API (src/api/operations.ts).
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { Client, WorkflowHandle, WorkflowStartOptions } from '@temporalio/client';

import { InstanceIdKey, InstanceNameKey } from '../shared/search-attributes';
import { CONDUCTOR_TASK_QUEUE } from '../shared/task-queues';
import type * as workflows from '../workflows';

/** A workflow type the conductor worker runs, and its function's type (for typed arguments). */
export type WorkflowName = keyof typeof workflows;
export type WorkflowOf<K extends WorkflowName> = (typeof workflows)[K];

/**
 * What the Web UI shows of a workflow started here (Temporal's user metadata and the instance's search
 * attributes, set at start): its one-line summary, its details, and the instance it is about.
 */
export interface StartMetadata {
  summary: string;
  details?: string;
  instanceId?: string;
  instanceName: string;
}

/** Starts a conductor workflow on its queue; its arguments are checked against the workflow's signature. */
export function startConductorWorkflow<K extends WorkflowName>(
  client: Client,
  type: K,
  workflowId: string,
  args: Parameters<WorkflowOf<K>>,
  meta?: StartMetadata
): Promise<WorkflowHandle<WorkflowOf<K>>> {
  const metadata = meta
    ? {
        staticSummary: meta.summary,
        ...(meta.details ? { staticDetails: meta.details } : {}),
        typedSearchAttributes: [
          { key: InstanceNameKey, value: meta.instanceName },
          ...(meta.instanceId ? [{ key: InstanceIdKey, value: meta.instanceId }] : []),
        ],
      }
    : {};
  const options = { taskQueue: CONDUCTOR_TASK_QUEUE, workflowId, args, ...metadata } as WorkflowStartOptions<
    WorkflowOf<K>
  >;
  return client.workflow.start<WorkflowOf<K>>(type, options);
}

/** The typed failure (type and message) a failed workflow or rejected update carries; undefined for other errors. */
export function typedFailureOf(err: unknown): { type: string; message: string } | undefined {
  if (err instanceof WorkflowFailedError) {
    const cause = err.cause as { type?: string; message?: string; name?: string } | undefined;
    return { type: cause?.type ?? cause?.name ?? 'Failed', message: cause?.message ?? err.message };
  }
  const cause = (err as { cause?: { type?: string; message?: string } } | undefined)?.cause;
  if (cause?.type) return { type: cause.type, message: cause.message ?? (err as Error).message };
  return undefined;
}
