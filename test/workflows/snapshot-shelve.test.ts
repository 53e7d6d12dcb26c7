/**
 * snapshot (issue 27) on the time-skipping server with fake hosts: the image stored and active with its
 * source's properties, the instance back in its state, a build from the new image; refusals (a taken or
 * malformed name, a wrong state) change nothing; a failed copy or a cancellation deletes the image and
 * leaves the instance as it was.
 */
import { randomUUID } from 'node:crypto';

import type { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import type { SnapshotInput } from '../../src/domain/images';
import type { InstanceRecord } from '../../src/domain/instance';
import { shelvedImageName } from '../../src/domain/shelve';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import { SHELVE_EVENT, SHELVE_OFFLOAD_EVENT } from '../../src/workflows/shelve';
import { SNAPSHOT_EVENT } from '../../src/workflows/snapshot';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { failureOf } from '../helpers/failures';
import { progressReached } from '../helpers/progress';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

function startSnapshot(input: SnapshotInput) {
  return env.client.workflow.start('snapshot', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.snapshot(String(input.instanceId), randomUUID()),
    args: [input],
  });
}

async function runSnapshot(input: SnapshotInput): Promise<{ record?: InstanceRecord; error?: unknown }> {
  const handle = await startSnapshot(input);
  return (handle.result() as Promise<InstanceRecord>).then(
    (record) => ({ record }),
    (error: unknown) => ({ error })
  );
}

async function actionsOf(instanceId: string) {
  return (await cloud.instances.listActions(instanceId)).map((a) => [a.action, a.result]);
}

async function eventsOf(instanceId: string, action: string) {
  const found = (await cloud.instances.listActions(instanceId)).filter((a) => a.action === action).at(-1);
  return (found?.events ?? []).map((e) => [e.event, e.host, e.result]);
}

/** The snapshots the fake host recorded, by image name. */
async function snapshotsOn(host: string): Promise<Record<string, { instanceId: string; boots: number }>> {
  return cloud.driver(host).listSnapshots();
}

const imagesNamed = async (name: string) =>
  (await cloud.instances.listImages()).filter((i) => i.name === name).map((i) => i.status);

