/**
 * pause, unpause, suspend and resume (issue 27) on the time-skipping server with fake hosts: each from
 * its state (Nova's @check_instance_state), the guest as a hypervisor would leave it, the action and its
 * compute event; refusals from the wrong state change nothing; a cancellation while the guest changes is
 * rolled back (the inverse step), and a host that does not answer leaves the instance as it was.
 */
import { randomUUID } from 'node:crypto';

import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import type { InstanceRecord } from '../../src/domain/instance';
import type { PauseInput } from '../../src/domain/pause';
import type { RebootInput } from '../../src/domain/reboot';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { deleteInstance } from '../../src/workflows/delete-instance';
import type { liveMigrate as liveMigrateWorkflow } from '../../src/workflows/live-migrate';
import type { reboot as rebootWorkflow } from '../../src/workflows/reboot';
import { PAUSE_EVENT, RESUME_EVENT, SUSPEND_EVENT, UNPAUSE_EVENT } from '../../src/workflows/pause';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { failureOf } from '../helpers/failures';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

// A paused or suspended instance keeps its allocation; nothing may be orphaned or over-committed.
useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

type Op = 'pause' | 'unpause' | 'suspend' | 'resume';

function startOp(op: Op, input: PauseInput) {
  return env.client.workflow.start(op, {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds[op](String(input.instanceId), randomUUID()),
    args: [input],
  });
}

/** Runs the operation to its end: the record, or the error it failed with. */
async function runOp(op: Op, input: PauseInput): Promise<{ record?: InstanceRecord; error?: unknown }> {
  const handle = await startOp(op, input);
  return (handle.result() as Promise<InstanceRecord>).then(
    (record) => ({ record }),
    (error: unknown) => ({ error })
  );
}

async function reboot(input: RebootInput): Promise<InstanceRecord> {
  return env.client.workflow.execute<typeof rebootWorkflow>('reboot', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.reboot(input.instanceId, randomUUID()),
    args: [input],
  });
}

async function actionsOf(instanceId: string) {
  return (await cloud.instances.listActions(instanceId)).map((a) => [a.action, a.result]);
}

async function eventsOf(instanceId: string, action: string) {
  const found = (await cloud.instances.listActions(instanceId)).filter((a) => a.action === action).at(-1);
  return (found?.events ?? []).map((e) => [e.event, e.host, e.result]);
}

const guestOf = (host: string, instanceId: string) => cloud.driver(host).getGuest(instanceId);
const allocationsOf = (instanceId: string) => cloud.placement.getAllocations(instanceId);
const computeCallsOf = (instanceId: string) =>
  cloud.computeCalls.filter((c) => c.instanceId === instanceId).map((c) => c.activity);

