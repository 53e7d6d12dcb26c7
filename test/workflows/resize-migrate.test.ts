import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

import type { WorkflowHandle } from '@temporalio/client';
import { Client, WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import type { Resources } from '../../src/domain/resources';
import type { ResizeMigrateInput } from '../../src/domain/schemas';
import { confirmResizeUpdate, getProgressQuery, resizeResult, revertResizeUpdate } from '../../src/shared/messages';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import type { resizeMigrate } from '../../src/workflows/resize-migrate';
import type { serverGroup } from '../../src/workflows/server-group';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { failureNameOf, failureOf } from '../helpers/failures';
import { progressReached } from '../helpers/progress';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

// Whatever a test did, placement is left with no orphan and no host over capacity (a migration in
// progress is not an orphan; nothing of a confirmed, reverted or failed one remains).
useTimeSkippingCloud(
  (e, c) => {
    env = e;
    cloud = c;
  },
  { tag: 'r', shutdownSeconds: 0.1 }
);

const SMALL: Resources = { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 };
const MEDIUM: Resources = { VCPU: 2, MEMORY_MB: 4096, DISK_GB: 40 };
const LARGE: Resources = { VCPU: 4, MEMORY_MB: 8192, DISK_GB: 80 };

function startResize(input: ResizeMigrateInput): Promise<WorkflowHandle<typeof resizeMigrate>> {
  return env.client.workflow.start<typeof resizeMigrate>('resizeMigrate', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.resizeMigrate(input.instanceId, randomUUID().slice(0, 8)),
    args: [input],
  });
}

const resized = (handle: WorkflowHandle) =>
  progressReached(handle, (p) => p.vmState === 'resized' && p.taskState === null, 'VERIFY_RESIZE');

async function outcomeOf<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error })
  );
}

/** The failure's type and message, as a caller of the workflow sees them. */

/** An Update's rejection or failure, as its caller sees it. */
function updateFailureOf(error: unknown): { type?: string; message?: string } {
  expect(error).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (error as WorkflowUpdateFailedError).cause as { type?: string; message?: string } | undefined;
  return { type: cause?.type, message: cause?.message };
}

const allocationsOf = (consumerId: string) => cloud.placement.getAllocations(consumerId);

async function migrationOf(instanceId: string) {
  const migrations = await cloud.instances.listMigrations(instanceId);
  expect(migrations).toHaveLength(1);
  return migrations[0]!;
}

async function actionsOf(instanceId: string) {
  return (await cloud.instances.listActions(instanceId)).map((a) => [a.action, a.result]);
}

async function eventsOf(instanceId: string, action: string) {
  const actions = await cloud.instances.listActions(instanceId);
  return actions
    .filter((a) => a.action === action)
    .flatMap((a) => a.events.map((e) => [e.event, e.attempt, e.host, e.result]));
}

/** The instance's guests on a host: [flavor, power state], the one kept aside by a move marked. */
async function guestsOn(host: string, instanceId: string) {
  const driver = cloud.driver(host);
  const guest = await driver.getGuest(instanceId);
  const aside = await driver.getResizeAsideGuest(instanceId);
  return {
    guest: guest ? [guest.flavor.name, guest.powerState] : undefined,
    aside: aside ? [aside.flavor.name, aside.powerState] : undefined,
  };
}

