/**
 * Versioned notifications (src/domain/notifications.ts): the sequence each operation writes to the outbox
 * on success, failure and cancellation, and every payload's shape against Nova's own samples (read at test
 * time from the pinned nova sdist: test/helpers/nova-notification-samples.ts).
 */
import { randomUUID } from 'node:crypto';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import type { InstanceRecord } from '../../src/domain/instance';
import {
  abortLiveMigrationUpdate,
  confirmResizeUpdate,
  forceCompleteUpdate,
  getProgressQuery,
  revertResizeUpdate,
} from '../../src/shared/messages';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { OutboxEntry } from '../../src/store/notification-outbox';
import { createNotificationOutbox } from '../../src/store/notification-outbox';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { liveCopyRunning } from '../helpers/temporal';
import { failureOf } from '../helpers/failures';
import { notificationSample, payloadShape, shapeDifferences } from '../helpers/nova-notification-samples';
import { imageId } from '../../src/store/ids';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud(
  (e, c) => {
    env = e;
    cloud = c;
  },
  { tag: 'n', shutdownSeconds: 0.1 }
);

type Kind =
  | 'stop'
  | 'start'
  | 'reboot'
  | 'pause'
  | 'unpause'
  | 'suspend'
  | 'resume'
  | 'rebuild'
  | 'resizeMigrate'
  | 'deleteInstance'
  | 'liveMigrate'
  | 'snapshot'
  | 'shelve'
  | 'unshelve';
function operate(kind: Kind, instanceId: string, input: Record<string, unknown> = {}) {
  return env.client.workflow.start(kind, {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: `${kind}-${instanceId}-${randomUUID().slice(0, 8)}`,
    args: [{ instanceId, ...input }],
  });
}
const run = async (kind: Kind, instanceId: string, input: Record<string, unknown> = {}): Promise<unknown> =>
  (await operate(kind, instanceId, input)).result() as Promise<unknown>;

const outbox = () => createNotificationOutbox(cloud.store);

/** The instance's notifications, in commit order, from `after` (a seq) on. */
async function notificationsOf(instanceId: string, after = 0): Promise<OutboxEntry[]> {
  return outbox().list({ instanceId, afterSeq: after });
}
const types = (entries: readonly OutboxEntry[]) => entries.map((n) => n.eventType);
const lastSeq = async (instanceId: string) => (await notificationsOf(instanceId)).at(-1)?.seq ?? 0;

/** Every notification's payload has the shape of Nova's sample for its event type; envelope fields too. */
function expectNovaShapes(entries: readonly OutboxEntry[]): void {
  for (const n of entries) {
    const sample = notificationSample(n.eventType);
    expect({ type: n.eventType, priority: n.priority }).toEqual({ type: n.eventType, priority: sample.priority });
    // NOTE(nova): the conductor publishes instance.create.* (Nova's compute does); compute.exception's
    // sample is the API's (an aggregate's), ours come from compute steps.
    const publisher = n.eventType.startsWith('instance.create.')
      ? 'nova-conductor'
      : n.eventType === 'compute.exception'
        ? 'nova-compute'
        : sample.publisher_id.split(':')[0];
    expect(n.publisherId.split(':')[0], n.eventType).toBe(publisher);
    expect(shapeDifferences(payloadShape(n.payload), payloadShape(sample.payload)), n.eventType).toEqual([]);
    expect(n.messageId).toMatch(/^[0-9a-f-]{36}$/);
  }
}

const data = (n: OutboxEntry | undefined) => n?.payload['nova_object.data'] as Record<string, unknown>;

