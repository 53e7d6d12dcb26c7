/**
 * Starting the conductor's workflows by their typed references and following them live: each change of
 * progress (step, host, attempt) goes to stderr, so stdout stays the table or the JSON document.
 */
import { randomUUID } from 'node:crypto';

import { WorkflowFailedError } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { defaultPayloadConverter } from '@temporalio/common';

import type { LiveMigrationProgress } from '../compute/driver';

import type { OperationProgress, ResizeOutcome } from '../shared/messages';
import { getProgressQuery } from '../shared/messages';
import { startConductorWorkflow, typedFailureOf } from '../workers/workflow-client';
import type { StartMetadata, WorkflowName, WorkflowOf } from '../workers/workflow-client';
import type { Context } from './context';
import { client, instances, Interrupted, OperationFailed, printCurrent } from './context';
import { setTimeout as sleep } from 'node:timers/promises';

export type { StartMetadata, WorkflowName, WorkflowOf };

/** Starts a conductor workflow on its queue; its arguments are checked against the workflow's signature. */
export async function startWorkflow<K extends WorkflowName>(
  ctx: Context,
  type: K,
  workflowId: string,
  args: Parameters<WorkflowOf<K>>,
  meta?: StartMetadata
): Promise<WorkflowHandle<WorkflowOf<K>>> {
  return startConductorWorkflow(await client(ctx), type, workflowId, args, meta);
}

/** The metadata of an operation on an existing instance: "stop vm2 on node-1", and the request in the details. */
async function operationMetadata(
  ctx: Context,
  type: WorkflowName,
  input: { instanceId: string }
): Promise<StartMetadata> {
  const record = await (await instances(ctx)).find(input.instanceId);
  const name = record?.name ?? input.instanceId;
  const { instanceId, ...request } = input as Record<string, unknown> & { instanceId: string };
  // What was asked, in words; never a guest secret (adminPassword, userData): metadata is for everyone.
  const asked = Object.entries(request)
    .filter(([k, v]) => v !== undefined && typeof v !== 'object' && !/password|userdata|secret/i.test(k))
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');
  return {
    summary: `${type === 'rebuild' && request.evacuate === true ? 'evacuate' : type} ${name}${record?.host ? ` on ${record.host}` : ''}${asked ? ` (${asked})` : ''}`,
    details: [
      `instance **${name}** \`${instanceId}\``,
      record
        ? `was ${record.vmState} on ${record.host ?? 'no host'}, flavor ${record.flavor}, image ${record.image}`
        : '',
      asked ? `asked: ${asked}` : '',
    ]
      .filter(Boolean)
      .join('\n\n'),
    instanceId,
    instanceName: name,
  };
}

export const requestId = (): string => randomUUID().slice(0, 8);

/** A build's metadata: "build vm1 (m1.small, cirros)"; several: "build web-1 … web-3 (m1.small, cirros)". */
export function buildMetadata(input: {
  name: string;
  flavor: string;
  image: string;
  instanceId?: string;
  count?: number;
  maxCount?: number;
}): StartMetadata {
  const several = input.count ?? input.maxCount;
  const names = several && several > 1 ? `${input.name}-1 … ${input.name}-${several}` : input.name;
  return {
    summary: `build ${names} (${input.flavor}, ${input.image})`,
    details: `${several && several > 1 ? `${several} instances` : `instance **${input.name}**`}, flavor ${input.flavor}, image ${input.image}`,
    ...(input.instanceId ? { instanceId: input.instanceId } : {}),
    instanceName: input.name,
  };
}

function describeProgress(p: OperationProgress): string {
  // A step on another host than the record's (an evacuation's destination) is not given the record's too.
  const stepHost = / on ([^\s,;]+)/.exec(p.step)?.[1];
  const where = p.host && (stepHost === undefined || stepHost === p.host) ? ` on ${p.host}` : '';
  const attempt = p.attempt > 0 ? ` (attempt ${p.attempt})` : '';
  return `${p.vmState}/${p.taskState ?? '-'}${where}${attempt}: ${p.step}`;
}

/** The workflow's result; its failure as OperationFailed with the typed failure's type and message. */
export async function outcome<T>(result: Promise<T>): Promise<T> {
  try {
    return await result;
  } catch (err) {
    const failure = err instanceof WorkflowFailedError ? typedFailureOf(err) : undefined;
    if (failure) throw new OperationFailed(failure.type, failure.message);
    throw err;
  }
}

/** Resolves on the first Ctrl-C (SIGINT) while `dispose` has not been called; the listener is then removed. */
function interruption(): { signalled: Promise<void>; dispose: () => void } {
  let onSigint = () => undefined as void;
  const signalled = new Promise<void>((resolve) => (onSigint = () => resolve()));
  process.once('SIGINT', onSigint);
  return { signalled, dispose: () => process.removeListener('SIGINT', onSigint) };
}

/**
 * Follows a workflow until it ends (or `until` holds), printing each change of its progress. Throws
 * OperationFailed with the typed failure when the workflow fails, and Interrupted on Ctrl-C: the
 * workflow goes on without us (its message says how to watch it).
 */