describe('resizeMigrate', () => {
  it('resizes across hosts, waits in VERIFY_RESIZE and confirms itself after the 24-hour window, skipped not slept', async () => {
    const { az, hosts } = await cloud.zone(3);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      expect(vm.host).toBe(a);
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium' });
      await resized(handle);

      // VERIFY_RESIZE: on the destination with the new flavor; the migration holds the source allocation,
      // the instance the destination's.
      expect(await cloud.instances.get(id)).toMatchObject({
        vmState: 'resized',
        taskState: null,
        powerState: 'running',
        host: b,
        availabilityZone: az,
        flavor: 'm1.medium',
        vcpus: 2,
        memoryMb: 4096,
        diskGb: 40,
      });
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({
        status: 'finished',
        migrationType: 'resize',
        sourceHost: a,
        destHost: b,
        oldFlavor: 'm1.small',
        newFlavor: 'm1.medium',
      });
      expect(await allocationsOf(id)).toEqual([{ host: b, resources: MEDIUM }]);
      expect(await allocationsOf(migration.id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await cloud.placement.audit()).toEqual({ orphans: [], overCapacity: [] });
      expect(await guestsOn(a, id)).toEqual({ guest: undefined, aside: ['m1.small', 'shutdown'] });
      expect(await guestsOn(b, id)).toEqual({ guest: ['m1.medium', 'running'], aside: undefined });

      // Outside result() the test server's clock is not skipped: the day-long window is still open.
      await delay(500);
      expect((await handle.query(getProgressQuery)).vmState).toBe('resized');

      const started = Date.now();
      const outcome = await handle.result();
      expect(Date.now() - started).toBeLessThan(15_000);
      // The workflow's result is the instance record, with how its resize ended.
      expect(outcome).toMatchObject({
        instanceId: id,
        vmState: 'active',
        taskState: null,
        powerState: 'running',
        host: b,
        flavor: 'm1.medium',
        resize: {
          decision: 'confirmed',
          automatic: true,
          migration: { id: migration.id, status: 'confirmed', destHost: b },
        },
      });
      expect(await allocationsOf(id)).toEqual([{ host: b, resources: MEDIUM }]);
      expect(await allocationsOf(migration.id)).toEqual([]);
      expect(await guestsOn(a, id)).toEqual({ guest: undefined, aside: undefined });
      expect(await cloud.driver(a).listGuests()).toEqual([]);
      expect(await actionsOf(id)).toEqual([
        ['create', 'Success'],
        ['resize', 'Success'],
        ['confirmResize', 'Success'],
      ]);
      expect(await eventsOf(id, 'resize')).toEqual([
        ['conductor_migrate_server', 0, a, 'Success'],
        ['compute_prep_resize', 1, b, 'Success'],
        ['compute_resize_instance', 1, a, 'Success'],
        ['compute_finish_resize', 1, b, 'Success'],
      ]);
      expect(await eventsOf(id, 'confirmResize')).toEqual([['compute_confirm_resize', 1, a, 'Success']]);

      // The window was a durable timer of one day.
      const history = await handle.fetchHistory();
      const timers = (history.events ?? []).flatMap((e) =>
        e.timerStartedEventAttributes ? [Number(e.timerStartedEventAttributes.startToFireTimeout?.seconds)] : []
      );
      expect(timers).toContain(86_400);
    });
  });

  it('cold-migrates, waits indefinitely with window 0, confirms through the Update; a second move meanwhile is refused', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      // Window 0: no timer at all, the workflow waits for an Update however long it takes.
      const handle = await startResize({ instanceId: id, confirmWindowSeconds: 0 });
      await resized(handle);
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({ migrationType: 'migration', oldFlavor: 'm1.small', newFlavor: 'm1.small' });
      expect(await allocationsOf(migration.id)).toEqual([{ host: a, resources: SMALL }]);

      // The instance is resized: another move is refused at once, naming the state, and changes nothing.
      // Its result is awaited in real time: awaiting it through the time-skipping client would let the
      // test server jump the clock to the waiting workflow's run timeout (it has no timer to stop at).
      const other = await startResize({ instanceId: id, flavor: 'm1.medium' });
      const realTime = new Client({ connection: env.connection, namespace: env.namespace });
      const refused = failureOf((await outcomeOf(realTime.workflow.getHandle(other.workflowId).result())).error);
      expect(refused.type).toBe('InstanceInvalidState');
      expect(refused.message).toMatch(/vmState resized/);

      const outcome = await handle.executeUpdate(confirmResizeUpdate);
      expect(outcome).toMatchObject({
        decision: 'confirmed',
        automatic: false,
        instance: { vmState: 'active', powerState: 'running', host: b, flavor: 'm1.small' },
        migration: { status: 'confirmed', migrationType: 'migration', sourceHost: a, destHost: b },
      });
      expect(await handle.result()).toEqual(resizeResult(outcome));
      expect(await allocationsOf(id)).toEqual([{ host: b, resources: SMALL }]);
      expect(await allocationsOf(migration.id)).toEqual([]);
      expect(await cloud.driver(a).listGuests()).toEqual([]);
      expect(await guestsOn(b, id)).toEqual({ guest: ['m1.small', 'running'], aside: undefined });
      expect(await actionsOf(id)).toEqual([
        ['create', 'Success'],
        ['migrate', 'Success'],
        ['confirmResize', 'Success'],
      ]);
    });
  });

  it('reverts through the revertResize Update: back on the source with the old flavor and allocation', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium' });
      await resized(handle);
      const migration = await migrationOf(id);

      const outcome = await handle.executeUpdate(revertResizeUpdate);
      expect(outcome).toMatchObject({
        decision: 'reverted',
        automatic: false,
        instance: {
          vmState: 'active',
          taskState: null,
          powerState: 'running',
          host: a,
          availabilityZone: az,
          flavor: 'm1.small',
          vcpus: 1,
          memoryMb: 2048,
          diskGb: 20,
        },
        migration: { status: 'reverted', sourceHost: a, destHost: b },
      });
      expect(await handle.result()).toEqual(resizeResult(outcome));
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await allocationsOf(migration.id)).toEqual([]);
      expect(await cloud.driver(b).listGuests()).toEqual([]);
      expect(await guestsOn(a, id)).toEqual({ guest: ['m1.small', 'running'], aside: undefined });
      expect(await actionsOf(id)).toEqual([
        ['create', 'Success'],
        ['resize', 'Success'],
        ['revertResize', 'Success'],
      ]);
      expect(await eventsOf(id, 'revertResize')).toEqual([
        ['compute_revert_resize', 1, b, 'Success'],
        ['compute_finish_revert_resize', 1, a, 'Success'],
      ]);
    });
  });

  it('rejects confirm and revert before VERIFY_RESIZE and after the other decision; a repeated confirm changes nothing', async () => {
    // Transfers take 2 s, so the test can knock while the disk moves.
    const { az, hosts } = await cloud.zone(2, { spawnSeconds: 2 });
    const [, b] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium' });
      await progressReached(handle, (p) => p.taskState === 'resize_migrating', 'the disk transfer');
      for (const update of [confirmResizeUpdate, revertResizeUpdate]) {
        const early = updateFailureOf((await outcomeOf(handle.executeUpdate(update))).error);
        expect(early.type).toBe('InstanceInvalidState');
        expect(early.message).toBe(
          `Cannot '${update.name}' instance ${id} while it is in vmState active (taskState resize_migrating): no resize awaits confirmation`
        );
      }
      await resized(handle);

      // Two confirms at once: one decision, the same outcome for both; a revert after it is refused.
      const first = await handle.startUpdate(confirmResizeUpdate, { waitForStage: WorkflowUpdateStage.ACCEPTED });
      const [late, second] = await Promise.all([
        outcomeOf(handle.executeUpdate(revertResizeUpdate)),
        handle.executeUpdate(confirmResizeUpdate),
      ]);
      expect(updateFailureOf(late.error)).toEqual({
        type: 'InstanceInvalidState',
        message: `Cannot 'revertResize' instance ${id}: its resize was already confirmed`,
      });
      const outcome = await first.result();
      expect(second).toEqual(outcome);
      expect(outcome).toMatchObject({ decision: 'confirmed', instance: { vmState: 'active', host: b } });
      await handle.result();

      // Once the workflow has ended, the same confirm (same update id) answers the same, and nothing moves.
      const before = await cloud.instances.get(id);
      const actionsBefore = await cloud.instances.listActions(id);
      expect(await handle.executeUpdate(confirmResizeUpdate, { updateId: first.updateId })).toEqual(outcome);
      // A new confirm finds no workflow to take it: the server refuses it, and nothing moves either.
      expect((await outcomeOf(handle.executeUpdate(confirmResizeUpdate))).error).toBeInstanceOf(Error);
      expect(await cloud.instances.get(id)).toEqual(before);
      expect(await cloud.instances.listActions(id)).toEqual(actionsBefore);
      expect(await eventsOf(id, 'confirmResize')).toEqual([['compute_confirm_resize', 1, hosts[0], 'Success']]);
      expect(await allocationsOf(id)).toEqual([{ host: b, resources: MEDIUM }]);
    });
  });

  it('reschedules the prep to the alternate when the first destination fails, and releases that claim', async () => {
    const { az, hosts } = await cloud.zone(4);
    const [a, b, c] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      await cloud.driver(b).setFaults({ prepResize: { failNext: 1 } });
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium', confirmWindowSeconds: 3600 });
      const progress = await resized(handle);
      expect(progress).toMatchObject({ host: c, attempt: 2, hostsTried: [b, c] });
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({ destHost: c });
      expect(await allocationsOf(id)).toEqual([{ host: c, resources: MEDIUM }]);
      expect(await allocationsOf(migration.id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await cloud.placement.allocationsByHost(b)).toEqual([]);
      expect(await eventsOf(id, 'resize')).toEqual([
        ['conductor_migrate_server', 0, a, 'Success'],
        ['compute_prep_resize', 1, b, 'Error'],
        ['conductor_claim_alternate', 2, c, 'Success'],
        ['compute_prep_resize', 2, c, 'Success'],
        ['compute_resize_instance', 2, a, 'Success'],
        ['compute_finish_resize', 2, c, 'Success'],
      ]);
      const outcome = await handle.result();
      expect(outcome).toMatchObject({ host: c, resize: { decision: 'confirmed', automatic: true } });
      expect(await allocationsOf(id)).toEqual([{ host: c, resources: MEDIUM }]);
      expect(await cloud.driver(b).listGuests()).toEqual([]);
    });
  });

  it('fails with MaxRetriesExceeded when every destination fails: the instance as it was, allocation on the source only', async () => {
    const { az, hosts } = await cloud.zone(4);
    const [a, b, c, d] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      for (const host of [b, c, d]) await cloud.driver(host).setFaults({ prepResize: { failNext: 5 } });
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium', maxAttempts: 3 });
      const failure = failureOf((await outcomeOf(handle.result())).error);
      expect(failure.type).toBe('MaxRetriesExceeded');
      expect(failure.message).toBe(
        `Exceeded maximum number of retries. Exhausted all hosts available for retrying resize failures for instance ${id}. Hosts tried: ${b}, ${c}, ${d}.`
      );
      expect(await cloud.instances.get(id)).toMatchObject({
        vmState: 'active',
        taskState: null,
        taskOwner: null,
        powerState: 'running',
        host: a,
        flavor: 'm1.small',
        vcpus: 1,
      });
      expect((await cloud.instances.listFaults(id)).map((f) => f.message)).toEqual([failure.message]);
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({ status: 'error', destHost: null });
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await allocationsOf(migration.id)).toEqual([]);
      for (const host of [b, c, d]) {
        expect(await cloud.placement.allocationsByHost(host)).toEqual([]);
        expect(await cloud.driver(host).listGuests()).toEqual([]);
      }
      expect(await guestsOn(a, id)).toEqual({ guest: ['m1.small', 'running'], aside: undefined });
      expect(await actionsOf(id)).toEqual([
        ['create', 'Success'],
        ['resize', 'Error'],
      ]);
    });
  });

  it('fails with NoValidHost when no other host fits, leaving the instance as it was with a fault', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [a] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium' });
      const failure = failureOf((await outcomeOf(handle.result())).error);
      expect(failure.type).toBe('NoValidHost');
      expect(failure.message).toMatch(/^No valid host was found/);
      expect(await cloud.instances.get(id)).toMatchObject({ vmState: 'active', taskState: null, host: a });
      expect(await cloud.instances.listFaults(id)).toHaveLength(1);
      expect((await migrationOf(id)).status).toBe('error');
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await eventsOf(id, 'resize')).toEqual([['conductor_migrate_server', 0, a, 'Error']]);

      // A requested host is the only candidate: asking for the current host without allowSameHost fails too.
      const pinned = await startResize({ instanceId: id, host: a });
      expect(failureOf((await outcomeOf(pinned.result())).error).type).toBe('NoValidHost');
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: SMALL }]);
    });
  });

  it('rolls back to the source when the driver refuses the move (a root disk cannot shrink): as it was, with the fault', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const id = (await cloud.boot(az, { flavor: 'm1.medium' })).instanceId;
      const handle = await startResize({ instanceId: id, flavor: 'm1.small' });
      const failure = failureOf((await outcomeOf(handle.result())).error);
      expect(failure.type).toBe('MigrationError');
      expect(failure.message).toMatch(/Unable to resize disk down/);
      expect(await cloud.instances.get(id)).toMatchObject({
        vmState: 'active',
        taskState: null,
        powerState: 'running',
        host: a,
        availabilityZone: az,
        flavor: 'm1.medium',
        vcpus: MEDIUM.VCPU,
      });
      expect((await cloud.instances.listFaults(id)).map((f) => f.message)).toEqual([failure.message]);
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({ status: 'error', destHost: b });
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: MEDIUM }]);
      expect(await allocationsOf(migration.id)).toEqual([]);
      expect(await guestsOn(a, id)).toEqual({ guest: ['m1.medium', 'running'], aside: undefined });
      expect(await cloud.driver(b).listGuests()).toEqual([]);
      const events = await eventsOf(id, 'resize');
      expect(events).toContainEqual(['compute_resize_instance', 1, a, 'Error']);
      expect(events).toContainEqual(['compute_finish_revert_resize', 1, a, 'Success']);
    });
  });

  it("ends in ERROR on the source as Nova's does when the disk transfer fails there: the guest back in place, off, its allocation there", async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const id = (await cloud.boot(az)).instanceId;
      await cloud.driver(a).setFaults({ migrateDisk: { failNext: 1 } });
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium' });
      const failure = failureOf((await outcomeOf(handle.result())).error);
      expect(failure.type).toBe('MigrationError');
      expect(failure.message).toMatch(/Disk transfer of instance .* failed: injected fault/);
      expect(await cloud.instances.get(id)).toMatchObject({
        vmState: 'error',
        taskState: null,
        powerState: 'shutdown',
        host: a,
        flavor: 'm1.small',
        vcpus: SMALL.VCPU,
      });
      expect((await cloud.instances.listFaults(id)).map((f) => f.message)).toEqual([failure.message]);
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({ status: 'error', destHost: b });
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await allocationsOf(migration.id)).toEqual([]);
      expect(await cloud.placement.allocationsByHost(b)).toEqual([]);
      expect(await guestsOn(a, id)).toEqual({ guest: ['m1.small', 'shutdown'], aside: undefined });
      expect(await cloud.driver(b).listGuests()).toEqual([]);
      expect(await eventsOf(id, 'resize')).toEqual([
        ['conductor_migrate_server', 0, a, 'Success'],
        ['compute_prep_resize', 1, b, 'Success'],
        ['compute_resize_instance', 1, a, 'Error'],
        ['compute_finish_revert_resize', 1, a, 'Success'],
      ]);
    });
  });

  it("ends in ERROR on the destination as Nova's does when the finish fails there: new flavor, its allocation there, the source's freed", async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const id = (await cloud.boot(az)).instanceId;
      await cloud.driver(b).setFaults({ finishResize: { failNext: 1 } });
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium' });
      const failure = failureOf((await outcomeOf(handle.result())).error);
      expect(failure.type).toBe('MigrationError');
      expect(failure.message).toMatch(/Hypervisor error while finishing the migration on/);
      expect(await cloud.instances.get(id)).toMatchObject({
        vmState: 'error',
        taskState: null,
        host: b,
        flavor: 'm1.medium',
        vcpus: MEDIUM.VCPU,
      });
      expect((await cloud.instances.listFaults(id)).map((f) => f.message)).toEqual([failure.message]);
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({ status: 'error', destHost: b });
      // Nova's _delete_allocation_after_move: the instance keeps the destination's, the migration's goes.
      expect(await allocationsOf(id)).toEqual([{ host: b, resources: MEDIUM }]);
      expect(await allocationsOf(migration.id)).toEqual([]);
      expect(await cloud.placement.allocationsByHost(a)).toEqual([]);
      expect(await cloud.driver(a).listGuests()).toEqual([]);
      expect(await guestsOn(a, id)).toEqual({ guest: undefined, aside: undefined });
      expect(await eventsOf(id, 'resize')).toEqual([
        ['conductor_migrate_server', 0, a, 'Success'],
        ['compute_prep_resize', 1, b, 'Success'],
        ['compute_resize_instance', 1, a, 'Success'],
        ['compute_finish_resize', 1, b, 'Error'],
      ]);
      expect(await actionsOf(id)).toEqual([
        ['create', 'Success'],
        ['resize', 'Error'],
      ]);
    });
  });

  it('refuses a confirm while the source host is down, changing nothing; confirms once it is back', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const id = (await cloud.boot(az)).instanceId;
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium', confirmWindowSeconds: 0 });
      await resized(handle);
      const migration = await migrationOf(id);
      const before = await cloud.instances.get(id);
      cloud.liveness.down.add(a);
      try {
        const refused = updateFailureOf((await outcomeOf(handle.executeUpdate(confirmResizeUpdate))).error);
        expect(refused).toEqual({
          type: 'InstanceInvalidState',
          message: `Cannot 'confirmResize' instance ${id}: the compute service of its source host ${a} is down (no live compute worker). Service is unavailable at this time.`,
        });
      } finally {
        cloud.liveness.down.delete(a);
      }
      expect(await cloud.instances.get(id)).toEqual(before);
      expect(await migrationOf(id)).toMatchObject({ status: 'finished' });
      expect(await allocationsOf(migration.id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await cloud.instances.listFaults(id)).toEqual([]);
      expect(await guestsOn(a, id)).toEqual({ guest: undefined, aside: ['m1.small', 'shutdown'] });
      // The resize still awaits its decision: confirmed once the source is back.
      const outcome = await handle.executeUpdate(confirmResizeUpdate);
      expect(outcome).toMatchObject({ decision: 'confirmed', instance: { vmState: 'active', host: b } });
      await handle.result();
      expect(await actionsOf(id)).toEqual([
        ['create', 'Success'],
        ['resize', 'Success'],
        ['confirmResize', 'Success'],
      ]);
      expect(await allocationsOf(migration.id)).toEqual([]);
    });
  });

  it("reschedules a destination that the late server-group check refuses (Nova's prep_resize): a member moved there meanwhile", async () => {
    const { az, hosts } = await cloud.zone(5);
    const [a, b, c, d, e] = hosts;
    await cloud.run(hosts, async () => {
      const group = `spread-${az}`;
      await env.client.workflow.execute<typeof serverGroup>('serverGroup', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.serverGroup('create', randomUUID().slice(0, 8)),
        args: [{ action: 'create', name: group, policy: 'anti-affinity' }],
      });
      const id = (await cloud.boot(az, { schedulerHints: { group } })).instanceId;
      const other = (await cloud.boot(az, { schedulerHints: { group } })).instanceId;
      expect((await cloud.instances.get(other)).host).toBe(b);
      // The resize's destinations: c, then d and e. Its prep on c fails; meanwhile the other member is
      // migrated to d, so the scheduler's alternate d now breaks the group's policy: only the late check
      // on d can see it, and it moves on to e.
      await cloud.driver(c).setFaults({ prepResize: { failNext: 1 } });
      const held = cloud.holdNext('prepResize');
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium', confirmWindowSeconds: 0 });
      await held.reached;
      const moving = await startResize({ instanceId: other, host: d, confirmWindowSeconds: 0 });
      await resized(moving);
      await moving.executeUpdate(confirmResizeUpdate);
      expect((await cloud.instances.get(other)).host).toBe(d);
      held.open();
      const progress = await resized(handle);
      expect(progress).toMatchObject({ host: e, attempt: 3, hostsTried: [c, d, e] });
      expect(await eventsOf(id, 'resize')).toEqual([
        ['conductor_migrate_server', 0, a, 'Success'],
        ['compute_validate_instance_group_policy', 1, c, 'Success'],
        ['compute_prep_resize', 1, c, 'Error'],
        ['conductor_claim_alternate', 2, d, 'Success'],
        ['compute_validate_instance_group_policy', 2, d, 'Error'],
        ['conductor_claim_alternate', 3, e, 'Success'],
        ['compute_validate_instance_group_policy', 3, e, 'Success'],
        ['compute_prep_resize', 3, e, 'Success'],
        ['compute_resize_instance', 3, a, 'Success'],
        ['compute_finish_resize', 3, e, 'Success'],
      ]);
      // Nothing was asked of d for this instance, and its claim there is released.
      expect(cloud.computeCalls.filter((call) => call.host === d && call.instanceId === id)).toEqual([]);
      expect(await allocationsOf(id)).toEqual([{ host: e, resources: MEDIUM }]);
      expect((await cloud.placement.allocationsByHost(d)).map((x) => x.consumerId)).toEqual([other]);
      await handle.executeUpdate(confirmResizeUpdate);
      expect(await handle.result()).toMatchObject({ vmState: 'active', host: e, flavor: 'm1.medium' });
    });
  });

  it('ends in error with no allocation left when the source cannot take the instance back', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      // The guest vanished from its host behind the conductor's back: nothing to move, nothing to restore.
      await cloud.driver(a).destroy({ instanceId: id });
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium' });
      const failure = failureOf((await outcomeOf(handle.result())).error);
      expect(failure.type).toBe('InstanceNotFound');
      expect(failure.message).toMatch(new RegExp(`the instance could not be restored on ${a}`));
      expect(await cloud.instances.get(id)).toMatchObject({ vmState: 'error', taskState: null, host: a });
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({ status: 'error', destHost: b });
      expect(await allocationsOf(id)).toEqual([]);
      expect(await allocationsOf(migration.id)).toEqual([]);
      expect(await cloud.driver(b).listGuests()).toEqual([]);
    });
  });

  it('keeps a stopped instance stopped through resize, confirm, and another resize and its revert', async () => {
    const { az, hosts } = await cloud.zone(3);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      await cloud.driver(a).powerOff({ instanceId: id });
      await cloud.instances.update(id, { vmState: 'stopped', powerState: 'shutdown' });

      const first = await startResize({ instanceId: id, flavor: 'm1.medium' });
      await resized(first);
      expect(await cloud.instances.get(id)).toMatchObject({ vmState: 'resized', powerState: 'shutdown', host: b });
      expect(await guestsOn(b, id)).toEqual({ guest: ['m1.medium', 'shutdown'], aside: undefined });
      const confirmed = await first.executeUpdate(confirmResizeUpdate);
      expect(confirmed.instance).toMatchObject({ vmState: 'stopped', powerState: 'shutdown', host: b });
      await first.result();

      const second = await startResize({ instanceId: id, flavor: 'm1.large' });
      await resized(second);
      const dest = (await cloud.instances.get(id)).host!;
      expect(dest).not.toBe(b);
      expect(await guestsOn(dest, id)).toEqual({ guest: ['m1.large', 'shutdown'], aside: undefined });
      expect(await allocationsOf(id)).toEqual([{ host: dest, resources: LARGE }]);
      const reverted = await second.executeUpdate(revertResizeUpdate);
      expect(reverted.instance).toMatchObject({
        vmState: 'stopped',
        powerState: 'shutdown',
        host: b,
        flavor: 'm1.medium',
      });
      await second.result();
      expect(await guestsOn(b, id)).toEqual({ guest: ['m1.medium', 'shutdown'], aside: undefined });
      expect(await cloud.driver(dest).getGuest(id)).toBeUndefined();
      expect(await allocationsOf(id)).toEqual([{ host: b, resources: MEDIUM }]);
    });
  });

  it('resizes on the same host when allowed: both allocations there meanwhile, one guest after confirm or revert', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [a] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      const first = await startResize({ instanceId: id, flavor: 'm1.medium', allowSameHost: true });
      await resized(first);
      const migration = await migrationOf(id);
      expect(migration).toMatchObject({ sourceHost: a, destHost: a });
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: MEDIUM }]);
      expect(await allocationsOf(migration.id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await guestsOn(a, id)).toEqual({ guest: ['m1.medium', 'running'], aside: ['m1.small', 'shutdown'] });
      await first.executeUpdate(confirmResizeUpdate);
      await first.result();
      expect(await guestsOn(a, id)).toEqual({ guest: ['m1.medium', 'running'], aside: undefined });
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: MEDIUM }]);

      const second = await startResize({ instanceId: id, flavor: 'm1.large', allowSameHost: true });
      await resized(second);
      const reverted = await second.executeUpdate(revertResizeUpdate);
      await second.result();
      expect(reverted.instance).toMatchObject({ vmState: 'active', host: a, flavor: 'm1.medium' });
      expect((await cloud.driver(a).listGuests()).map((g) => [g.instanceId, g.flavor.name, g.powerState])).toEqual([
        [id, 'm1.medium', 'running'],
      ]);
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: MEDIUM }]);
    });
  });

  it('a cancelled move rolls back to the source: cancelled during the disk transfer', async () => {
    const { az, hosts } = await cloud.zone(2, { spawnSeconds: 3 });
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      const handle = await startResize({
        instanceId: id,
        flavor: 'm1.medium',
        timeouts: { scheduleToStartSeconds: 10, heartbeatSeconds: 2, longStepSeconds: 60 },
      });
      await progressReached(handle, (p) => p.taskState === 'resize_migrating', 'the disk transfer');
      await delay(500);
      await handle.cancel();
      expect(failureNameOf((await outcomeOf(handle.result())).error)).toBe('CancelledFailure');
      expect(await cloud.instances.get(id)).toMatchObject({
        vmState: 'active',
        taskState: null,
        powerState: 'running',
        host: a,
        flavor: 'm1.small',
      });
      expect((await cloud.instances.listFaults(id)).map((f) => [f.code, f.message])).toEqual([
        [499, 'resizeMigrate cancelled by the user'],
      ]);
      expect((await migrationOf(id)).status).toBe('error');
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await guestsOn(a, id)).toEqual({ guest: ['m1.small', 'running'], aside: undefined });
      expect(await cloud.driver(b).listGuests()).toEqual([]);
      // The transfer itself was cancelled (and waited for) before the source was restored.
      expect(await eventsOf(id, 'resize')).toEqual([
        ['conductor_migrate_server', 0, a, 'Success'],
        ['compute_prep_resize', 1, b, 'Success'],
        ['compute_resize_instance', 1, a, 'Error'],
        ['compute_finish_revert_resize', 1, a, 'Success'],
      ]);
    });
  });

  it('a cancelled move rolls back to the source: cancelled while awaiting confirmation, it is reverted', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const id = vm.instanceId;
      const handle = await startResize({ instanceId: id, flavor: 'm1.medium', confirmWindowSeconds: 0 });
      await resized(handle);
      await handle.cancel();
      expect(failureNameOf((await outcomeOf(handle.result())).error)).toBe('CancelledFailure');
      expect(await cloud.instances.get(id)).toMatchObject({
        vmState: 'active',
        taskState: null,
        powerState: 'running',
        host: a,
        flavor: 'm1.small',
      });
      expect((await migrationOf(id)).status).toBe('reverted');
      expect(await allocationsOf(id)).toEqual([{ host: a, resources: SMALL }]);
      expect(await cloud.driver(b).listGuests()).toEqual([]);
      expect(await actionsOf(id)).toEqual([
        ['create', 'Success'],
        ['resize', 'Success'],
        ['revertResize', 'Success'],
      ]);
    });
  });

  it('rejects bad input with InvalidRequest naming the field, before anything is written', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      const instanceId = randomUUID();
      await env.client.workflow.execute<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.buildInstance(instanceId),
        args: [{ instanceId, name: 'vm-bad-input', flavor: 'm1.small', image: 'ubuntu-24.04', availabilityZone: az }],
      });
      const before = await cloud.instances.get(instanceId);
      const cases: Array<[string, Record<string, unknown>]> = [
        ['flavor', { flavor: 'm1.enormous' }],
        ['flavor', { flavor: 'm1.tiny' }], // below the image's minimum memory
        ['confirmWindowSeconds', { confirmWindowSeconds: -1 }],
        ['maxAttempts', { maxAttempts: 0 }],
        ['host', { host: 'Not_A_Host' }],
        ['instanceId', { instanceId: 'not-a-uuid' }],
        ['unexpected', { unexpected: true }],
      ];
      for (const [field, patch] of cases) {
        const input = { instanceId, ...patch } as unknown as ResizeMigrateInput;
        const handle = await env.client.workflow.start<typeof resizeMigrate>('resizeMigrate', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: `resize-bad-${randomUUID()}`,
          args: [input],
        });
        const failure = failureOf((await outcomeOf(handle.result())).error);
        expect(failure.type, field).toBe('InvalidRequest');
        expect(failure.message).toContain(`Invalid request: ${field}:`);
      }
      expect(await cloud.instances.get(instanceId)).toEqual(before);
      expect(await actionsOf(instanceId)).toEqual([['create', 'Success']]);
      expect(await cloud.instances.listMigrations(instanceId)).toEqual([]);
      expect(await cloud.instances.listFaults(instanceId)).toEqual([]);
    });
  });
});
