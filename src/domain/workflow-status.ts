/**
 * What Temporal says of an operation's workflow, as the audit and the reconciler read it: running, closed
 * (and how), or unknown to Temporal. Pure: the caller asks Temporal (src/activities/conductor/workflow-status.ts)
 * and maps the status name it gets with `workflowStatusOf`.
 */

export const WORKFLOW_STATUSES = [
  'running',
  'completed',
  'failed',
  'terminated',
  'timed-out',
  'cancelled',
  'continued-as-new',
  /** Temporal does not know the workflow id (never started, or its history is past retention). */
  'unknown',
] as const;
export type WorkflowStatus = (typeof WORKFLOW_STATUSES)[number];

/** The SDK's status names (WorkflowExecutionStatusName) mapped to ours; anything unexpected is `unknown`. */
export function workflowStatusOf(name: string): WorkflowStatus {
  switch (name) {
    case 'RUNNING':
    case 'PAUSED':
      return 'running';
    case 'COMPLETED':
      return 'completed';
    case 'FAILED':
      return 'failed';
    case 'TERMINATED':
      return 'terminated';
    case 'TIMED_OUT':
      return 'timed-out';
    case 'CANCELLED':
      return 'cancelled';
    case 'CONTINUED_AS_NEW':
      return 'continued-as-new';
    default:
      return 'unknown';
  }
}

/**
 * Whether nothing of this workflow runs any more: every status but running. A workflow that continued as
 * new runs on in its next run (describing the id without a run id gives the latest run, so this is
 * only seen for an old run).
 */
export function isClosed(status: WorkflowStatus): boolean {
  return status !== 'running' && status !== 'continued-as-new';
}
