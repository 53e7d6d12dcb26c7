/**
 * deleteInstance from each stable state and during each running operation, with its host down, twice;
 * and the idempotent create (a build re-submitted under the same workflow id or instance id). Every test
 * ends with the instance `deleted` (or as the test says), no guest and no allocation left for it, the
 * workflows it started closed, and the placement audit clean (useTimeSkippingCloud).
 */
import { randomUUID } from 'node:crypto';

import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it, vi } from 'vitest';

import type { InstanceRecord } from '../../src/domain/instance';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import { DELETE_EVENTS } from '../../src/workflows/delete-instance';
import type { deleteInstance } from '../../src/workflows/delete-instance';
import type { reconcileHost } from '../../src/workflows/reconcile-host';
import type { resizeMigrate } from '../../src/workflows/resize-migrate';
import type { stop } from '../../src/workflows/stop';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { failureNameOf, failureOf } from '../helpers/failures';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud(
  (e, c) => {
    env = e;
    cloud = c;
  },
  { tag: 'dl', shutdownSeconds: 5 }
);

function startDelete(instanceId: string): Promise<WorkflowHandle<typeof deleteInstance>> {
  return env.client.workflow.start<typeof deleteInstance>('deleteInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.deleteInstance(instanceId, randomUUID().slice(0, 8)),
    args: [{ instanceId }],
  });
}

async function remove(instanceId: string): Promise<InstanceRecord> {
  return (await startDelete(instanceId)).result();
}

const guestsOf = async (host: string) => (await cloud.driver(host).listGuests()).map((g) => g.instanceId);

/** Deleted, holding nothing anywhere, with no guest on any of `hosts`. */
async function expectGone(instanceId: string, hosts: readonly string[]): Promise<void> {
  expect(await cloud.instances.get(instanceId)).toMatchObject({
    vmState: 'deleted',
    taskState: null,
    taskOwner: null,
    powerState: 'nostate',
  });
  expect(await cloud.placement.getAllocations(instanceId)).toEqual([]);
  for (const m of await cloud.instances.listMigrations(instanceId))
    expect(await cloud.placement.getAllocations(m.id)).toEqual([]);
  for (const host of hosts) expect(await guestsOf(host)).not.toContain(instanceId);
}

async function expectClosed(...handles: WorkflowHandle[]): Promise<void> {
  for (const h of handles) expect((await h.describe()).status.name).not.toBe('RUNNING');
}

async function deleteAction(instanceId: string) {
  const actions = (await cloud.instances.listActions(instanceId)).filter((a) => a.action === 'delete');
  expect(actions).toHaveLength(1);
  return actions[0]!;
}

