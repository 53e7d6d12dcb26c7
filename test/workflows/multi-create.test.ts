/**
 * Multi-create (buildInstance with count / minCount / maxCount) and server groups: one scheduler call for
 * the whole request, all or nothing for minCount, each placed instance built by its own child workflow,
 * anti-affinity held across the batch and checked again on the host before the build (the late check
 * reschedules), and the serverGroup API. Every test ends with the placement audit clean
 * (useTimeSkippingCloud) and no workflow it started still running.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';

import type { WorkflowFailedError } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { FakeDriver } from '../../src/compute/fake';

import type { BuildInstanceInput, ServerGroupInput } from '../../src/domain/schemas';
import { getProgressQuery } from '../../src/shared/messages';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import type { serverGroup } from '../../src/workflows/server-group';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { failureOf } from '../helpers/failures';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud(
  (e, c) => {
    env = e;
    cloud = c;
  },
  { tag: 'mc' }
);

/** Every workflow a test started (parents and the children they name): none may still run after it. */
const started: string[] = [];
afterEach(async () => {
  for (const id of started.splice(0)) {
    const status = await env.client.workflow
      .getHandle(id)
      .describe()
      .then(
        (d) => d.status.name,
        (err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return 'NOT_STARTED';
          throw err;
        }
      );
    expect(status, id).not.toBe('RUNNING');
  }
});

function groups(input: ServerGroupInput) {
  const workflowId = workflowIds.serverGroup(input.action, randomUUID().slice(0, 8));
  started.push(workflowId);
  return env.client.workflow.execute<typeof serverGroup>('serverGroup', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId,
    args: [input],
  });
}

async function build(input: BuildInstanceInput, count: number) {
  const workflowId = workflowIds.buildInstance(randomUUID());
  started.push(workflowId, ...Array.from({ length: count }, (_, i) => workflowIds.batchMember(workflowId, i + 1)));
  const handle = await env.client.workflow.start<typeof buildInstance>('buildInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId,
    args: [input],
  });
  const outcome = await handle.result().then(
    (result) => ({ result, error: undefined }),
    (error: unknown) => ({ result: undefined, error })
  );
  return { workflowId, handle, ...outcome };
}

/** The typed failure a serverGroup call ends with. */
async function groupFailure(input: ServerGroupInput) {
  return failureOf(
    await groups(input).then(
      () => undefined,
      (e: unknown) => e
    )
  );
}

/** The instances of a request (records created for its children), by name suffix. */
async function membersOf(parentWorkflowId: string, count: number) {
  const all = await cloud.instances.list();
  const byRequest = await Promise.all(
    all.map(async (i) => ({ i, actions: await cloud.instances.listActions(i.instanceId) }))
  );
  return Array.from({ length: count }, (_, n) => {
    const childId = workflowIds.batchMember(parentWorkflowId, n + 1);
    return byRequest.find((r) => r.actions.some((a) => a.action === 'create' && a.requestId === childId))?.i;
  });
}

async function eventsOf(instanceId: string) {
  const actions = await cloud.instances.listActions(instanceId);
  return actions.flatMap((a) => a.events.map((e) => [e.event, e.attempt, e.host, e.result] as const));
}

