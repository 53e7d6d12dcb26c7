/**
 * The baselines bench:e2e measures builds against, run on the same server by worker processes laid out
 * like the conductor's (bench/e2e/hollow-worker.ts):
 *
 * - `hollowBuild`: a build's shape with no-op bodies: one child workflow (`hollowAttempt`) that calls
 *   one scheduler-queue activity and then as many compute-queue activities as a build's attempt does
 *   (allocate networks, prepare block devices, spawn). No bookkeeping, no progress, no compensations.
 * - `oneActivity`: Temporal's own ceiling on this machine: a workflow with one no-op activity.
 */
import { executeChild, proxyActivities } from '@temporalio/workflow';

import type { createHollowActivities } from './hollow-activities';

export const HOLLOW_WORKFLOW_QUEUE = 'bench-hollow';
export const HOLLOW_SCHEDULER_QUEUE = 'bench-hollow-scheduler';
export const HOLLOW_COMPUTE_QUEUE = 'bench-hollow-compute';

/** The compute-queue activities of a build's placement attempt (networks, block devices, spawn). */
export const COMPUTE_STEPS = 3;

type Activities = ReturnType<typeof createHollowActivities>;
const scheduler = proxyActivities<Activities>({ taskQueue: HOLLOW_SCHEDULER_QUEUE, startToCloseTimeout: '30 seconds' });
const compute = proxyActivities<Activities>({ taskQueue: HOLLOW_COMPUTE_QUEUE, startToCloseTimeout: '30 seconds' });

export async function hollowBuild(input: { id: string }): Promise<string> {
  return executeChild(hollowAttempt, { workflowId: `${input.id}-attempt`, args: [input] });
}

export async function hollowAttempt(input: { id: string }): Promise<string> {
  const host = await scheduler.noop(input.id);
  for (let step = 0; step < COMPUTE_STEPS; step++) await compute.noop(host);
  return host;
}

export async function oneActivity(input: { id: string }): Promise<string> {
  return scheduler.noop(input.id);
}