describe('deleteInstance from a stable state', () => {
  it('an active instance ends deleted: its guest destroyed on its host, its allocation removed, its action recorded', async () => {
    const { az, hosts } = await cloud.zone(2);
    const record = await cloud.run(hosts, async () => {
      const built = await cloud.boot(az);
      expect(await guestsOf(built.host!)).toContain(built.instanceId);
      return remove(built.instanceId);
    });
    expect(record).toMatchObject({ vmState: 'deleted', taskState: null });
    await expectGone(record.instanceId, hosts);
    const action = await deleteAction(record.instanceId);
    expect(action.result).toBe('Success');
    expect(action.events.map((e) => [e.event, e.result])).toEqual([
      [DELETE_EVENTS.terminate, 'Success'],
      [DELETE_EVENTS.allocations, 'Success'],
    ]);
    expect(action.events[0]?.details).toMatch(/guest destroyed on dl\d+-host-a/);
    // Soft-deleted: still found, with its history.
    expect((await cloud.instances.list()).map((i) => i.instanceId)).toContain(record.instanceId);
  });

  it('a stopped instance ends deleted', async () => {
    const { az, hosts } = await cloud.zone(1, { shutdownSeconds: 0 });
    const record = await cloud.run(hosts, async () => {
      const built = await cloud.boot(az);
      await env.client.workflow.execute<typeof stop>('stop', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.stop(built.instanceId, 'one'),
        args: [{ instanceId: built.instanceId }],
      });
      expect(await cloud.instances.get(built.instanceId)).toMatchObject({ vmState: 'stopped' });
      return remove(built.instanceId);
    });
    await expectGone(record.instanceId, hosts);
  });

  it('an instance in error whose build found no host ends deleted (nothing to destroy anywhere)', async () => {
    const { az, hosts } = await cloud.zone(1);
    const instanceId = randomUUID();
    const record = await cloud.run(hosts, async () => {
      const err = await env.client.workflow
        .execute<typeof buildInstance>('buildInstance', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds.buildInstance(instanceId),
          args: [{ instanceId, name: 'too-big', flavor: 'm1.xlarge', image: 'cirros', availabilityZone: `${az}-none` }],
        })
        .catch((e: unknown) => e);
      expect(failureOf(err).type).toBe('NoValidHost');
      expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'error', host: null });
      return remove(instanceId);
    });
    expect(record.vmState).toBe('deleted');
    await expectGone(instanceId, hosts);
    const action = await deleteAction(instanceId);
    expect(action.events.map((e) => e.event)).toEqual([DELETE_EVENTS.allocations]);
  });

  it('a resized instance (VERIFY_RESIZE) is confirmed, then deleted: no guest on either host, no allocation', async () => {
    const { az, hosts } = await cloud.zone(2);
    const result = await cloud.run(hosts, async () => {
      const built = await cloud.boot(az);
      const resize = await env.client.workflow.start<typeof resizeMigrate>('resizeMigrate', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.resizeMigrate(built.instanceId, 'r1'),
        args: [{ instanceId: built.instanceId, flavor: 'm1.medium', confirmWindowSeconds: 0 }],
      });
      await vi.waitFor(async () => expect((await cloud.instances.get(built.instanceId)).vmState).toBe('resized'), {
        timeout: 20_000,
      });
      const record = await remove(built.instanceId);
      const resizeEnd = await resize.result();
      await expectClosed(resize);
      return { record, resizeEnd };
    });
    // NOTE(nova): _confirm_resize_on_deleting: the resize is confirmed (not reverted), then the delete goes on.
    expect(result.resizeEnd.resize).toMatchObject({ decision: 'confirmed' });
    await expectGone(result.record.instanceId, hosts);
    for (const host of hosts) expect(await cloud.driver(host).listGuests()).toEqual([]);
    const action = await deleteAction(result.record.instanceId);
    expect(action.events[0]).toMatchObject({ event: DELETE_EVENTS.stopOperation, result: 'Success' });
    expect(action.events[0]?.details).toMatch(/resize awaiting confirmation\): asked to confirm before the delete/);
    const [migration] = await cloud.instances.listMigrations(result.record.instanceId);
    expect(migration?.status).toBe('confirmed');
    const actions = (await cloud.instances.listActions(result.record.instanceId)).map((a) => a.action);
    expect(actions).not.toContain('revertResize');
  });

  it('a resized instance whose resize workflow was terminated in VERIFY_RESIZE: the same answer, no moved-aside copy left', async () => {
    const { az, hosts } = await cloud.zone(2);
    const record = await cloud.run(hosts, async () => {
      const built = await cloud.boot(az);
      const resize = await env.client.workflow.start<typeof resizeMigrate>('resizeMigrate', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.resizeMigrate(built.instanceId, 't1'),
        args: [{ instanceId: built.instanceId, flavor: 'm1.medium', confirmWindowSeconds: 0 }],
      });
      await vi.waitFor(async () => expect((await cloud.instances.get(built.instanceId)).vmState).toBe('resized'), {
        timeout: 20_000,
      });
      await resize.terminate('operator');
      // The source keeps the moved-aside guest (`<id>_resize`) for a revert that will never come.
      expect((await cloud.driver(built.host!).listGuests()).map((g) => g.instanceId)).toEqual([built.instanceId]);
      const deleted = await remove(built.instanceId);
      await expectClosed(resize);
      return deleted;
    });
    await expectGone(record.instanceId, hosts);
    for (const host of hosts) expect(await cloud.driver(host).listGuests()).toEqual([]);
    const action = await deleteAction(record.instanceId);
    expect(action.events[0]?.details).toMatch(/resize awaiting confirmation\): its workflow was closed/);
    const [migration] = await cloud.instances.listMigrations(record.instanceId);
    expect(migration?.status).toBe('confirmed');
  });

  it('deleting a deleted instance succeeds and changes nothing', async () => {
    const { az, hosts } = await cloud.zone(1);
    await cloud.run(hosts, async () => {
      const built = await cloud.boot(az);
      const first = await remove(built.instanceId);
      const actions = await cloud.instances.listActions(built.instanceId);
      const again = await remove(built.instanceId);
      expect(again).toEqual(first);
      expect(await cloud.instances.get(built.instanceId)).toEqual(first);
      expect(await cloud.instances.listActions(built.instanceId)).toEqual(actions);
    });
  });

  it('an unknown instance is InstanceNotFound, and nothing is written', async () => {
    const { hosts } = await cloud.zone(1);
    const instanceId = randomUUID();
    const err = await cloud.run(hosts, () => remove(instanceId).catch((e: unknown) => e));
    expect(failureOf(err)).toMatchObject({ type: 'InstanceNotFound' });
    expect(await cloud.instances.find(instanceId)).toBeUndefined();
  });
});