describe('multi-create', () => {
  it('count 5 with anti-affinity on a 3-host fleet fails all or nothing: NoValidHost, every instance error, nothing claimed', async () => {
    const { az, hosts } = await cloud.zone(3);
    await cloud.run(hosts, () => groups({ action: 'create', name: 'spread-5', policy: 'anti-affinity' }));
    const { workflowId, error } = await cloud.run(hosts, () =>
      build(
        {
          name: 'web',
          flavor: 'm1.small',
          image: 'cirros',
          availabilityZone: az,
          count: 5,
          schedulerHints: { group: 'spread-5' },
        },
        5
      )
    );
    const failure = failureOf(error);
    expect(failure.type).toBe('NoValidHost');
    expect(failure.message).toMatch(/Filter ServerGroupAntiAffinityFilter returned 0 hosts/);

    const members = await membersOf(workflowId, 5);
    expect(members.map((m) => m?.name)).toEqual(['web-1', 'web-2', 'web-3', 'web-4', 'web-5']);
    for (const m of members) {
      expect(m).toMatchObject({ vmState: 'error', taskState: null, host: null, serverGroup: 'spread-5' });
      expect(await cloud.placement.getAllocations(m!.instanceId)).toEqual([]);
      expect((await cloud.instances.listFaults(m!.instanceId)).map((f) => [f.code, f.details])).toEqual([
        [500, 'NoValidHost'],
      ]);
      // Nova's cell0 burial: one failed conductor event, nothing sent to any host.
      expect(await eventsOf(m!.instanceId)).toEqual([['conductor_schedule_and_build_instances', 0, null, 'Error']]);
    }
    for (const host of hosts) expect(await cloud.placement.allocationsByHost(host)).toEqual([]);
    expect(cloud.computeCalls.filter((c) => hosts.includes(c.host))).toEqual([]);
    // No child was started.
    await expect(env.client.workflow.getHandle(workflowIds.batchMember(workflowId, 1)).describe()).rejects.toThrow(
      WorkflowNotFoundError
    );
  });

  it('minCount 2, maxCount 5 with room for 3 builds exactly 3, each in its own child workflow with its own history', async () => {
    // Room for one m1.small (2048 MB) per host.
    const { az, hosts } = await cloud.zone(3, { memoryMb: 3072 });
    const { workflowId, result, error } = await cloud.run(hosts, () =>
      build({ name: 'db', flavor: 'm1.small', image: 'cirros', availabilityZone: az, minCount: 2, maxCount: 5 }, 5)
    );
    expect(error).toBeUndefined();
    const batch = result!.batch!;
    expect(batch.requested).toEqual({ min: 2, max: 5 });
    expect(batch.placed).toBe(3);
    expect(batch.instances.map((m) => [m.index, m.name, m.record.vmState, m.failure])).toEqual([
      [1, 'db-1', 'active', undefined],
      [2, 'db-2', 'active', undefined],
      [3, 'db-3', 'active', undefined],
    ]);
    expect(new Set(batch.instances.map((m) => m.record.host))).toEqual(new Set(hosts));
    // The result is the first instance (Nova's API answer) with the batch.
    expect(result).toMatchObject({ instanceId: batch.instances[0]!.instanceId, name: 'db-1', vmState: 'active' });
    for (const m of batch.instances) {
      expect(m.workflowId).toBe(workflowIds.batchMember(workflowId, m.index));
      expect((await cloud.placement.getAllocations(m.instanceId)).map((a) => a.host)).toEqual([m.record.host]);
      expect((await cloud.driver(m.record.host!).listGuests()).map((g) => g.instanceId)).toEqual([m.instanceId]);
    }

    // The two the fleet had no room for were never claimed for: deleted, with why.
    const members = await membersOf(workflowId, 5);
    for (const m of members.slice(3)) {
      expect(m).toMatchObject({ vmState: 'deleted', host: null });
      expect(await cloud.placement.getAllocations(m!.instanceId)).toEqual([]);
      expect((await cloud.instances.listFaults(m!.instanceId)).at(-1)?.message).toMatch(
        /^Not built: room for 3 of at most 5 instances/
      );
    }

    // Each placed instance has its own history: a child of the request, with its own placement attempt.
    const parent = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const childStarts = (parent.events ?? []).flatMap((e) =>
      e.startChildWorkflowExecutionInitiatedEventAttributes
        ? [e.startChildWorkflowExecutionInitiatedEventAttributes.workflowId]
        : []
    );
    expect(childStarts).toEqual(batch.instances.map((m) => m.workflowId));
    const schedulerCalls = (parent.events ?? []).filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'selectDestinations'
    );
    expect(schedulerCalls).toHaveLength(1);
    for (const m of batch.instances) {
      const history = await env.client.workflow.getHandle(m.workflowId).fetchHistory();
      const first = history.events?.[0]?.workflowExecutionStartedEventAttributes;
      expect(first?.workflowType?.name).toBe('buildInstance');
      expect(first?.parentWorkflowExecution?.workflowId).toBe(workflowId);
      const attempts = (history.events ?? []).flatMap((e) =>
        e.startChildWorkflowExecutionInitiatedEventAttributes
          ? [e.startChildWorkflowExecutionInitiatedEventAttributes.workflowId]
          : []
      );
      expect(attempts).toEqual([workflowIds.placementAttempt(m.instanceId, 'build')]);
      // The child did not call the scheduler: its parent chose its hosts.
      expect(
        (history.events ?? []).some(
          (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'selectDestinations'
        )
      ).toBe(false);
    }
  });

  it('the late anti-affinity check on the host reschedules an instance whose alternate a member took', async () => {
    const { az, hosts } = await cloud.zone(3);
    const [a, b, c] = hosts;
    await cloud.run(hosts, () => groups({ action: 'create', name: 'spread-late', policy: 'anti-affinity' }));
    // web-1 is placed on a (alternates b, c), web-2 on b; a fails web-1's spawn, so its first alternate is
    // b, where web-2 now is: the scheduler could not know, the check on the host does.
    await cloud.driver(a).setFaults({ spawn: { failNext: 1, kind: 'reschedule' } });
    const { result, error } = await cloud.run(hosts, () =>
      build(
        {
          name: 'late',
          flavor: 'm1.small',
          image: 'cirros',
          availabilityZone: az,
          count: 2,
          schedulerHints: { group: 'spread-late' },
        },
        2
      )
    );
    expect(error).toBeUndefined();
    const [first, second] = result!.batch!.instances;
    expect([first?.record.host, second?.record.host]).toEqual([c, b]);
    expect(first?.record.vmState).toBe('active');
    const checks = (await eventsOf(first!.instanceId)).filter((e) => e[0] === 'compute_validate_instance_group_policy');
    expect(checks).toEqual([
      ['compute_validate_instance_group_policy', 1, a, 'Success'],
      ['compute_validate_instance_group_policy', 2, b, 'Error'],
      ['compute_validate_instance_group_policy', 3, c, 'Success'],
    ]);
    // The violation is no fault of b's: nothing was asked of b for web-1, and no failed build counted there.
    expect(cloud.computeCalls.filter((call) => call.host === b && call.instanceId === first!.instanceId)).toEqual([]);
    const states = await cloud.placement.listHostStates(() => true);
    expect(states.find((s) => s.host === b)?.failedBuilds).toBe(0);
    expect((await cloud.placement.getAllocations(first!.instanceId)).map((x) => x.host)).toEqual([c]);
    expect((await cloud.instances.getServerGroup('spread-late'))?.hosts).toEqual([b, c].sort());
  });

  it('lists an instance whose build failed after placement with its failure; the others are built', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.run(hosts, () => groups({ action: 'create', name: 'spread-fail', policy: 'anti-affinity' }));
    await cloud.driver(b).setFaults({ spawn: { failNext: 1, kind: 'reschedule' } });
    const { result, error } = await cloud.run(hosts, () =>
      build(
        {
          name: 'half',
          flavor: 'm1.small',
          image: 'cirros',
          availabilityZone: az,
          count: 2,
          maxAttempts: 1,
          schedulerHints: { group: 'spread-fail' },
        },
        2
      )
    );
    expect(error).toBeUndefined();
    const [ok, failed] = result!.batch!.instances;
    expect([ok?.name, ok?.record.vmState, ok?.record.host, ok?.failure]).toEqual(['half-1', 'active', a, undefined]);
    expect(failed?.name).toBe('half-2');
    expect(failed?.record).toMatchObject({ vmState: 'error', taskState: null });
    expect(failed?.failure?.type).toBe('MaxRetriesExceeded');
    expect(failed?.failure?.message).toMatch(/^Exceeded maximum number of retries.*Hosts tried: /);
    expect(await cloud.placement.getAllocations(failed!.instanceId)).toEqual([]);
    expect(await cloud.driver(b).listGuests()).toEqual([]);
  });

  it('a cancelled request waits for each child to roll back: every instance deleted, nothing claimed, no guest', async () => {
    const { az, hosts } = await cloud.zone(2);
    // Spawns take 30 s, so both children are mid-spawn when the request is cancelled.
    for (const host of hosts)
      cloud.drivers.set(
        host,
        new FakeDriver({ host, stateDir: path.join(cloud.dataDir, 'compute'), spawnSeconds: 30 })
      );
    const workflowId = workflowIds.buildInstance(randomUUID());
    const children = [1, 2].map((i) => workflowIds.batchMember(workflowId, i));
    started.push(workflowId, ...children);
    const outcome = await cloud.run(hosts, async () => {
      const handle = await env.client.workflow.start<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId,
        args: [{ name: 'gone', flavor: 'm1.small', image: 'cirros', availabilityZone: az, count: 2 }],
      });
      for (const child of children)
        await vi.waitFor(
          async () =>
            expect((await env.client.workflow.getHandle(child).query(getProgressQuery)).taskState).toBe('spawning'),
          { timeout: 15_000, interval: 100 }
        );
      await handle.cancel();
      return handle.result().then(
        () => undefined,
        (e: unknown) => e
      );
    });
    expect((outcome as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    for (const member of await membersOf(workflowId, 2)) {
      expect(member).toMatchObject({ vmState: 'deleted', taskState: null, host: null });
      expect(await cloud.placement.getAllocations(member!.instanceId)).toEqual([]);
    }
    for (const host of hosts) expect(await cloud.driver(host).listGuests()).toEqual([]);
    for (const child of children)
      expect((await env.client.workflow.getHandle(child).describe()).status.name).toBe('CANCELLED');
  });

  it('re-submitted under the same workflow id, returns the instances its first run built and creates nothing', async () => {
    const { az, hosts } = await cloud.zone(2);
    const input = { name: 'twice', flavor: 'm1.small', image: 'cirros', availabilityZone: az, count: 2 };
    const first = await cloud.run(hosts, () => build(input, 2));
    expect(first.error).toBeUndefined();
    const before = (await cloud.instances.list()).length;
    const again = await cloud.run(hosts, async () => {
      const handle = await env.client.workflow.start<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: first.workflowId,
        args: [input],
      });
      return handle.result();
    });
    expect(again.batch!.instances.map((m) => [m.name, m.instanceId, m.record.vmState, m.record.host])).toEqual(
      first.result!.batch!.instances.map((m) => [m.name, m.instanceId, 'active', m.record.host])
    );
    expect((await cloud.instances.list()).length).toBe(before);
    for (const m of again.batch!.instances)
      expect((await cloud.placement.getAllocations(m.instanceId)).map((a) => a.host)).toEqual([m.record.host]);
  });

  it('a child whose instance was deleted before it started releases the claim its parent made, and builds nothing', async () => {
    const { az, hosts } = await cloud.zone(1);
    const host = hosts[0];
    const instanceId = randomUUID();
    const childId = workflowIds.batchMember(workflowIds.buildInstance(randomUUID()), 1);
    started.push(childId);
    // As a parent leaves it: the record owned by the child-to-be, its create action, the claim; then a
    // delete takes the instance (its owner's workflow not running yet) before the child starts.
    await cloud.instances.create({
      instanceId,
      name: 'taken-1',
      vmState: 'building',
      taskState: 'scheduling',
      taskOwner: childId,
      powerState: 'nostate',
      host: null,
      availabilityZone: az,
      flavor: 'm1.small',
      image: 'cirros',
      vcpus: 1,
      memoryMb: 2048,
      diskGb: 20,
      serverGroup: null,
    });
    await cloud.instances.startAction(instanceId, 'create', childId);
    const resources = { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 };
    await cloud.placement.claim(instanceId, host, resources);
    await cloud.instances.update(instanceId, { vmState: 'deleted', taskState: null, taskOwner: null });
    const record = await cloud.run(hosts, () =>
      env.client.workflow.execute<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: childId,
        args: [
          {
            name: 'taken-1',
            flavor: 'm1.small',
            image: 'cirros',
            availabilityZone: az,
            instanceId,
            scheduled: { hosts: [host], resources, hostZones: { [host]: az } },
          },
        ],
      })
    );
    expect(record).toMatchObject({ instanceId, vmState: 'deleted' });
    expect(await cloud.placement.getAllocations(instanceId)).toEqual([]);
    expect(cloud.computeCalls.filter((c) => c.instanceId === instanceId)).toEqual([]);
  });

  it('refuses a forged `scheduled` (no claim made by a parent) with InvalidRequest, creating nothing', async () => {
    const { az, hosts } = await cloud.zone(1);
    const instanceId = randomUUID();
    const workflowId = workflowIds.buildInstance(instanceId);
    started.push(workflowId);
    const error = await cloud.run(hosts, () =>
      env.client.workflow
        .execute<typeof buildInstance>('buildInstance', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId,
          args: [
            {
              name: 'forged',
              flavor: 'm1.small',
              image: 'cirros',
              availabilityZone: az,
              instanceId,
              scheduled: { hosts, resources: { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 }, hostZones: {} },
            },
          ],
        })
        .then(
          () => undefined,
          (e: unknown) => e
        )
    );
    const failure = failureOf(error);
    expect(failure.type).toBe('InvalidRequest');
    expect(failure.message).toMatch(/^Invalid request: scheduled: set only by a multi-create parent/);
    expect(await cloud.instances.find(instanceId)).toBeUndefined();
    expect(await cloud.placement.getAllocations(instanceId)).toEqual([]);
  });

  it('refuses bad counts with InvalidRequest naming the field, creating nothing', async () => {
    const { az, hosts } = await cloud.zone(1);
    const before = (await cloud.instances.list()).length;
    const base = { name: 'bad', flavor: 'm1.small', image: 'cirros', availabilityZone: az };
    const cases: Array<[BuildInstanceInput, RegExp]> = [
      [{ ...base, count: 2, minCount: 1 }, /count: give count, or minCount and maxCount, not both/],
      [{ ...base, minCount: 3, maxCount: 2 }, /maxCount: maxCount must be at least minCount/],
      [{ ...base, count: 2, instanceId: randomUUID() }, /instanceId: an instanceId names one instance/],
      [{ ...base, count: 0 }, /count: /],
    ];
    for (const [input, message] of cases) {
      const { error } = await cloud.run(hosts, () => build(input, 0));
      const failure = failureOf(error);
      expect(failure.type).toBe('InvalidRequest');
      expect(failure.message).toMatch(message);
    }
    expect((await cloud.instances.list()).length).toBe(before);
  });
});

