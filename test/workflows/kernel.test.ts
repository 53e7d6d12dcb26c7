/**
 * The kernel alone (src/workflows/lib/define-operation.ts): tiny operations defined on it
 * (fixtures/kernel-workflows.ts) run on the time-skipping server against recording activities, no cloud.
 * Checks refuse before the lock; every undo runs exactly once, last step first, on a failure and on a
 * cancellation; the failure is written once; a domain error thrown in a step, or by a plain workflow
 * function (the workflows' interceptor), reaches the wire with its type and message.
 */
import path from 'node:path';

import type { WorkflowFailedError, WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type { InstancePatch, InstanceRecord } from '../../src/domain/instance';
import { CONDUCTOR_TASK_QUEUE } from '../../src/shared/task-queues';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../../src/workers/workflow-bundle';
import { failureOf } from '../helpers/failures';
import { createTimeSkippingEnv, withWorkers } from '../helpers/temporal';
import type { KernelInput, kernelOperation, kernelPlainRefusal } from './fixtures/kernel-workflows';

/** One recorded call: the activity and what it was about. */
type Call = [string, ...unknown[]];

const INSTANCE: InstanceRecord = {
  instanceId: 'kernel-instance',
  name: 'kernel',
  vmState: 'active',
  taskState: null,
  taskOwner: null,
  powerState: 'running',
  host: 'kernel-host',
  availabilityZone: null,
  flavor: 'm1.small',
  image: 'cirros',
  vcpus: 1,
  memoryMb: 512,
  diskGb: 1,
  serverGroup: null,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
};

let env: TestWorkflowEnvironment;
let code: string;
let calls: Call[] = [];
/** The checks that refuse. */
let refusing = new Set<string>();

const activities = {
  // The bookkeeping the frame does (the conductor's), recorded.
  beginOperation: (input: { taskState: string }) => {
    calls.push(['beginOperation']);
    return Promise.resolve({ instance: INSTANCE, actionId: 'action-1', taskState: input.taskState });
  },
  updateInstance: (input: { patch: InstancePatch }) => {
    calls.push(['updateInstance', input.patch]);
    return Promise.resolve({ ...INSTANCE, ...input.patch });
  },
  recordEvent: (input: { event: string; result: string }) => {
    calls.push(['recordEvent', input.event, input.result]);
    return Promise.resolve();
  },
  finishAction: (input: { result: string }) => {
    calls.push(['finishAction', input.result]);
    return Promise.resolve();
  },
  recordFailure: (input: { code: number; message: string }) => {
    calls.push(['recordFailure', input.code, input.message]);
    return Promise.resolve(INSTANCE);
  },
  // The steps' own activities.
  check: (input: { name: string }) => {
    calls.push(['check', input.name]);
    return Promise.resolve(!refusing.has(input.name));
  },
  work: (input: { name: string; fail: boolean }) => {
    calls.push(['work', input.name]);
    if (input.fail) throw ApplicationFailure.create({ type: 'HypervisorBusy', message: `step ${input.name} failed` });
    return Promise.resolve(input.name);
  },
  waiting: (input: { name: string }) => {
    calls.push(['waiting', input.name]);
    return Promise.resolve();
  },
  undo: (input: { name: string }) => {
    calls.push(['undo', input.name]);
    return Promise.resolve();
  },
};

const named = (name: string) => calls.filter(([n]) => n === name);

beforeAll(async () => {
  [env, { code }] = await Promise.all([
    createTimeSkippingEnv(),
    bundleWorkflowCode({
      workflowsPath: path.join(__dirname, 'fixtures', 'kernel-workflows.ts'),
      workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
      logger: new DefaultLogger('WARN'),
    }),
  ]);
});
afterAll(async () => env?.teardown());

let runs = 0;
/** Runs a kernel operation with fresh recordings; `during` gets its handle while it runs. */
async function run(
  type: 'kernelOperation' | 'kernelOperationBetweenSteps',
  input: Omit<KernelInput, 'instanceId'>,
  during?: (handle: WorkflowHandle<typeof kernelOperation>) => Promise<void>
): Promise<{ record?: InstanceRecord; error?: unknown }> {
  calls = [];
  return withWorkers(env, [{ taskQueue: CONDUCTOR_TASK_QUEUE, workflowBundle: { code }, activities }], async () => {
    const handle = await env.client.workflow.start<typeof kernelOperation>(type, {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: `kernel-${++runs}`,
      args: [{ instanceId: INSTANCE.instanceId, ...input }],
    });
    await during?.(handle);
    return handle.result().then(
      (record) => ({ record }),
      (error: unknown) => ({ error })
    );
  });
}

describe('the operation kernel (defineOperation)', () => {
  it('runs the checks in order, takes the lock, runs the steps in order and writes the success once', async () => {
    refusing = new Set();
    const { record, error } = await run('kernelOperation', {});
    expect(error).toBeUndefined();
    expect(record?.vmState).toBe('stopped');
    expect(calls.map(([n, arg]) => (n === 'check' || n === 'work' ? `${n}:${String(arg)}` : n))).toEqual([
      'check:checkFirst',
      'check:checkSecond',
      'beginOperation',
      'work:a',
      'recordEvent',
      'work:b',
      'recordEvent',
      'work:c',
      'recordEvent',
      'updateInstance',
      'finishAction',
    ]);
    expect(named('updateInstance')).toEqual([['updateInstance', { vmState: 'stopped', taskState: null }]]);
    expect(named('undo')).toEqual([]);
    expect(named('recordFailure')).toEqual([]);
  });

  it('a check that refuses fails the operation typed before the lock: no lock, no later check, no fault', async () => {
    refusing = new Set(['checkFirst']);
    const { error } = await run('kernelOperation', {});
    refusing = new Set();
    expect(failureOf(error)).toEqual({
      type: 'InstanceInvalidState',
      message: "Cannot 'kernelOperation' instance kernel-instance while it is in vmState error",
    });
    expect(calls).toEqual([['check', 'checkFirst']]);
  });

  it('a failed step unwinds every undo exactly once, last step first, then writes the failure once', async () => {
    const { error } = await run('kernelOperation', { steps: ['a', 'b', 'c', 'd'], failAt: 'c' });
    expect(failureOf(error)).toEqual({ type: 'HypervisorBusy', message: 'step c failed' });
    // The failed step's undo runs too: its answer may have been lost after it did its work.
    expect(named('undo')).toEqual([
      ['undo', 'c'],
      ['undo', 'b'],
      ['undo', 'a'],
    ]);
    expect(named('work').map(([, n]) => n)).toEqual(['a', 'b', 'c']);
    expect(named('recordFailure')).toEqual([['recordFailure', 500, 'step c failed']]);
    // The undos ran before the failure was written.
    expect(calls.at(-1)).toEqual(['recordFailure', 500, 'step c failed']);
    expect(named('finishAction')).toEqual([]);
  });

  it('a cancellation inside a step unwinds every undo exactly once, last first, and writes one 499 fault', async () => {
    const { error } = await run('kernelOperation', { waitAt: 'c' }, async (handle) => {
      // Step c waits a day on its timer once a and b are done.
      await vi.waitFor(() => expect(named('waiting')).toEqual([['waiting', 'c']]), { timeout: 20_000 });
      await handle.cancel();
    });
    expect(error).toBeDefined();
    expect(named('undo')).toEqual([
      ['undo', 'c'],
      ['undo', 'b'],
      ['undo', 'a'],
    ]);
    expect(named('recordFailure')).toEqual([['recordFailure', 499, 'kernelOperation cancelled by the user']]);
    expect(named('work').map(([, n]) => n)).toEqual(['a', 'b']);
  });

  it('between-steps: a cancellation waits for the step under way, then unwinds the steps done, once each', async () => {
    const { error } = await run('kernelOperationBetweenSteps', { waitAt: 'b' }, async (handle) => {
      await vi.waitFor(() => expect(named('waiting')).toEqual([['waiting', 'b']]), { timeout: 20_000 });
      await handle.cancel();
    });
    expect(error).toBeDefined();
    // Step b was not cut: its timer ran out (time skipped) and its work was done, then undone; c never ran.
    expect(named('work').map(([, n]) => n)).toEqual(['a', 'b']);
    expect(named('undo')).toEqual([
      ['undo', 'b'],
      ['undo', 'a'],
    ]);
    expect(named('recordFailure')).toEqual([['recordFailure', 499, 'kernelOperation cancelled by the user']]);
  });

  it('a domain error thrown in a step reaches the wire with its type and message, written once', async () => {
    const { error } = await run('kernelOperation', { domainErrorAt: 'b' });
    const message = failureOf(error).message;
    expect(failureOf(error)).toEqual({ type: 'ComputeServiceInUse', message });
    expect(message).toMatch(/^Compute service of host-of-b is still in use\./);
    expect(named('recordFailure')).toEqual([['recordFailure', 500, message]]);
    expect(named('undo')).toEqual([
      ['undo', 'b'],
      ['undo', 'a'],
    ]);
  });

  it('a domain error thrown by a plain workflow function fails the workflow typed (the interceptor), not its task', async () => {
    calls = [];
    const error = await withWorkers(
      env,
      [{ taskQueue: CONDUCTOR_TASK_QUEUE, workflowBundle: { code }, activities }],
      async () =>
        env.client.workflow
          .execute<typeof kernelPlainRefusal>('kernelPlainRefusal', {
            taskQueue: CONDUCTOR_TASK_QUEUE,
            workflowId: `kernel-${++runs}`,
            args: [{ instanceId: INSTANCE.instanceId }],
          })
          .then(
            () => undefined,
            (err: unknown) => err
          )
    );
    expect(failureOf(error)).toEqual({
      type: 'InstanceInvalidState',
      message: "Cannot 'kernelPlainRefusal' instance kernel-instance while it is in vmState error",
    });
    // The domain error's translation, whole: non-retryable, its details kept.
    const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause.nonRetryable).toBe(true);
    expect(cause.details).toEqual([
      { instanceId: INSTANCE.instanceId, attribute: 'vmState', state: 'error', method: 'kernelPlainRefusal' },
    ]);
    expect(calls).toEqual([['check', 'plain']]);
  });
});