describe('pause and unpause', () => {
  it('pauses an active instance (paused, its guest frozen in place, its claim kept) and unpauses it (active, running)', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-pause' }));
    const claim = await allocationsOf(vm.instanceId);

    const paused = await cloud.run([host], () => runOp('pause', { instanceId: vm.instanceId }));
    expect(paused.error).toBeUndefined();
    expect(paused.record).toMatchObject({ vmState: 'paused', powerState: 'paused', taskState: null, host });
    expect(await guestOf(host, vm.instanceId)).toMatchObject({ powerState: 'paused', boots: 1 });
    expect(await allocationsOf(vm.instanceId)).toEqual(claim);
    expect(await eventsOf(vm.instanceId, 'pause')).toEqual([[PAUSE_EVENT, host, 'Success']]);

    const unpaused = await cloud.run([host], () => runOp('unpause', { instanceId: vm.instanceId }));
    expect(unpaused.record).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null, host });
    expect(await guestOf(host, vm.instanceId)).toMatchObject({ powerState: 'running', boots: 1 });
    expect(await eventsOf(vm.instanceId, 'unpause')).toEqual([[UNPAUSE_EVENT, host, 'Success']]);
    expect(await actionsOf(vm.instanceId)).toEqual([
      ['create', 'Success'],
      ['pause', 'Success'],
      ['unpause', 'Success'],
    ]);
  });

  it('refuses from the wrong state, naming it, and changes nothing: pause of a paused, suspended or stopped instance; unpause of an active one', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-refuse' }));
    const refused = async (op: Op, vmState: string) => {
      const before = await actionsOf(vm.instanceId);
      const { error } = await cloud.run([host], () => runOp(op, { instanceId: vm.instanceId }));
      expect(failureOf(error)).toEqual({
        type: 'InstanceInvalidState',
        message: `Cannot '${op}' instance ${vm.instanceId} while it is in vmState ${vmState}`,
      });
      expect(await actionsOf(vm.instanceId)).toEqual(before);
      expect(await cloud.instances.get(vm.instanceId)).toMatchObject({ vmState, taskState: null });
    };
    await refused('unpause', 'active');
    await refused('resume', 'active');
    await cloud.run([host], () => runOp('pause', { instanceId: vm.instanceId }));
    await refused('pause', 'paused');
    // Nova's suspend is @check_instance_state(vm_state=[ACTIVE]): a paused instance is unpaused first.
    await refused('suspend', 'paused');
    await refused('resume', 'paused');
    await cloud.run([host], () => runOp('unpause', { instanceId: vm.instanceId }));
    await cloud.run([host], () => runOp('suspend', { instanceId: vm.instanceId }));
    await refused('pause', 'suspended');
    await refused('unpause', 'suspended');
    await refused('suspend', 'suspended');
    await cloud.run([host], () => runOp('resume', { instanceId: vm.instanceId }));
    await cloud.run([host], () =>
      env.client.workflow.execute('stop', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.stop(vm.instanceId, randomUUID()),
        args: [{ instanceId: vm.instanceId, shutdownTimeoutSeconds: 0 }],
      })
    );
    await refused('pause', 'stopped');
    await refused('suspend', 'stopped');
    await refused('resume', 'stopped');
  });

  it('a cancellation while the guest pauses is rolled back: the guest unpaused, the instance active, the action Error with a 499 fault', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-cancel-pause' }));
    const gate = cloud.holdNext('pauseInstance');
    const outcome = await cloud.run([host], async () => {
      const handle = await startOp('pause', { instanceId: vm.instanceId });
      await gate.reached;
      await handle.cancel();
      await cloud.cancelRequestSeen(handle.workflowId);
      gate.open();
      return handle.result().then(
        () => undefined,
        (error: unknown) => error
      );
    });
    expect(outcome).toBeInstanceOf(WorkflowFailedError);
    expect(((outcome as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
      taskOwner: null,
    });
    expect((await guestOf(host, vm.instanceId))?.powerState).toBe('running');
    expect(computeCallsOf(vm.instanceId).slice(-2)).toEqual(['pauseInstance', 'unpauseInstance']);
    expect(await actionsOf(vm.instanceId)).toEqual([
      ['create', 'Success'],
      ['pause', 'Error'],
    ]);
    expect(await eventsOf(vm.instanceId, 'pause')).toEqual([[PAUSE_EVENT, host, 'Success']]);
    expect((await cloud.instances.listFaults(vm.instanceId)).map((f) => [f.code, f.message])).toEqual([
      [499, 'pause cancelled by the user'],
    ]);
  });

  it('fails ComputeHostUnavailable when the host has no live worker, leaving the instance active with a fault', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-dead' }));
    const { error } = await cloud.run([], () =>
      runOp('pause', {
        instanceId: vm.instanceId,
        timeouts: { scheduleToStartSeconds: 1, heartbeatSeconds: 5, longStepSeconds: 60 },
      })
    );
    expect(failureOf(error)).toEqual({
      type: 'ComputeHostUnavailable',
      message: `Compute host ${host} is unavailable: it did not answer (SCHEDULE_TO_START timeout)`,
    });
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
    });
    expect((await guestOf(host, vm.instanceId))?.powerState).toBe('running');
    expect(computeCallsOf(vm.instanceId)).not.toContain('unpauseInstance'); // it never reached the host
    expect((await actionsOf(vm.instanceId)).at(-1)).toEqual(['pause', 'Error']);
  });

  it('a guest found off behind our back is refused by its host: InstanceInvalidState naming its power state', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-off' }));
    await cloud.driver(host).powerOff({ instanceId: vm.instanceId });
    const { error } = await cloud.run([host], () => runOp('pause', { instanceId: vm.instanceId }));
    expect(failureOf(error)).toEqual({
      type: 'InstanceInvalidState',
      message: `Cannot 'pause' instance ${vm.instanceId} while it is in powerState shutdown`,
    });
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({ vmState: 'active', taskState: null });
    expect((await actionsOf(vm.instanceId)).at(-1)).toEqual(['pause', 'Error']);
  });

  it('live-migrates a paused instance (Nova allows it): paused on its new host, its claim moved; a failed copy leaves it paused on its source', async () => {
    const {
      az,
      hosts: [a, b],
    } = await cloud.zone(2, { tag: 'ps' });
    const vm = await cloud.run([a, b], () => cloud.boot(az, { name: 'vm-paused-move' }));
    const source = vm.host!;
    const dest = source === a ? b : a;
    await cloud.run([a, b], () => runOp('pause', { instanceId: vm.instanceId }));
    const liveMigrate = (input: { instanceId: string; host?: string }) =>
      env.client.workflow.execute<typeof liveMigrateWorkflow>('liveMigrate', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.liveMigrate(input.instanceId, randomUUID()),
        args: [input],
      });

    await cloud.driver(source).setFaults({ liveMigration: { failNext: 1 } });
    const failed = await cloud.run([a, b], () =>
      liveMigrate({ instanceId: vm.instanceId, host: dest }).catch((e: unknown) => e)
    );
    expect(failureOf(failed).type).toBeDefined();
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'paused',
      powerState: 'paused',
      taskState: null,
      host: source,
    });
    expect((await guestOf(source, vm.instanceId))?.powerState).toBe('paused');

    const moved = await cloud.run([a, b], () => liveMigrate({ instanceId: vm.instanceId, host: dest }));
    expect(moved).toMatchObject({ vmState: 'paused', powerState: 'paused', taskState: null, host: dest });
    expect((await guestOf(dest, vm.instanceId))?.powerState).toBe('paused');
    expect(await guestOf(source, vm.instanceId)).toBeUndefined();
    expect((await allocationsOf(vm.instanceId)).map((x) => x.host)).toEqual([dest]);
    const unpaused = await cloud.run([a, b], () => runOp('unpause', { instanceId: vm.instanceId }));
    expect(unpaused.record).toMatchObject({ vmState: 'active', powerState: 'running', host: dest });
  });

  it.each([
    ['instanceId', { instanceId: 'nope' }],
    ['unexpected', { instanceId: randomUUID(), unexpected: 1 }],
  ])('rejects a malformed %s with InvalidRequest naming it', async (field, input) => {
    for (const op of ['pause', 'unpause', 'suspend', 'resume'] as const) {
      const { error } = await cloud.run([], () => runOp(op, input as unknown as PauseInput));
      const failure = failureOf(error);
      expect(failure.type).toBe('InvalidRequest');
      expect(failure.message).toContain(`Invalid request: ${field}:`);
    }
  });
});