describe('snapshot', () => {
  it('saves an active instance as an image (active, its source properties, min_disk of its root disk), the instance active again; a build boots from it', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-snap' }));
    const claim = await cloud.placement.getAllocations(vm.instanceId);

    const { record, error } = await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'snap-1' }));
    expect(error).toBeUndefined();
    expect(record).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null, host });
    const [image] = (await cloud.instances.listImages()).filter((i) => i.name === 'snap-1');
    expect(image).toMatchObject({
      status: 'active',
      instanceId: vm.instanceId,
      minDiskGb: 20,
      minRamMb: 64,
      sizeGb: 0.02,
      properties: { hwArchitecture: 'x86_64' },
    });
    expect(await snapshotsOn(host)).toMatchObject({ 'snap-1': { instanceId: vm.instanceId, boots: 1 } });
    expect((await cloud.driver(host).getGuest(vm.instanceId))?.powerState).toBe('running');
    expect(await cloud.placement.getAllocations(vm.instanceId)).toEqual(claim);
    expect(await eventsOf(vm.instanceId, 'createImage')).toEqual([[SNAPSHOT_EVENT, host, 'Success']]);
    expect(await actionsOf(vm.instanceId)).toEqual([
      ['create', 'Success'],
      ['createImage', 'Success'],
    ]);

    const copy = await cloud.run([host], () => cloud.boot(az, { name: 'vm-from-snap', image: 'snap-1' }));
    expect(copy).toMatchObject({ vmState: 'active', image: 'snap-1', host });
    expect((await cloud.driver(host).getGuest(copy.instanceId))?.image).toEqual({ name: 'snap-1', sizeGb: 0.02 });
  });

  it('snapshots a stopped, a paused and a suspended instance, each left in its state', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-snap-states' }));
    const op = (type: string, args: object) =>
      cloud.run([host], () =>
        env.client.workflow.execute(type, {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: `${type}-${vm.instanceId}-${randomUUID()}`,
          args: [{ instanceId: vm.instanceId, ...args }],
        })
      );
    await op('pause', {});
    expect(
      (await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'of-paused' }))).record
    ).toMatchObject({ vmState: 'paused', powerState: 'paused', taskState: null });
    expect((await cloud.driver(host).getGuest(vm.instanceId))?.powerState).toBe('paused');
    await op('unpause', {});
    await op('suspend', {});
    expect(
      (await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'of-suspended' }))).record
    ).toMatchObject({ vmState: 'suspended', powerState: 'suspended', taskState: null });
    await op('resume', {});
    await op('stop', { shutdownTimeoutSeconds: 0 });
    expect(
      (await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'of-stopped' }))).record
    ).toMatchObject({ vmState: 'stopped', powerState: 'shutdown', taskState: null });
    expect(Object.keys(await snapshotsOn(host)).sort()).toEqual(['of-paused', 'of-stopped', 'of-suspended']);
  });

  it('refuses a taken or malformed name, and a wrong state, changing nothing', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-snap-refuse' }));
    const before = await actionsOf(vm.instanceId);
    const taken = await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'cirros' }));
    expect(failureOf(taken.error)).toEqual({
      type: 'InvalidRequest',
      message: "Invalid request: name: an image named 'cirros' exists already",
    });
    const bad = await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'a/b' }));
    expect(failureOf(bad.error).type).toBe('InvalidRequest');
    expect(failureOf(bad.error).message).toContain('name');
    expect(await actionsOf(vm.instanceId)).toEqual(before);

    await cloud.instances.update(vm.instanceId, { vmState: 'resized' });
    const wrong = await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'never' }));
    expect(failureOf(wrong.error)).toEqual({
      type: 'InstanceInvalidState',
      message: `Cannot 'createImage' instance ${vm.instanceId} while it is in vmState resized`,
    });
    expect(await imagesNamed('never')).toEqual([]);
    await cloud.instances.update(vm.instanceId, { vmState: 'active' });
  });

  it('a failed copy deletes the image (record deleted, no bytes) and leaves the instance active with a fault; the name is free again', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-snap-fail' }));
    await cloud.driver(host).setFaults({ snapshot: { failNext: 1 } });
    const { error } = await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'broken' }));
    expect(failureOf(error).type).toBe('OperationFailed');
    expect(failureOf(error).message).toContain('injected fault (snapshot.failNext)');
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
    });
    expect(await imagesNamed('broken')).toEqual(['deleted']);
    expect(await snapshotsOn(host)).toEqual({});
    expect(await eventsOf(vm.instanceId, 'createImage')).toEqual([[SNAPSHOT_EVENT, host, 'Error']]);
    expect((await actionsOf(vm.instanceId)).at(-1)).toEqual(['createImage', 'Error']);
    const again = await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'broken' }));
    expect(again.record).toMatchObject({ vmState: 'active', taskState: null });
    expect(await imagesNamed('broken')).toEqual(['deleted', 'active']);
  });

  it('a cancellation while the disk is copied deletes the image and leaves the instance as it was (a 499 fault)', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-snap-cancel' }));
    const gate = cloud.holdNext('snapshotInstance');
    const outcome = await cloud.run([host], async () => {
      const handle = await startSnapshot({ instanceId: vm.instanceId, name: 'cancelled' });
      await gate.reached;
      await handle.cancel();
      await cloud.cancelRequestSeen(handle.workflowId);
      gate.open();
      return handle.result().then(
        () => undefined,
        (e: unknown) => e
      );
    });
    expect(((outcome as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
      taskOwner: null,
    });
    expect(await imagesNamed('cancelled')).toEqual(['deleted']);
    expect(await snapshotsOn(host)).toEqual({});
    expect((await cloud.instances.listFaults(vm.instanceId)).map((f) => [f.code, f.message])).toEqual([
      [499, 'snapshot cancelled by the user'],
    ]);
  });

  it('fails ComputeHostUnavailable when the host has no live worker: the image deleted, the instance active', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-snap-dead' }));
    const { error } = await cloud.run([], () =>
      runSnapshot({
        instanceId: vm.instanceId,
        name: 'unreached',
        timeouts: { scheduleToStartSeconds: 1, heartbeatSeconds: 5, longStepSeconds: 60 },
      })
    );
    expect(failureOf(error)).toEqual({
      type: 'ComputeHostUnavailable',
      message: `Compute host ${host} is unavailable: it did not answer (SCHEDULE_TO_START timeout)`,
    });
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({ vmState: 'active', taskState: null });
    expect(await imagesNamed('unreached')).toEqual(['deleted']);
  });
});

