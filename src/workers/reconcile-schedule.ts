/**
 * The reconciler's Temporal Schedule (`reconcile`, visible in the Web UI's Schedules page): it starts the
 * `reconcile` workflow on the conductor queue every RECONCILE_PERIOD_SECONDS, skipping a period while the
 * previous run still runs (overlap policy SKIP). The conductor worker creates it, or updates it to the
 * configured period, each time it starts, so `make start` and any cluster get it; a period of 0 leaves
 * the schedule alone (the tests' own workers never create one).
 */
import type { Client } from '@temporalio/client';
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';

import { CONDUCTOR_TASK_QUEUE } from '../shared/task-queues';
import type { reconcile } from '../workflows/reconcile';

export const RECONCILE_SCHEDULE_ID = 'reconcile';
/** The workflow id of each scheduled run: the server appends the run's scheduled time. */
export const RECONCILE_SCHEDULED_WORKFLOW_ID = 'reconcile-scheduled';
/** A scheduled run that takes longer than this is timed out (the next period heals what it left). */
const RUN_TIMEOUT = '30 minutes';

function scheduleBody(periodSeconds: number) {
  return {
    spec: { intervals: [{ every: `${periodSeconds} seconds` }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'reconcile' as const,
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: RECONCILE_SCHEDULED_WORKFLOW_ID,
      args: [{}] as Parameters<typeof reconcile>,
      workflowExecutionTimeout: RUN_TIMEOUT,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: `${Math.max(periodSeconds, 60)} seconds` },
  };
}

/**
 * Creates the schedule, or updates an existing one to this period (idempotent: every conductor worker
 * of a cluster may call it). Returns what it did.
 */
export async function ensureReconcileSchedule(client: Client, periodSeconds: number): Promise<'created' | 'updated'> {
  const body = scheduleBody(periodSeconds);
  try {
    await client.schedule.create({ scheduleId: RECONCILE_SCHEDULE_ID, ...body });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(RECONCILE_SCHEDULE_ID).update((previous) => ({ ...previous, ...body }));
  return 'updated';
}