describe('versioned notifications', () => {
  it('a build writes create.start, the scheduler’s select_destinations, then create.end, with Nova’s payloads', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const seen = await notificationsOf(vm.instanceId);
      expect(types(seen)).toEqual([
        'instance.create.start',
        'scheduler.select_destinations.start',
        'scheduler.select_destinations.end',
        'instance.create.end',
      ]);
      expectNovaShapes(seen);
      expect(data(seen[0])).toMatchObject({
        uuid: vm.instanceId,
        state: 'building',
        task_state: 'scheduling',
        host: null,
      });
      expect(data(seen.at(-1))).toMatchObject({
        state: 'active',
        task_state: null,
        power_state: 'running',
        host: hosts[0],
      });
      expect(data(seen.at(-1))?.launched_at).toEqual(expect.any(String));
      expect(seen.at(-1)?.publisherId).toMatch(/^nova-conductor:/);
    });
  });

  it('a build rescheduled once: compute.exception from the failed host between the two selections', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.driver(hosts[0]).setFaults({ spawn: { failNext: 1, kind: 'reschedule' } });
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      expect(vm.host).toBe(hosts[1]);
      const seen = await notificationsOf(vm.instanceId);
      expect(types(seen)).toEqual([
        'instance.create.start',
        'scheduler.select_destinations.start',
        'scheduler.select_destinations.end',
        'compute.exception',
        'instance.create.end',
      ]);
      expectNovaShapes(seen);
      const exception = seen[3]!;
      expect(exception).toMatchObject({ priority: 'ERROR', publisherId: `nova-compute:${hosts[0]}` });
      expect(data(exception)).toMatchObject({ function_name: 'compute_spawn' });
    });
  });

  it('a build with no host: create.error carrying NoValidHost as its fault', async () => {
    const { az, hosts } = await cloud.zone(1, { memoryMb: 1024 });
    await cloud.run(hosts, async () => {
      const failed = await cloud.boot(az).catch((e: unknown) => e);
      expect(failureOf(failed).type).toBe('NoValidHost');
      const [instance] = (await cloud.instances.list()).filter((i) => i.availabilityZone === az);
      const seen = await notificationsOf(instance!.instanceId);
      expect(types(seen)).toEqual([
        'instance.create.start',
        'scheduler.select_destinations.start',
        'instance.create.error',
      ]);
      expectNovaShapes(seen);
      const error = seen.at(-1)!;
      expect(error.priority).toBe('ERROR');
      expect(data(error)).toMatchObject({ state: 'error' });
      expect((data(error)?.fault as Record<string, Record<string, unknown>>)['nova_object.data']).toMatchObject({
        exception: 'NoValidHost',
      });
    });
  });

  it('stop, start, reboot, rebuild and delete each write their start and end', async () => {
    const { az, hosts } = await cloud.zone(1);
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const steps: Array<[Kind, Record<string, unknown>, string[]]> = [
        ['stop', {}, ['instance.power_off.start', 'instance.power_off.end']],
        ['start', {}, ['instance.power_on.start', 'instance.power_on.end']],
        ['reboot', {}, ['instance.reboot.start', 'instance.reboot.end']],
        ['rebuild', {}, ['instance.rebuild.start', 'instance.rebuild.end']],
        ['deleteInstance', {}, ['instance.delete.start', 'instance.delete.end']],
      ];
      for (const [kind, input, expected] of steps) {
        const after = await lastSeq(vm.instanceId);
        await run(kind, vm.instanceId, input);
        const seen = await notificationsOf(vm.instanceId, after);
        expect(types(seen), kind).toEqual(expected);
        expectNovaShapes(seen);
      }
      const all = await notificationsOf(vm.instanceId);
      expect(data(all.find((n) => n.eventType === 'instance.power_off.start'))).toMatchObject({
        task_state: 'powering-off',
      });
      expect(data(all.find((n) => n.eventType === 'instance.power_off.end'))).toMatchObject({
        state: 'stopped',
        power_state: 'shutdown',
      });
      expect(data(all.at(-1))).toMatchObject({ state: 'deleted' });
      expect(data(all.at(-1))?.deleted_at).toEqual(expect.any(String));
    });
  });

  it('pause, unpause, suspend and resume each write their start and end, with the states Nova reports', async () => {
    const { az, hosts } = await cloud.zone(1);
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const steps: Array<[Kind, { task_state: string }, { state: string; power_state: string }]> = [
        ['pause', { task_state: 'pausing' }, { state: 'paused', power_state: 'paused' }],
        ['unpause', { task_state: 'unpausing' }, { state: 'active', power_state: 'running' }],
        ['suspend', { task_state: 'suspending' }, { state: 'suspended', power_state: 'suspended' }],
        ['resume', { task_state: 'resuming' }, { state: 'active', power_state: 'running' }],
      ];
      for (const [kind, started, ended] of steps) {
        const after = await lastSeq(vm.instanceId);
        await run(kind, vm.instanceId);
        const seen = await notificationsOf(vm.instanceId, after);
        expect(types(seen), kind).toEqual([`instance.${kind}.start`, `instance.${kind}.end`]);
        expectNovaShapes(seen);
        expect(data(seen[0]), kind).toMatchObject(started);
        expect(data(seen[1]), kind).toMatchObject({ ...ended, task_state: null });
      }
    });
  });

  it("snapshot, shelve (offloaded at once) and unshelve: their start and end, Nova's payloads; a shelve's own copy emits no snapshot", async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const steps: Array<[Kind, Record<string, unknown>, string[]]> = [
        [
          'snapshot',
          { name: `snap-${vm.instanceId.slice(0, 8)}` },
          ['instance.snapshot.start', 'instance.snapshot.end'],
        ],
        [
          'shelve',
          { shutdownTimeoutSeconds: 0 },
          [
            'instance.shelve.start',
            'instance.shelve.end',
            'instance.shelve_offload.start',
            'instance.shelve_offload.end',
          ],
        ],
        [
          'unshelve',
          {},
          [
            'instance.unshelve.start',
            'scheduler.select_destinations.start',
            'scheduler.select_destinations.end',
            'instance.unshelve.end',
          ],
        ],
      ];
      const seen: Record<string, OutboxEntry[]> = {};
      for (const [kind, input, expected] of steps) {
        const after = await lastSeq(vm.instanceId);
        await run(kind, vm.instanceId, input);
        seen[kind] = await notificationsOf(vm.instanceId, after);
        expect(types(seen[kind]), kind).toEqual(expected);
        expectNovaShapes(seen[kind]);
      }
      const [snapStart, snapEnd] = seen.snapshot!;
      const image = (await cloud.instances.listImages()).find((i) => i.instanceId === vm.instanceId)!;
      // Written with the copy's step: the task state is still the copy's (NOTE(nova) in the table).
      expect(data(snapEnd)).toMatchObject({ snapshot_image_id: imageId(image.name), task_state: 'image_uploading' });
      expect(data(snapStart)?.snapshot_image_id).toBe(imageId(image.name));
      const [shelveStart, shelveEnd, offloadStart, offloadEnd] = seen.shelve!;
      expect(data(shelveStart)).toMatchObject({ task_state: 'shelving' });
      expect(data(shelveEnd)).toMatchObject({ state: 'shelved', power_state: 'shutdown' });
      expect(data(offloadStart)).toMatchObject({ state: 'shelved', task_state: 'shelving_offloading' });
      expect(data(offloadEnd)).toMatchObject({ state: 'shelved_offloaded', host: null });
      const [unshelveStart, , , unshelveEnd] = seen.unshelve!;
      expect(data(unshelveStart)).toMatchObject({ state: 'shelved_offloaded', task_state: 'unshelving', host: null });
      expect(data(unshelveEnd)).toMatchObject({ state: 'active', power_state: 'running', task_state: null });
    });
  });

  it('a resize confirmed and a resize reverted: prep, resize, finish, then confirm or revert', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      for (const [decision, update] of [
        ['confirm', confirmResizeUpdate],
        ['revert', revertResizeUpdate],
      ] as const) {
        const vm = await cloud.boot(az);
        const after = await lastSeq(vm.instanceId);
        const handle = await operate('resizeMigrate', vm.instanceId, { flavor: 'm1.medium', confirmWindowSeconds: 0 });
        await expect
          .poll(
            async () => {
              const { vmState, taskState } = await handle.query(getProgressQuery);
              return `${vmState}/${taskState ?? 'none'}`;
            },
            { timeout: 30_000, interval: 50 }
          )
          .toBe('resized/none');
        await handle.executeUpdate(update);
        await handle.result();
        const seen = await notificationsOf(vm.instanceId, after);
        expect(types(seen), decision).toEqual([
          'scheduler.select_destinations.start',
          'scheduler.select_destinations.end',
          'instance.resize_prep.start',
          'instance.resize_prep.end',
          'instance.resize.start',
          'instance.resize.end',
          'instance.resize_finish.start',
          'instance.resize_finish.end',
          `instance.resize_${decision}.start`,
          `instance.resize_${decision}.end`,
        ]);
        expectNovaShapes(seen);
        const prep = seen.find((n) => n.eventType === 'instance.resize_prep.start');
        expect((data(prep)?.new_flavor as Record<string, Record<string, unknown>>)['nova_object.data']).toMatchObject({
          name: 'm1.medium',
        });
        await run('deleteInstance', vm.instanceId);
      }
    });
  });

  it('a live migration: pre and post on the hosts', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const after = await lastSeq(vm.instanceId);
      await run('liveMigrate', vm.instanceId);
      const seen = await notificationsOf(vm.instanceId, after);
      expect(types(seen)).toEqual([
        'scheduler.select_destinations.start',
        'scheduler.select_destinations.end',
        'instance.live_migration_pre.start',
        'instance.live_migration_pre.end',
        'instance.live_migration_post.start',
        'instance.live_migration_post.end',
      ]);
      expectNovaShapes(seen);
      await run('deleteInstance', vm.instanceId);
    });
  });

  it('a resize whose disk copy fails: resize.error and compute.exception from the source, no resize_finish', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const after = await lastSeq(vm.instanceId);
      await cloud.driver(hosts[0]).setFaults({ migrateDisk: { failNext: 1 } });
      const failed = await run('resizeMigrate', vm.instanceId, { flavor: 'm1.medium' }).catch((e: unknown) => e);
      expect(failureOf(failed).type).toBeDefined();
      const seen = await notificationsOf(vm.instanceId, after);
      expect(types(seen)).toEqual([
        'scheduler.select_destinations.start',
        'scheduler.select_destinations.end',
        'instance.resize_prep.start',
        'instance.resize_prep.end',
        'instance.resize.start',
        'instance.resize.error',
        'compute.exception',
      ]);
      expectNovaShapes(seen);
      expect(seen.slice(-2).map((n) => [n.priority, n.publisherId])).toEqual([
        ['ERROR', `nova-compute:${hosts[0]}`],
        ['ERROR', `nova-compute:${hosts[0]}`],
      ]);
      expect(await cloud.instances.get(vm.instanceId)).toMatchObject({ host: hosts[0], flavor: 'm1.small' });
      await run('deleteInstance', vm.instanceId);
    });
  });

  it('a live migration whose memory copy fails: compute.exception, then the rollback on the source', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const after = await lastSeq(vm.instanceId);
      await cloud.driver(hosts[0]).setFaults({ liveMigration: { failNext: 1 } });
      const failed = await run('liveMigrate', vm.instanceId).catch((e: unknown) => e);
      expect(failureOf(failed).type).toBeDefined();
      const seen = await notificationsOf(vm.instanceId, after);
      expect(types(seen)).toEqual([
        'scheduler.select_destinations.start',
        'scheduler.select_destinations.end',
        'instance.live_migration_pre.start',
        'instance.live_migration_pre.end',
        'compute.exception',
        'instance.live_migration_rollback.start',
        'instance.live_migration_rollback.end',
      ]);
      expectNovaShapes(seen);
      expect(data(seen[4])).toMatchObject({ function_name: 'compute_live_migration' });
      await run('deleteInstance', vm.instanceId);
    });
  });

  it('a build cancelled while it spawns: create.start, the selection, then create.error and nothing after', async () => {
    const { az, hosts } = await cloud.zone(1);
    await cloud.run(hosts, async () => {
      const gate = cloud.holdNext('spawnInstance');
      const instanceId = randomUUID();
      const handle = await env.client.workflow.start('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.buildInstance(instanceId),
        args: [{ instanceId, name: 'vm-cancelled', flavor: 'm1.small', image: 'cirros', availabilityZone: az }],
      });
      await gate.reached;
      await handle.cancel();
      gate.open();
      await gate.done;
      await handle.result().catch(() => undefined);
      const seen = await notificationsOf(instanceId);
      expect(types(seen).slice(0, 3)).toEqual([
        'instance.create.start',
        'scheduler.select_destinations.start',
        'scheduler.select_destinations.end',
      ]);
      expect(
        types(seen)
          .slice(3)
          .filter((t) => t !== 'compute.exception')
      ).toEqual(['instance.create.error']);
      expect(types(seen)).not.toContain('instance.create.end');
      expectNovaShapes(seen);
    });
  });

  it('an evacuation off a forced-down host: service.update, instance.evacuate, then the rebuild on another host', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const services = await outbox().list({ afterSeq: await lastSeq(vm.instanceId) });
      const before = services.at(-1)?.seq ?? (await lastSeq(vm.instanceId));
      await env.client.workflow.execute('setHostService', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.setHostService(hosts[0], randomUUID().slice(0, 8)),
        args: [{ host: hosts[0], forcedDown: true }],
      });
      const service = (await outbox().list({ afterSeq: before })).filter((n) => n.eventType === 'service.update');
      expect(service).toHaveLength(1);
      expectNovaShapes(service);
      expect(data(service[0])).toMatchObject({ host: hosts[0], forced_down: true, disabled: false });

      const after = await lastSeq(vm.instanceId);
      const evacuated = (await env.client.workflow.execute('rebuild', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.evacuate(vm.instanceId, randomUUID().slice(0, 8)),
        args: [{ instanceId: vm.instanceId, evacuate: true }],
      })) as InstanceRecord;
      expect(evacuated.host).toBe(hosts[1]);
      const seen = await notificationsOf(vm.instanceId, after);
      expect(types(seen)).toEqual([
        'instance.evacuate',
        'instance.rebuild.start',
        'scheduler.select_destinations.start',
        'scheduler.select_destinations.end',
        'instance.rebuild.end',
      ]);
      expectNovaShapes(seen);
      expect(seen[0]!.publisherId).toMatch(/^nova-api:/);
      expect(data(seen.at(-1))).toMatchObject({ host: hosts[1], state: 'active' });
      await env.client.workflow.execute('setHostService', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.setHostService(hosts[0], randomUUID().slice(0, 8)),
        args: [{ host: hosts[0], forcedDown: false }],
      });
      await run('deleteInstance', vm.instanceId);
    });
  });

  it('a server group: create, add_member for an instance built in it, delete', async () => {
    const { az, hosts } = await cloud.zone(2);
    const group = `ng-${randomUUID().slice(0, 8)}`;
    const before = (await outbox().list({ limit: 100_000 })).at(-1)?.seq ?? 0;
    await cloud.run(hosts, async () => {
      const serverGroup = (input: Record<string, unknown>) =>
        env.client.workflow.execute('serverGroup', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds.serverGroup(String(input.action), randomUUID().slice(0, 8)),
          args: [input],
        });
      await serverGroup({ action: 'create', name: group, policy: 'anti-affinity' });
      const vm = await cloud.boot(az, { schedulerHints: { group } });
      await run('deleteInstance', vm.instanceId);
      await serverGroup({ action: 'delete', name: group });
      const seen = (await outbox().list({ afterSeq: before, limit: 100_000 })).filter((n) =>
        n.eventType.startsWith('server_group.')
      );
      expect(seen.map((n) => [n.eventType, data(n)?.name])).toEqual([
        ['server_group.create', group],
        ['server_group.add_member', group],
        ['server_group.delete', group],
      ]);
      expectNovaShapes(seen);
      expect(data(seen[1])).toMatchObject({ members: [vm.instanceId], policy: 'anti-affinity' });
    });
  });

  it('a live migration force-completed, and one aborted: their notifications between pre and post or rollback', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      for (const [update, expected] of [
        [
          forceCompleteUpdate,
          [
            'instance.live_migration_force_complete.start',
            'instance.live_migration_force_complete.end',
            'instance.live_migration_post.start',
            'instance.live_migration_post.end',
          ],
        ],
        [
          abortLiveMigrationUpdate,
          [
            'instance.live_migration_abort.start',
            'instance.live_migration_abort.end',
            'instance.live_migration_rollback.start',
            'instance.live_migration_rollback.end',
          ],
        ],
      ] as const) {
        const vm = await cloud.boot(az);
        // A copy that never converges by itself: it runs until the Update.
        await cloud
          .driver(hosts[0])
          .setFaults({ liveMigration: { bandwidthMbPerSecond: 1024, dirtyMbPerSecond: 2048 } });
        const after = await lastSeq(vm.instanceId);
        const handle = await operate('liveMigrate', vm.instanceId);
        await liveCopyRunning(handle);
        if (update === forceCompleteUpdate) await handle.executeUpdate(forceCompleteUpdate);
        else await handle.executeUpdate(abortLiveMigrationUpdate);
        await handle.result().catch(() => undefined);
        const seen = await notificationsOf(vm.instanceId, after);
        const steps = types(seen).filter((t) => !t.startsWith('scheduler.') && !t.includes('live_migration_pre'));
        expect(steps.filter((t) => t !== 'compute.exception')).toEqual(expected);
        expectNovaShapes(seen);
        await cloud.driver(hosts[0]).setFaults({});
        await run('deleteInstance', vm.instanceId);
      }
    });
  });
});
