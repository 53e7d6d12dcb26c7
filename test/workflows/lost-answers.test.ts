/**
 * Temporal delivers activities at least once. A conductor write that commits and then loses its answer
 * (the worker died after the commit, the connection dropped) is retried, and the retry must succeed with
 * the first answer: the operation goes on and the records stay consistent, never a second fault, never
 * the winner told it lost.
 */
import { randomUUID } from 'node:crypto';

import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import type { BuildInstanceInput, StopInput } from '../../src/domain/schemas';
import { CONDUCTOR_TASK_QUEUE } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import type { stop } from '../../src/workflows/stop';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

async function zoneWithHost(): Promise<{ az: string; host: string }> {
  const {
    az,
    hosts: [host],
  } = await cloud.zone(1, { tag: 'lost', spawnSeconds: 0.1, memoryMb: 32768 });
  return { az, host };
}

function build(input: BuildInstanceInput) {
  const instanceId = input.instanceId ?? randomUUID();
  return env.client.workflow.execute<typeof buildInstance>('buildInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: `build-${instanceId}`,
    args: [{ ...input, instanceId }],
  });
}

function stopInstance(input: StopInput) {
  return env.client.workflow.execute<typeof stop>('stop', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: `stop-${input.instanceId}-${randomUUID()}`,
    args: [input],
  });
}

async function activeInstance(): Promise<{ instanceId: string; host: string }> {
  const { az, host } = await zoneWithHost();
  const record = await cloud.run([host], () =>
    build({ name: 'vm-lost', flavor: 'm1.tiny', image: 'cirros', availabilityZone: az })
  );
  expect(record).toMatchObject({ vmState: 'active', host });
  return { instanceId: record.instanceId, host };
}

describe('a conductor write whose answer is lost', () => {
  it('still completes a build when the answer of a state write is lost', async () => {
    const { az, host } = await zoneWithHost();
    cloud.loseNextAnswer('updateInstance');
    const record = await cloud.run([host], () =>
      build({ name: 'vm-lost-build', flavor: 'm1.tiny', image: 'cirros', availabilityZone: az })
    );
    expect(record).toMatchObject({ vmState: 'active', taskState: null, taskOwner: null, host });
    expect((await cloud.driver(host).listGuests()).map((g) => g.instanceId)).toEqual([record.instanceId]);
    expect(await cloud.instances.listFaults(record.instanceId)).toEqual([]);
  });

  it('ends a stop stopped when the answer of its completion (clearing the task state) is lost', async () => {
    const { instanceId, host } = await activeInstance();
    // The stop's first updateInstance is its completion: the lock is taken by beginOperation.
    cloud.loseNextAnswer('updateInstance');
    const record = await cloud.run([host], () => stopInstance({ instanceId, shutdownTimeoutSeconds: 0 }));
    expect(record).toMatchObject({ vmState: 'stopped', taskState: null, powerState: 'shutdown' });
    const actions = await cloud.instances.listActions(instanceId);
    expect(actions.map((a) => [a.action, a.result])).toEqual([
      ['create', 'Success'],
      ['stop', 'Success'],
    ]);
    expect(await cloud.instances.listFaults(instanceId)).toEqual([]);
  });

  it('takes the lock once when the answer of beginOperation is lost', async () => {
    const { instanceId, host } = await activeInstance();
    cloud.loseNextAnswer('beginOperation');
    const record = await cloud.run([host], () => stopInstance({ instanceId, shutdownTimeoutSeconds: 0 }));
    expect(record).toMatchObject({ vmState: 'stopped', taskState: null });
    const actions = await cloud.instances.listActions(instanceId);
    expect(actions.map((a) => a.action)).toEqual(['create', 'stop']);
  });

  it('records a failure once when the answer of recordFailure is lost', async () => {
    const { instanceId, host } = await activeInstance();
    // The guest vanished from its host: the stop fails with InstanceNotFound and records its fault.
    await cloud.driver(host).destroy({ instanceId: instanceId });
    cloud.loseNextAnswer('recordFailure');
    const error = await cloud
      .run([host], () => stopInstance({ instanceId, shutdownTimeoutSeconds: 0 }))
      .then(
        () => undefined,
        (err: unknown) => err
      );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(((error as WorkflowFailedError).cause as { type?: string }).type).toBe('InstanceNotFound');
    const faults = await cloud.instances.listFaults(instanceId);
    expect(faults).toHaveLength(1);
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'active', taskState: null });
    const actions = await cloud.instances.listActions(instanceId);
    expect(actions.map((a) => [a.action, a.result])).toEqual([
      ['create', 'Success'],
      ['stop', 'Error'],
    ]);
  });
});