describe('suspend and resume', () => {
  it("suspends an active instance (its guest's memory saved, nothing running, its claim kept) and resumes it where it was (no boot)", async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-suspend' }));
    const claim = await allocationsOf(vm.instanceId);

    const suspended = await cloud.run([host], () => runOp('suspend', { instanceId: vm.instanceId }));
    expect(suspended.record).toMatchObject({ vmState: 'suspended', powerState: 'suspended', taskState: null, host });
    const saved = await guestOf(host, vm.instanceId);
    expect(saved).toMatchObject({ powerState: 'suspended', boots: 1 });
    expect(saved?.savedMemory).toMatchObject({ memoryMb: 2048 });
    expect(await allocationsOf(vm.instanceId)).toEqual(claim);
    expect(await eventsOf(vm.instanceId, 'suspend')).toEqual([[SUSPEND_EVENT, host, 'Success']]);

    const resumed = await cloud.run([host], () => runOp('resume', { instanceId: vm.instanceId }));
    expect(resumed.record).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null, host });
    const back = await guestOf(host, vm.instanceId);
    expect(back).toMatchObject({ powerState: 'running', boots: 1, savedMemory: null });
    expect(await eventsOf(vm.instanceId, 'resume')).toEqual([[RESUME_EVENT, host, 'Success']]);
    expect(await actionsOf(vm.instanceId)).toEqual([
      ['create', 'Success'],
      ['suspend', 'Success'],
      ['resume', 'Success'],
    ]);
  });

  it('a cancellation while the guest suspends is rolled back: the guest resumed, the instance active', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-cancel-suspend' }));
    const gate = cloud.holdNext('suspendInstance');
    const outcome = await cloud.run([host], async () => {
      const handle = await startOp('suspend', { instanceId: vm.instanceId });
      await gate.reached;
      await handle.cancel();
      await cloud.cancelRequestSeen(handle.workflowId);
      gate.open();
      return handle.result().then(
        () => undefined,
        (error: unknown) => error
      );
    });
    expect(((outcome as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
    });
    expect(await guestOf(host, vm.instanceId)).toMatchObject({ powerState: 'running', boots: 1 });
    expect(computeCallsOf(vm.instanceId).slice(-2)).toEqual(['suspendInstance', 'resumeInstance']);
    expect((await actionsOf(vm.instanceId)).at(-1)).toEqual(['suspend', 'Error']);
  });

  it('a hard reboot takes a paused or a suspended instance back to active from its disk (Nova: ALLOW_HARD_REBOOT); a soft one is refused', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-reboot' }));
    await cloud.run([host], () => runOp('pause', { instanceId: vm.instanceId }));
    const soft = await cloud.run([host], () => reboot({ instanceId: vm.instanceId }).catch((e: unknown) => e));
    expect(failureOf(soft)).toEqual({
      type: 'InstanceInvalidState',
      message: `Cannot 'reboot' instance ${vm.instanceId} while it is in vmState paused`,
    });
    const fromPaused = await cloud.run([host], () => reboot({ instanceId: vm.instanceId, type: 'HARD' }));
    expect(fromPaused).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null });
    expect(await guestOf(host, vm.instanceId)).toMatchObject({ powerState: 'running', boots: 2 });

    await cloud.run([host], () => runOp('suspend', { instanceId: vm.instanceId }));
    const fromSuspended = await cloud.run([host], () => reboot({ instanceId: vm.instanceId, type: 'HARD' }));
    expect(fromSuspended).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null });
    // Its saved memory discarded: booted from its disk.
    expect(await guestOf(host, vm.instanceId)).toMatchObject({ powerState: 'running', boots: 3, savedMemory: null });
  });

  it('deletes a suspended instance: its guest and saved memory gone, its claim released', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'ps', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-delete' }));
    await cloud.run([host], () => runOp('suspend', { instanceId: vm.instanceId }));
    const deleted = await cloud.run([host], () =>
      env.client.workflow.execute<typeof deleteInstance>('deleteInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.deleteInstance(vm.instanceId, randomUUID()),
        args: [{ instanceId: vm.instanceId }],
      })
    );
    expect(deleted).toMatchObject({ vmState: 'deleted' });
    expect(await guestOf(host, vm.instanceId)).toBeUndefined();
    expect(await allocationsOf(vm.instanceId)).toEqual([]);
  });
});
