import { Context } from '@temporalio/activity';

/**
 * The identity of this activity call, the same on every retry of it: its workflow run, activity id and
 * type. Undefined outside an activity (a plain function call), where writes are not deduplicated.
 */
export function activityWriteKey(): string | undefined {
  let info;
  try {
    info = Context.current().info;
  } catch {
    return undefined;
  }
  const { workflowExecution, activityId, activityType } = info;
  if (workflowExecution === undefined) return undefined;
  return `${workflowExecution.workflowId}/${workflowExecution.runId}/${activityId}/${activityType}`;
}