describe('deleteInstance during a running operation', () => {
  it('a build mid-spawn is cancelled, rolls back, and the instance ends deleted with no guest or claim', async () => {
    const { az, hosts } = await cloud.zone(2);
    const instanceId = randomUUID();
    const outcome = await cloud.run(hosts, async () => {
      const gate = cloud.holdNext('spawnInstance');
      const build = await cloud.startBuild(az, { instanceId });
      await gate.reached;
      const deletion = await startDelete(instanceId);
      // The build is asked to stop while its spawn runs on the host.
      await vi.waitFor(
        async () =>
          expect(
            (await build.fetchHistory()).events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes)
          ).toBe(true),
        { timeout: 20_000 }
      );
      gate.open();
      await gate.done;
      const record = await deletion.result();
      const buildEnd = await build.result().catch((e: unknown) => e);
      await expectClosed(build, deletion);
      return { record, buildEnd };
    });
    expect(failureNameOf(outcome.buildEnd)).toBe('CancelledFailure');
    expect(outcome.record.vmState).toBe('deleted');
    await expectGone(instanceId, hosts);
    const action = await deleteAction(instanceId);
    expect(action.events[0]?.details).toMatch(/^build-.*\(held the task state\): cancelled; it rolled back/);
  });

  it('a resize mid-migration is cancelled, rolls back to its source, then the instance ends deleted', async () => {
    const { az, hosts } = await cloud.zone(2);
    const outcome = await cloud.run(hosts, async () => {
      const built = await cloud.boot(az);
      const gate = cloud.holdNext('resizeInstance');
      const resize = await env.client.workflow.start<typeof resizeMigrate>('resizeMigrate', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.resizeMigrate(built.instanceId, 'mid'),
        args: [{ instanceId: built.instanceId, flavor: 'm1.medium' }],
      });
      await gate.reached;
      const deletion = await startDelete(built.instanceId);
      gate.open();
      await gate.done;
      const record = await deletion.result();
      const resizeEnd = await resize.result().catch((e: unknown) => e);
      await expectClosed(resize, deletion);
      return { record, resizeEnd };
    });
    expect(failureNameOf(outcome.resizeEnd)).toBe('CancelledFailure');
    await expectGone(outcome.record.instanceId, hosts);
    for (const m of await cloud.instances.listMigrations(outcome.record.instanceId))
      expect(['error', 'reverted', 'confirmed']).toContain(m.status);
  });

  it('a stop mid-shutdown is cancelled and the instance ends deleted, its guest destroyed', async () => {
    // Guests that take 10,000 s to hear an ACPI request: the stop waits on its timers.
    const { az, hosts } = await cloud.zone(1, { shutdownSeconds: 10_000 });
    const outcome = await cloud.run(hosts, async () => {
      const built = await cloud.boot(az);
      const stopping = await env.client.workflow.start<typeof stop>('stop', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.stop(built.instanceId, 'slow'),
        args: [{ instanceId: built.instanceId, shutdownTimeoutSeconds: 3600 }],
      });
      await vi.waitFor(async () =>
        expect((await cloud.instances.get(built.instanceId)).taskState).toBe('powering-off')
      );
      const record = await remove(built.instanceId);
      const stopEnd = await stopping.result().catch((e: unknown) => e);
      await expectClosed(stopping);
      return { record, stopEnd };
    });
    expect(failureNameOf(outcome.stopEnd)).toBe('CancelledFailure');
    await expectGone(outcome.record.instanceId, hosts);
  });

  it('a build terminated mid-spawn (its workflow closed, the lock left behind) is taken over; its guest is destroyed', async () => {
    const { az, hosts } = await cloud.zone(1);
    const instanceId = randomUUID();
    const record = await cloud.run(hosts, async () => {
      const gate = cloud.holdNext('spawnInstance');
      const build = await cloud.startBuild(az, { instanceId });
      await gate.reached;
      await build.terminate('operator');
      gate.open();
      await gate.done;
      // The spawn finished on the host for a workflow that is gone: a guest and a claim are left.
      expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'building', taskState: 'spawning' });
      const deleted = await remove(instanceId);
      await expectClosed(build);
      return deleted;
    });
    expect(record.vmState).toBe('deleted');
    await expectGone(instanceId, hosts);
    const action = await deleteAction(instanceId);
    expect(action.events[0]?.details).toMatch(/its workflow was closed .*taken over from it/);
  });

  it('two deletes racing: both succeed, one action, the instance deleted once', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [a, b] = await cloud.run(hosts, async () => {
      const built = await cloud.boot(az);
      const [first, second] = await Promise.all([startDelete(built.instanceId), startDelete(built.instanceId)]);
      return Promise.all([first.result(), second.result()]);
    });
    expect(a.vmState).toBe('deleted');
    expect(b.vmState).toBe('deleted');
    await expectGone(a.instanceId, hosts);
    await deleteAction(a.instanceId);
  });
});