describe('serverGroup', () => {
  it('creates, lists, shows and deletes groups; a group with members is not deleted', async () => {
    const { az, hosts } = await cloud.zone(2);
    await cloud.run(hosts, async () => {
      const created = await groups({ action: 'create', name: 'pack', policy: 'affinity' });
      expect(created.groups).toEqual([{ name: 'pack', policy: 'affinity', members: [], hosts: [] }]);
      // Again with the same policy: the group as it is (idempotent); another policy: refused.
      expect((await groups({ action: 'create', name: 'pack', policy: 'affinity' })).groups).toEqual(created.groups);
      const otherPolicy = await groupFailure({ action: 'create', name: 'pack', policy: 'anti-affinity' });
      expect(otherPolicy.type).toBe('InvalidRequest');
      expect(otherPolicy.message).toMatch(/exists with policy affinity/);
      const badPolicy = await groupFailure({
        action: 'create',
        name: 'x',
        policy: 'sideways',
      } as unknown as ServerGroupInput);
      expect(badPolicy.type).toBe('InvalidRequest');
      expect(badPolicy.message).toMatch(/^Invalid request: policy: policy is 'affinity' or 'anti-affinity'/);

      const { result } = await build(
        {
          name: 'packed',
          flavor: 'm1.small',
          image: 'cirros',
          availabilityZone: az,
          count: 2,
          schedulerHints: { group: 'pack' },
        },
        2
      );
      const ids = result!.batch!.instances.map((m) => m.instanceId);
      // Affinity held across the batch: both on one host.
      expect(new Set(result!.batch!.instances.map((m) => m.record.host)).size).toBe(1);
      const shown = (await groups({ action: 'show', name: 'pack' })).groups[0];
      expect(shown).toMatchObject({
        name: 'pack',
        policy: 'affinity',
        hosts: [result!.batch!.instances[0]!.record.host],
      });
      expect([...shown!.members].sort()).toEqual([...ids].sort());
      expect((await groups({ action: 'list' })).groups.map((g) => g.name)).toContain('pack');

      const inUse = await groupFailure({ action: 'delete', name: 'pack' });
      expect(inUse.type).toBe('ServerGroupInUse');
      expect(inUse.message).toMatch(/^Server group pack still has 2 member\(s\): delete them first/);
      // Its members deleted, the group goes; then it is not found.
      for (const instanceId of ids) {
        const workflowId = workflowIds.deleteInstance(instanceId, 'mc');
        started.push(workflowId);
        await env.client.workflow.execute('deleteInstance', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId,
          args: [{ instanceId }],
        });
      }
      expect((await groups({ action: 'delete', name: 'pack' })).groups[0]?.name).toBe('pack');
      expect(await groupFailure({ action: 'show', name: 'pack' })).toEqual({
        type: 'ServerGroupNotFound',
        message: 'Server group pack could not be found.',
      });
      expect(await cloud.instances.getServerGroup('pack')).toBeUndefined();
    });
  });
});