function runType(type: string, input: object): Promise<{ record?: InstanceRecord; error?: unknown }> {
  const instanceId = (input as { instanceId: string }).instanceId;
  return env.client.workflow
    .execute(type, {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: `${type}-${instanceId}-${randomUUID()}`,
      args: [input],
    })
    .then(
      (record) => ({ record: record as InstanceRecord }),
      (error: unknown) => ({ error })
    );
}

describe('shelve and shelve offload', () => {
  it('shelves an active instance and offloads it at once (the default): its image active, no guest, no claim, no host', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-shelve' }));
    const { record, error } = await cloud.run([host], () => runType('shelve', { instanceId: vm.instanceId }));
    expect(error).toBeUndefined();
    expect(record).toMatchObject({ vmState: 'shelved_offloaded', taskState: null, host: null, powerState: 'nostate' });
    expect(await imagesNamed(shelvedImageName(vm.instanceId))).toEqual(['active']);
    expect(await cloud.driver(host).getGuest(vm.instanceId)).toBeUndefined();
    expect(await cloud.placement.getAllocations(vm.instanceId)).toEqual([]);
    expect(await actionsOf(vm.instanceId)).toEqual([
      ['create', 'Success'],
      ['shelve', 'Success'],
      ['shelveOffload', 'Success'],
    ]);
    expect(await eventsOf(vm.instanceId, 'shelve')).toEqual([
      [SHELVE_EVENT, host, 'Success'],
      [SNAPSHOT_EVENT, host, 'Success'],
    ]);
    expect(await eventsOf(vm.instanceId, 'shelveOffload')).toEqual([[SHELVE_OFFLOAD_EVENT, host, 'Success']]);
  });

  it('with an offload time, stays shelved on its host (off, its claim kept) until the automatic offload; -1 never offloads; shelveOffload offloads', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-shelve-later' }));
    const claim = await cloud.placement.getAllocations(vm.instanceId);
    const shelveId = workflowIds.shelve(vm.instanceId, randomUUID());
    // One worker run for both (a workflow outliving its worker waits on that worker's sticky queue).
    const offloadedLater = await cloud.run([host], async () => {
      const shelved = (await env.client.workflow.execute('shelve', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: shelveId,
        args: [{ instanceId: vm.instanceId, shelvedOffloadTimeSeconds: 3600, shutdownTimeoutSeconds: 0 }],
      })) as InstanceRecord;
      expect(shelved).toMatchObject({ vmState: 'shelved', powerState: 'shutdown', taskState: null, host });
      expect((await cloud.driver(host).getGuest(vm.instanceId))?.powerState).toBe('shutdown');
      expect(await cloud.placement.getAllocations(vm.instanceId)).toEqual(claim);
      // The offload child waits its hour on a durable timer, which the time-skipping server skips.
      return (await env.client.workflow
        .getHandle(workflowIds.shelveOffload(vm.instanceId, shelveId))
        .result()) as InstanceRecord;
    });
    expect(offloadedLater).toMatchObject({ vmState: 'shelved_offloaded', host: null });
    expect(await cloud.placement.getAllocations(vm.instanceId)).toEqual([]);

    const other = await cloud.run([host], () => cloud.boot(az, { name: 'vm-shelve-never' }));
    const kept = await cloud.run([host], () =>
      runType('shelve', { instanceId: other.instanceId, shelvedOffloadTimeSeconds: -1, shutdownTimeoutSeconds: 0 })
    );
    expect(kept.record).toMatchObject({ vmState: 'shelved', host });
    const offloaded = await cloud.run([host], () => runType('shelveOffload', { instanceId: other.instanceId }));
    expect(offloaded.record).toMatchObject({ vmState: 'shelved_offloaded', host: null });
    expect(await cloud.driver(host).getGuest(other.instanceId)).toBeUndefined();
  });

  it('refuses from the wrong state, changing nothing: shelve of a shelved instance, offload of an active one', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-shelve-refuse' }));
    const offload = await cloud.run([host], () => runType('shelveOffload', { instanceId: vm.instanceId }));
    expect(failureOf(offload.error)).toEqual({
      type: 'InstanceInvalidState',
      message: `Cannot 'shelveOffload' instance ${vm.instanceId} while it is in vmState active`,
    });
    await cloud.run([host], () => runType('shelve', { instanceId: vm.instanceId, shelvedOffloadTimeSeconds: -1 }));
    const again = await cloud.run([host], () => runType('shelve', { instanceId: vm.instanceId }));
    expect(failureOf(again.error).type).toBe('InvalidRequest'); // its shelved image exists already
    await cloud.instances.update(vm.instanceId, { vmState: 'shelved' });
    const snap = await cloud.run([host], () => runSnapshot({ instanceId: vm.instanceId, name: 'of-shelved' }));
    expect(failureOf(snap.error)).toEqual({
      type: 'InstanceInvalidState',
      message: `Cannot 'createImage' instance ${vm.instanceId} while it is in vmState shelved`,
    });
    expect(await actionsOf(vm.instanceId)).toEqual([
      ['create', 'Success'],
      ['shelve', 'Success'],
    ]);
  });

  it('a failed image save rolls the shelve back: the image deleted, the guest running again, the instance active with a fault', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-shelve-fail' }));
    await cloud.driver(host).setFaults({ snapshot: { failNext: 1 } });
    const { error } = await cloud.run([host], () =>
      runType('shelve', { instanceId: vm.instanceId, shutdownTimeoutSeconds: 0 })
    );
    expect(failureOf(error).type).toBe('OperationFailed');
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
      host,
    });
    expect(await cloud.driver(host).getGuest(vm.instanceId)).toMatchObject({ powerState: 'running', boots: 2 });
    expect(await imagesNamed(shelvedImageName(vm.instanceId))).toEqual(['deleted']);
    expect((await actionsOf(vm.instanceId)).at(-1)).toEqual(['shelve', 'Error']);
  });

  it('a cancellation during the graceful shutdown rolls back: the guest running, the instance active, no image', async () => {
    const {
      az,
      hosts: [host],
    } = await cloud.zone(1, { tag: 'sn', memoryMb: 32768 });
    const vm = await cloud.run([host], () => cloud.boot(az, { name: 'vm-shelve-cancel', image: 'stubborn' }));
    const outcome = await cloud.run([host], async () => {
      const handle = await env.client.workflow.start('shelve', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.shelve(vm.instanceId, randomUUID()),
        args: [{ instanceId: vm.instanceId, shutdownTimeoutSeconds: 600 }],
      });
      // The guest is waited on (the ACPI request sent, the stubborn guest still running): cancelled there,
      // not while the image's shutdown timeout is read (the test server can stall cancelling an activity
      // not yet started).
      await progressReached(handle, (p) => p.step.startsWith('graceful shutdown requested'), 'the graceful shutdown');
      await handle.cancel();
      return handle.result().then(
        () => undefined,
        (e: unknown) => e
      );
    });
    expect(((outcome as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
    });
    expect((await cloud.driver(host).getGuest(vm.instanceId))?.powerState).toBe('running');
    expect(await imagesNamed(shelvedImageName(vm.instanceId))).toEqual([]);
  });
});