describe('deleteInstance with the host down (a local delete)', () => {
  it('records and allocations go at once; the guest is destroyed when the host comes back', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    const built = await cloud.run(hosts, () => cloud.boot(az));
    cloud.liveness.down.add(host);
    try {
      // No compute worker polls the host's queue: only the conductor and the scheduler run.
      const record = await cloud.run([], () => remove(built.instanceId));
      expect(record.vmState).toBe('deleted');
      expect(await cloud.placement.getAllocations(built.instanceId)).toEqual([]);
      expect(await guestsOf(host)).toContain(built.instanceId);
      const action = await deleteAction(built.instanceId);
      expect(action.events[0]?.details).toMatch(/^local delete: .* is down/);
    } finally {
      cloud.liveness.down.delete(host);
    }
    // The host returns: its reconciliation destroys the guest of the deleted instance.
    const reconciled = await cloud.run(hosts, () =>
      env.client.workflow.execute<typeof reconcileHost>('reconcileHost', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.reconcileHost(host),
        args: [{ host }],
      })
    );
    expect(reconciled.deleted).toEqual([
      { instanceId: built.instanceId, guestDestroyed: true, allocationReleased: false },
    ]);
    await expectGone(built.instanceId, hosts);
    const events = (await cloud.instances.listActions(built.instanceId)).flatMap((a) => a.events.map((e) => e.event));
    expect(events).toContain('compute_destroy_deleted_instance');
  });
});