export async function follow(
  handle: WorkflowHandle,
  until?: (p: OperationProgress) => boolean,
  detail?: (handle: WorkflowHandle) => Promise<string | undefined>
): Promise<void> {
  let last = '';
  let settled = false;
  let interrupted = false;
  const sigint = interruption();
  void sigint.signalled.then(() => (interrupted = true));
  // The result's long poll is aborted when we stop following early (`until`, Ctrl-C): closing the
  // connection leaves a call in flight running, and it kept the process alive for the poll's ~20 s.
  const stop = new AbortController();
  const result = handle.client.connection
    .withAbortSignal(stop.signal, () => handle.result())
    .finally(() => (settled = true));
  result.catch(() => undefined);
  try {
    while (!settled) {
      try {
        const progress = await Promise.race([handle.query(getProgressQuery), sigint.signalled.then(() => undefined)]);
        if (interrupted) throw new Interrupted(handle.workflowId);
        if (progress) {
          const more = detail ? await detail(handle).catch(() => undefined) : undefined;
          const line = describeProgress(progress) + (more ? `; ${more}` : '');
          if (line !== last) console.error(`  ${line}`);
          last = line;
          if (until?.(progress)) return;
        }
      } catch (err) {
        // Not queryable yet (no worker picked it up) or already closed: keep waiting for the result.
        if (err instanceof Interrupted) throw err;
      }
      await Promise.race([result.catch(() => undefined), sigint.signalled, sleep(500)]);
      if (interrupted) throw new Interrupted(handle.workflowId);
    }
  } finally {
    sigint.dispose();
    if (!settled) stop.abort();
  }
  await outcome(result);
}

/** Starts an operation on an instance, follows it, then prints the instance as it now is. */
export async function startAndFollow<K extends WorkflowName>(
  ctx: Context,
  type: K,
  workflowId: string,
  input: Parameters<WorkflowOf<K>>[0] & { instanceId: string },
  until?: (p: OperationProgress) => boolean,
  detail?: (handle: WorkflowHandle) => Promise<string | undefined>
): Promise<number> {
  const meta =
    type === 'buildInstance'
      ? buildMetadata(input as { name: string; flavor: string; image: string; instanceId?: string })
      : await operationMetadata(ctx, type, input);
  const handle = await startWorkflow(ctx, type, workflowId, [input] as Parameters<WorkflowOf<K>>, meta);
  console.error(`${type} ${workflowId}`);
  await follow(handle, until, detail);
  return printCurrent(ctx, input.instanceId);
}

const RESIZE_MIGRATE: WorkflowName = 'resizeMigrate';

/** Confirms or reverts the instance's resize (or cold migration) waiting for a decision. */
export async function decideResize(
  ctx: Context,
  instanceId: string,
  update: UpdateDefinition<ResizeOutcome, [], string>
): Promise<number> {
  const c = await client(ctx);
  let handle: WorkflowHandle<WorkflowOf<typeof RESIZE_MIGRATE>> | undefined;
  for await (const wf of c.workflow.list({
    query: `WorkflowType = '${RESIZE_MIGRATE}' AND InstanceId = '${instanceId}' AND ExecutionStatus = 'Running'`,
  })) {
    handle = c.workflow.getHandle(wf.workflowId, wf.runId);
  }
  if (!handle)
    throw new OperationFailed(
      'InstanceInvalidState',
      `Instance ${instanceId} has no resize or migration waiting for a decision.`
    );
  try {
    await handle.executeUpdate(update);
  } catch (err) {
    const cause = (err as { cause?: { type?: string; message?: string } }).cause;
    throw new OperationFailed(cause?.type ?? 'UpdateRejected', cause?.message ?? (err as Error).message);
  }
  await follow(handle);
  return printCurrent(ctx, instanceId);
}

/**
 * A live migration's copy as its running source reports it (the pending liveMigration activity's
 * heartbeat details): round, share copied, memory left and the dirty rate. Undefined when no copy runs.
 */
export async function copyProgress(handle: WorkflowHandle): Promise<string | undefined> {
  const pending = (await handle.describe()).raw.pendingActivities ?? [];
  const copy = pending.find((a) => a.activityType?.name === 'liveMigration');
  const payload = copy?.heartbeatDetails?.payloads?.[0];
  if (!payload) return copy ? 'copy starting' : undefined;
  const p = defaultPayloadConverter.fromPayload<Partial<LiveMigrationProgress> & { queued?: boolean }>(payload);
  if (p.queued) return 'queued (the source host runs its maximum of live migrations)';
  return `round ${p.round ?? '?'}, ${p.percent ?? 0}% copied, ${p.remainingMb ?? '?'} MB left (dirtied at ${p.dirtyMbPerSecond ?? '?'} MB/s)`;
}

/** The running liveMigrate workflow of an instance: the request holding its task state `migrating`. */
export async function liveMigrationOf(ctx: Context, instanceId: string): Promise<WorkflowHandle> {
  const record = await (await instances(ctx)).get(instanceId);
  if (record.taskState !== 'migrating' || record.taskOwner === null)
    throw new OperationFailed(
      'InstanceInvalidState',
      `Instance ${instanceId} has no live migration under way (taskState ${record.taskState ?? 'None'}).`
    );
  return (await client(ctx)).workflow.getHandle(record.taskOwner);
}
