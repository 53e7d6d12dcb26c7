/**
 * Writes start the same workflows the CLIs start, and answer only once the workflow holds the instance
 * (the accept handshake): the record exists for a create, the task state is owned by the workflow for an
 * action. If the workflow ends first, its typed failure becomes the HTTP answer; a workflow that has not
 * taken the instance within the accept timeout is answered anyway (it goes on, as in Nova after a cast).
 */
import { setTimeout as delay } from 'node:timers/promises';

import type { WorkflowHandle } from '@temporalio/client';

import { startConductorWorkflow, typedFailureOf } from '../workers/workflow-client';
import type { WorkflowName, WorkflowOf } from '../workers/workflow-client';
import type { ApiDeps } from './deps';
import { faultOfFailure } from './errors';

export const DEFAULT_ACCEPT_TIMEOUT_MS = 10_000;
const POLL_MS = 100;

/** The workflow's failure as an ApiFault, thrown; returns when it completed. */
async function settle(handle: WorkflowHandle): Promise<void> {
  try {
    await handle.result();
  } catch (err) {
    const failure = typedFailureOf(err);
    if (failure) throw faultOfFailure(failure.type, failure.message);
    throw err;
  }
}

/**
 * Waits until `accepted()` holds or the workflow closes (its failure thrown as an ApiFault), at most the
 * accept timeout. Returns whether the workflow closed (completed) first.
 */
export async function awaitAccept(
  deps: ApiDeps,
  handle: WorkflowHandle,
  accepted: () => Promise<boolean>
): Promise<'accepted' | 'completed' | 'timeout'> {
  const deadline = Date.now() + (deps.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS);
  for (;;) {
    if (await accepted()) return 'accepted';
    const { status } = await handle.describe();
    if (status.name !== 'RUNNING') {
      await settle(handle);
      return 'completed';
    }
    if (Date.now() > deadline) return 'timeout';
    await delay(POLL_MS);
  }
}

/** Starts the workflow and waits for its accept (see awaitAccept); the handle for what follows. */
export async function startAndAccept<K extends WorkflowName>(
  deps: ApiDeps,
  type: K,
  workflowId: string,
  input: Parameters<WorkflowOf<K>>[0],
  accepted: () => Promise<boolean>
): Promise<WorkflowHandle<WorkflowOf<K>>> {
  const client = await deps.temporal();
  const handle = await startConductorWorkflow(client, type, workflowId, [input] as Parameters<WorkflowOf<K>>);
  await awaitAccept(deps, handle, accepted);
  return handle;
}

/** Starts the workflow and waits for its end: its result, or its failure as an ApiFault. */
export async function execute<K extends WorkflowName>(
  deps: ApiDeps,
  type: K,
  workflowId: string,
  input: Parameters<WorkflowOf<K>>[0]
): Promise<Awaited<ReturnType<WorkflowOf<K>>>> {
  const client = await deps.temporal();
  const handle = await startConductorWorkflow(client, type, workflowId, [input] as Parameters<WorkflowOf<K>>);
  try {
    return (await handle.result()) as Awaited<ReturnType<WorkflowOf<K>>>;
  } catch (err) {
    const failure = typedFailureOf(err);
    if (failure) throw faultOfFailure(failure.type, failure.message);
    throw err;
  }
}

/** The instance is held by that workflow (its task state's owner), or already past it. */
export function heldBy(deps: ApiDeps, instanceId: string, workflowId: string): () => Promise<boolean> {
  return async () => (await deps.instances.find(instanceId))?.taskOwner === workflowId;
}