describe('a returning host cleans what is no longer its own', () => {
  it("destroys a guest of an instance that lives on another host (a failed attempt's), and nothing else", async () => {
    const { az, hosts } = await cloud.zone(2);
    const [home, other] = hosts;
    const built = await cloud.run(hosts, () => cloud.boot(az));
    expect(built.host).toBe(home);
    // What a failed attempt on a host that was down leaves: a guest there, for an instance now elsewhere.
    await cloud.driver(other).spawn({
      instanceId: built.instanceId,
      name: built.name,
      flavor: { name: 'm1.small', vcpus: 1, memoryMb: 2048, diskGb: 20 },
      image: { name: 'cirros', sizeGb: 1 },
    });
    const reconciled = await cloud.run(hosts, () =>
      env.client.workflow.execute<typeof reconcileHost>('reconcileHost', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: `${workflowIds.reconcileHost(other)}-${randomUUID().slice(0, 8)}`,
        args: [{ host: other }],
      })
    );
    expect(reconciled.strays).toEqual([
      { instanceId: built.instanceId, guestDestroyed: true, allocationReleased: false },
    ]);
    expect(reconciled.deleted).toEqual([]);
    expect(await guestsOf(other)).toEqual([]);
    expect(await guestsOf(home)).toEqual([built.instanceId]);
    expect((await cloud.placement.getAllocations(built.instanceId)).map((a) => a.host)).toEqual([home]);
    const events = (await cloud.instances.listActions(built.instanceId)).flatMap((a) => a.events.map((e) => e.event));
    expect(events).toContain('compute_destroy_stray_guest');
    // Its own host keeps it.
    const own = await cloud.run(hosts, () =>
      env.client.workflow.execute<typeof reconcileHost>('reconcileHost', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: `${workflowIds.reconcileHost(home)}-${randomUUID().slice(0, 8)}`,
        args: [{ host: home }],
      })
    );
    expect(own).toMatchObject({ guests: 1, cleaned: [], deleted: [] });
    expect(own.strays).toBeUndefined();
    await cloud.run(hosts, () => remove(built.instanceId));
  });
});

describe('idempotent create', () => {
  it('a build re-submitted under the same workflow id returns the instance its first run made, and makes no other', async () => {
    const { az, hosts } = await cloud.zone(1);
    const workflowId = `build-again-${randomUUID().slice(0, 8)}`;
    const name = `again-${workflowId.slice(-8)}`;
    const submit = () =>
      env.client.workflow.execute<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId,
        args: [{ name, flavor: 'm1.small', image: 'cirros', availabilityZone: az }],
      });
    const [first, second] = await cloud.run(hosts, async () => [await submit(), await submit()] as const);
    expect(second).toEqual(first);
    expect((await cloud.instances.list()).filter((i) => i.name === name)).toHaveLength(1);
    expect((await cloud.instances.listActions(first.instanceId)).map((a) => a.action)).toEqual(['create']);
    expect(await guestsOf(hosts[0])).toEqual(expect.arrayContaining([first.instanceId]));
    await cloud.run(hosts, () => remove(first.instanceId));
  });

  it('a build re-submitted with the same instance id returns the live instance and does not touch it', async () => {
    const { az, hosts } = await cloud.zone(1);
    const instanceId = randomUUID();
    await cloud.run(hosts, async () => {
      const first = await (await cloud.startBuild(az, { instanceId })).result();
      const allocations = await cloud.placement.getAllocations(instanceId);
      const second = await (await cloud.startBuild(az, { instanceId }, `build-other-${instanceId}`)).result();
      expect(second).toEqual(first);
      expect(await cloud.instances.get(instanceId)).toEqual(first);
      expect(await cloud.placement.getAllocations(instanceId)).toEqual(allocations);
      expect((await cloud.instances.listActions(instanceId)).map((a) => a.action)).toEqual(['create']);
      await remove(instanceId);
    });
  });

  it('a failed build re-submitted fails the same way, and changes nothing', async () => {
    const { az, hosts } = await cloud.zone(1);
    const instanceId = randomUUID();
    const workflowId = workflowIds.buildInstance(instanceId);
    const submit = () =>
      env.client.workflow
        .execute<typeof buildInstance>('buildInstance', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId,
          args: [{ instanceId, name: 'nowhere', flavor: 'm1.small', image: 'cirros', availabilityZone: `${az}-x` }],
        })
        .catch((e: unknown) => e);
    await cloud.run(hosts, async () => {
      const first = failureOf(await submit());
      const faults = await cloud.instances.listFaults(instanceId);
      const second = failureOf(await submit());
      expect(second).toMatchObject({ type: 'NoValidHost', message: first?.message });
      expect(await cloud.instances.listFaults(instanceId)).toEqual(faults);
      await remove(instanceId);
    });
  });
});
