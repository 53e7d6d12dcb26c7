/**
 * The baselines bench:e2e measures builds against, run on the same server by worker processes laid out
 * like the conductor's (bench/e2e/hollow-worker.ts):
 *
 * - `hollowBuild`: a build's shape with no-op bodies: one child workflow (`hollowAttempt`) that calls
 *   one scheduler-queue activity and then as many compute-queue activities as a build's attempt does
 *   (allocate networks, prepare block devices, spawn). No bookkeeping, no progress, no compensations.
 * - `stateHollowBuild`: the state-equivalent hollow: `hollowBuild` plus the state a build keeps in
 *   Temporal, each with an empty body: the same local activities (the parent's two bookkeeping writes,
 *   the attempt's three), the same search-attribute upserts (three in the parent, one in the attempt),
 *   the attempt's signal to its parent (its progress: the spawning step), and the compute steps with a
 *   heartbeat timeout, each heartbeating once (as the compute worker's automatic heartbeat does). The
 *   shape is that of a plain batched build (test/replay/buildInstance/plain.json and
 *   placementAttempt/plain-run1.json): what buildInstance costs beyond it is our overhead.
 * - `oneActivity`: Temporal's own ceiling on this machine: a workflow with one no-op activity.
 */
import {
  condition,
  defineSignal,
  executeChild,
  getExternalWorkflowHandle,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';

import type { createHollowActivities } from './hollow-activities';

export const HOLLOW_WORKFLOW_QUEUE = 'bench-hollow';
export const HOLLOW_SCHEDULER_QUEUE = 'bench-hollow-scheduler';
export const HOLLOW_COMPUTE_QUEUE = 'bench-hollow-compute';

/** The compute-queue activities of a build's placement attempt (networks, block devices, spawn). */
export const COMPUTE_STEPS = 3;

type Activities = ReturnType<typeof createHollowActivities>;
const scheduler = proxyActivities<Activities>({ taskQueue: HOLLOW_SCHEDULER_QUEUE, startToCloseTimeout: '30 seconds' });
const compute = proxyActivities<Activities>({ taskQueue: HOLLOW_COMPUTE_QUEUE, startToCloseTimeout: '30 seconds' });
const computeBeating = proxyActivities<Activities>({
  taskQueue: HOLLOW_COMPUTE_QUEUE,
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '3 seconds',
});
const local = proxyLocalActivities<Activities>({ startToCloseTimeout: '10 seconds' });

/** The attempt's progress signal to its parent (a build's placementProgressSignal), empty. */
export const hollowProgressSignal = defineSignal<[string]>('hollowProgress');

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

/** A build's parent: record, attributes, the attempt as a child (which signals back), the last write. */
export async function stateHollowBuild(input: { id: string }): Promise<string> {
  let progress = '';
  setHandler(hollowProgressSignal, (step) => void (progress = step));
  await local.noop(input.id);
  upsertSearchAttributes({ InstanceId: [input.id], InstanceName: [input.id] });
  upsertSearchAttributes({ VmState: ['building'] });
  const host = await executeChild(stateHollowAttempt, {
    workflowId: `${input.id}-attempt`,
    args: [{ ...input, parent: workflowInfo().workflowId }],
  });
  await condition(() => progress !== '');
  upsertSearchAttributes({ ComputeHost: [host], VmState: ['active'] });
  await local.noop(input.id);
  return host;
}

/** A build's placement attempt: select, claim, steps with their writes, the spawning signal, finish. */
export async function stateHollowAttempt(input: { id: string; parent: string }): Promise<string> {
  const host = await scheduler.noop(input.id);
  await local.noop(host);
  upsertSearchAttributes({ ComputeHost: [host] });
  await computeBeating.beat(host);
  await computeBeating.beat(host);
  await local.noop(host);
  await getExternalWorkflowHandle(input.parent).signal(hollowProgressSignal, 'spawning');
  await computeBeating.beat(host);
  await local.noop(host);
  return host;
}
