import { randomUUID } from 'node:crypto';

import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';

import type { BuildInstanceInput } from '../../src/domain/schemas';
import { getProgressQuery } from '../../src/shared/messages';
import { CONDUCTOR_TASK_QUEUE } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';

import { TestCloud } from '../helpers/cloud';
import { createTimeSkippingEnv } from '../helpers/temporal';
import { failureOf } from '../helpers/failures';
import { progressReached } from '../helpers/progress';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

beforeAll(async () => {
  env = await createTimeSkippingEnv();
  cloud = await new TestCloud(env).open();
});
afterAll(async () => {
  await cloud?.close();
  await env?.teardown();
});

/** Every workflow this file starts, replayed at the end against the current code. */
const started: string[] = [];

function startBuild(input: BuildInstanceInput) {
  const instanceId = input.instanceId ?? randomUUID();
  started.push(`build-${instanceId}`, `place-build-${instanceId}`);
  return {
    instanceId,
    handle: env.client.workflow.start<typeof buildInstance>('buildInstance', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: `build-${instanceId}`,
      args: [{ ...input, instanceId }],
    }),
  };
}

async function build(input: BuildInstanceInput) {
  const { instanceId, handle } = startBuild(input);
  const h = await handle;
  const outcome = await h.result().then(
    (record) => ({ record, error: undefined }),
    (error: unknown) => ({ record: undefined, error })
  );
  return { instanceId, handle: h, ...outcome };
}

async function allocationsOf(instanceId: string) {
  return cloud.placement.getAllocations(instanceId);
}

async function eventsOf(instanceId: string) {
  const actions = await cloud.instances.listActions(instanceId);
  return actions.flatMap((a) =>
    a.events.map((e) => ({ action: a.action, event: e.event, attempt: e.attempt, host: e.host, result: e.result }))
  );
}

describe('buildInstance', () => {
  it('ends active with its host set, exactly one allocation, and a create action with an event per step', async () => {
    const { az, hosts } = await cloud.zone(2);
    const { instanceId, record, error } = await cloud.run(hosts, () =>
      build({ name: 'vm1', flavor: 'm1.small', image: 'cirros', availabilityZone: az })
    );
    expect(error).toBeUndefined();
    expect(record).toMatchObject({
      instanceId,
      name: 'vm1',
      vmState: 'active',
      taskState: null,
      powerState: 'running',
      host: hosts[0],
      availabilityZone: az,
      flavor: 'm1.small',
      image: 'cirros',
    });
    expect(await allocationsOf(instanceId)).toEqual([
      { host: hosts[0], resources: { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 } },
    ]);
    const actions = await cloud.instances.listActions(instanceId);
    expect(actions.map((a) => [a.action, a.result])).toEqual([['create', 'Success']]);
    expect((await eventsOf(instanceId)).map((e) => [e.event, e.attempt, e.host, e.result])).toEqual([
      ['conductor_schedule_and_build_instances', 0, hosts[0], 'Success'],
      ['compute_allocate_networks', 1, hosts[0], 'Success'],
      ['compute_prepare_block_devices', 1, hosts[0], 'Success'],
      ['compute_spawn', 1, hosts[0], 'Success'],
    ]);
    expect((await cloud.driver(hosts[0]).listGuests()).map((g) => g.instanceId)).toEqual([instanceId]);
  });

  it('reschedules to the first alternate when the first host fails, and that host then ranks lower', async () => {
    const { az, hosts } = await cloud.zone(3);
    const [first, second] = hosts;
    await cloud.driver(first).setFaults({ spawn: { failNext: 1, kind: 'reschedule' } });
    const { instanceId, record, error } = await cloud.run(hosts, () =>
      build({ name: 'vm-resched', flavor: 'm1.small', image: 'cirros', availabilityZone: az })
    );
    expect(error).toBeUndefined();
    expect(record).toMatchObject({ vmState: 'active', host: second });
    expect(await allocationsOf(instanceId)).toEqual([
      { host: second, resources: { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 } },
    ]);
    expect(await cloud.placement.allocationsByHost(first)).toEqual([]);
    expect(await cloud.driver(first).listGuests()).toEqual([]);
    const spawns = (await eventsOf(instanceId)).filter((e) => e.event === 'compute_spawn');
    expect(spawns.map((e) => [e.attempt, e.host, e.result])).toEqual([
      [1, first, 'Error'],
      [2, second, 'Success'],
    ]);
    // The failed host has the most free RAM, yet the build-failure weigher sinks it for the next build.
    const next = await cloud.run(hosts, () =>
      build({ name: 'vm-next', flavor: 'm1.small', image: 'cirros', availabilityZone: az })
    );
    expect(next.record?.host).not.toBe(first);
  });

  it('gives up after max attempts with MaxRetriesExceeded, a fault, and no allocation left', async () => {
    const { az, hosts } = await cloud.zone(4);
    for (const host of hosts) await cloud.driver(host).setFaults({ spawn: { failNext: 5, kind: 'reschedule' } });
    const { instanceId, error } = await cloud.run(hosts, () =>
      build({ name: 'vm-doomed', flavor: 'm1.small', image: 'cirros', availabilityZone: az, maxAttempts: 3 })
    );
    const failure = failureOf(error);
    expect(failure.type).toBe('MaxRetriesExceeded');
    expect(failure.message).toMatch(/^Exceeded maximum number of retries/);
    const instance = await cloud.instances.get(instanceId);
    expect(instance).toMatchObject({ vmState: 'error', taskState: null });
    const faults = await cloud.instances.listFaults(instanceId);
    expect(faults.map((f) => f.message)).toEqual([expect.stringMatching(/^Exceeded maximum number of retries/)]);
    expect(await allocationsOf(instanceId)).toEqual([]);
    const spawnHosts = (await eventsOf(instanceId)).filter((e) => e.event === 'compute_spawn').map((e) => e.host);
    expect(spawnHosts).toEqual(hosts.slice(0, 3));
    expect(await cloud.driver(hosts[3]).listGuests()).toEqual([]);
  });

  it('skips an alternate that filled up meanwhile, without a destroy or a failed build there, and uses the next one', async () => {
    const { az, hosts } = await cloud.zone(3, { spawnSeconds: 1 });
    const [first, second, third] = hosts;
    await cloud.driver(first).setFaults({ spawn: { failNext: 1, kind: 'reschedule' } });
    const { instanceId, record } = await cloud.run(hosts, async () => {
      const { instanceId: id, handle } = startBuild({
        name: 'vm-full-alt',
        flavor: 'm1.small',
        image: 'cirros',
        availabilityZone: az,
      });
      const h = await handle;
      // Once the first host is spawning (alternates already chosen), another tenant fills the first alternate.
      await vi.waitFor(async () => expect((await h.query(getProgressQuery)).taskState).toBe('spawning'), {
        timeout: 10_000,
        interval: 50,
      });
      await cloud.placement.claim(randomUUID(), second, { VCPU: 1, MEMORY_MB: 65536 - 8192 - 512, DISK_GB: 1 });
      return { instanceId: id, record: await h.result() };
    });
    expect(record).toMatchObject({ vmState: 'active', host: third });
    expect((await allocationsOf(instanceId)).map((a) => a.host)).toEqual([third]);
    const claimEvents = (await eventsOf(instanceId)).filter((e) => e.event === 'conductor_claim_alternate');
    expect(claimEvents.map((e) => [e.attempt, e.host, e.result])).toEqual([
      [2, second, 'Error'],
      [3, third, 'Success'],
    ]);
    // The full alternate was never asked to do anything, and it is not counted as a failed build.
    expect(cloud.computeCalls.filter((c) => c.host === second)).toEqual([]);
    const states = await cloud.placement.listHostStates(() => true);
    expect(states.find((s) => s.host === second)?.failedBuilds).toBe(0);
    expect(states.find((s) => s.host === first)?.failedBuilds).toBe(1);
  });

  it('reschedules from a host with no live worker after the schedule-to-start timeout', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [dead, alive] = hosts;
    const { instanceId, record } = await cloud.run([alive], () =>
      build({
        name: 'vm-dead-host',
        flavor: 'm1.small',
        image: 'cirros',
        availabilityZone: az,
        timeouts: { scheduleToStartSeconds: 2, heartbeatSeconds: 5, longStepSeconds: 60 },
      })
    );
    expect(record).toMatchObject({ vmState: 'active', host: alive });
    expect((await allocationsOf(instanceId)).map((a) => a.host)).toEqual([alive]);
    const firstStep = (await eventsOf(instanceId)).find((e) => e.attempt === 1);
    expect(firstStep).toMatchObject({ host: dead, result: 'Error' });
  });

  it('reschedules when a compute stops heartbeating mid-spawn, and no second guest appears when it returns', async () => {
    const { az, hosts } = await cloud.zone(2, { spawnSeconds: 1 });
    const [silent, next] = hosts;
    await cloud.driver(silent).setFaults({ hangNext: 1 });
    const { instanceId, record } = await cloud.run(hosts, () =>
      build({
        name: 'vm-silent',
        flavor: 'm1.small',
        image: 'cirros',
        availabilityZone: az,
        timeouts: { scheduleToStartSeconds: 5, heartbeatSeconds: 2, longStepSeconds: 60 },
      })
    );
    expect(record).toMatchObject({ vmState: 'active', host: next });
    expect(await cloud.driver(silent).listGuests()).toEqual([]);
    expect((await cloud.driver(next).listGuests()).map((g) => g.instanceId)).toEqual([instanceId]);
    expect((await allocationsOf(instanceId)).map((a) => a.host)).toEqual([next]);
  });

  it('reschedules when the chosen host goes silent in a short step (a frozen worker), in seconds', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [frozen, next] = hosts;
    const freeze = cloud.freezeHost(frozen);
    // A short step's start-to-close stays 60 s, which the test server does not skip while a step is held.
    const { instanceId, record } = await cloud.run(hosts, () =>
      build({
        name: 'vm-frozen-host',
        flavor: 'm1.small',
        image: 'cirros',
        availabilityZone: az,
        timeouts: { scheduleToStartSeconds: 60, heartbeatSeconds: 2, longStepSeconds: 60 },
      })
    );
    await freeze.reached;
    expect(record).toMatchObject({ vmState: 'active', taskState: null, host: next });
    expect((await allocationsOf(instanceId)).map((a) => a.host)).toEqual([next]);
    expect((await cloud.driver(next).listGuests()).map((g) => g.instanceId)).toEqual([instanceId]);
    expect(await cloud.driver(frozen).listGuests()).toEqual([]);
    const first = (await cloud.instances.listActions(instanceId))
      .flatMap((a) => a.events)
      .filter((e) => e.attempt === 1);
    expect(first.map((e) => [e.event, e.host, e.result])).toEqual([['compute_allocate_networks', frozen, 'Error']]);
    // The guest's clean-up was tried on the silent host (it gives up in seconds).
    expect(cloud.computeCalls.filter((c) => c.host === frozen).map((c) => c.activity)).toContain('destroyInstance');
    const states = await cloud.placement.listHostStates(() => true);
    expect(states.find((s) => s.host === frozen)?.failedBuilds).toBe(1);
  });

  it('aborts after one attempt when the image is larger than the flavor disk, releasing the allocation', async () => {
    const { az, hosts } = await cloud.zone(3);
    const { instanceId, error } = await cloud.run(hosts, () =>
      build({ name: 'vm-huge', flavor: 'm1.small', image: 'huge-image', availabilityZone: az })
    );
    const failure = failureOf(error);
    expect(failure.type).toBe('BuildAborted');
    expect(failure.message).toMatch(/disk is too small/i);
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'error', taskState: null });
    expect(await allocationsOf(instanceId)).toEqual([]);
    const attempts = new Set((await eventsOf(instanceId)).filter((e) => e.attempt > 0).map((e) => e.attempt));
    expect([...attempts]).toEqual([1]);
  });

  it('does not reschedule a forced host or a build with max attempts 1', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    await cloud.driver(b).setFaults({ spawn: { failNext: 1, kind: 'reschedule' } });
    const forced = await cloud.run(hosts, () =>
      build({ name: 'vm-forced', flavor: 'm1.small', image: 'cirros', forceHost: b })
    );
    expect(failureOf(forced.error).type).toBe('MaxRetriesExceeded');
    expect(new Set((await eventsOf(forced.instanceId)).filter((e) => e.attempt > 0).map((e) => e.host))).toEqual(
      new Set([b])
    );

    await cloud.driver(a).setFaults({ spawn: { failNext: 1, kind: 'reschedule' } });
    const single = await cloud.run(hosts, () =>
      build({ name: 'vm-one-try', flavor: 'm1.small', image: 'cirros', availabilityZone: az, maxAttempts: 1 })
    );
    expect(failureOf(single.error).type).toBe('MaxRetriesExceeded');
    expect(await allocationsOf(single.instanceId)).toEqual([]);
    expect(new Set((await eventsOf(single.instanceId)).filter((e) => e.attempt > 0).map((e) => e.host))).toEqual(
      new Set([a])
    );
  });

  it('fails with NoValidHost when no host fits, without touching any compute', async () => {
    const { az, hosts } = await cloud.zone(2, { spawnSeconds: 0.2, memoryMb: 8192 });
    const { instanceId, error } = await cloud.run(hosts, () =>
      build({ name: 'vm-too-big', flavor: 'm1.xlarge', image: 'cirros', availabilityZone: az })
    );
    const failure = failureOf(error);
    expect(failure.type).toBe('NoValidHost');
    expect(failure.message).toMatch(/No valid host was found/);
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'error', taskState: null, host: null });
    expect((await cloud.instances.listFaults(instanceId)).length).toBe(1);
    expect(await allocationsOf(instanceId)).toEqual([]);
    expect((await eventsOf(instanceId)).filter((e) => e.event.startsWith('compute_'))).toEqual([]);
    for (const host of hosts) expect(await cloud.driver(host).listGuests()).toEqual([]);
  });

  it.each([
    ['name (empty)', 'name', { name: '' }],
    ['name (with a control character)', 'name', { name: 'bad\u0000name' }],
    ['flavor (of the wrong type)', 'flavor', { flavor: 42 }],
    ['image (missing)', 'image', { image: undefined }],
    ['instanceId', 'instanceId', { instanceId: 'not-a-uuid' }],
    ['maxAttempts', 'maxAttempts', { maxAttempts: 0 }],
    ['host', 'host', { host: 'h'.repeat(2000) }],
    ['forceHost', 'forceHost', { forceHost: 'Bad_Host' }],
    ['schedulerHints.sameHost.0', 'schedulerHints.sameHost.0', { schedulerHints: { sameHost: ['nope'] } }],
    ['timeouts.heartbeatSeconds', 'timeouts.heartbeatSeconds', { timeouts: { heartbeatSeconds: -1 } }],
    ['unexpected', 'unexpected', { unexpected: true }],
    ['flavor (unknown)', 'flavor', { flavor: 'm1.enormous' }],
    ['image (unknown)', 'image', { image: 'no-such-image' }],
  ])('rejects a malformed %s with InvalidRequest naming it, writing nothing', async (_label, field, patch) => {
    const name = `vm-bad-${randomUUID().slice(0, 8)}`;
    const input = { name, flavor: 'm1.small', image: 'cirros', ...patch } as unknown as BuildInstanceInput;
    const workflowId = `build-bad-${randomUUID()}`;
    const error = await cloud.run([], () =>
      env.client.workflow
        .execute<typeof buildInstance>('buildInstance', { taskQueue: CONDUCTOR_TASK_QUEUE, workflowId, args: [input] })
        .then(
          () => undefined,
          (err: unknown) => err
        )
    );
    const failure = failureOf(error);
    expect(failure.type).toBe('InvalidRequest');
    expect(failure.message).toContain(`Invalid request: ${field}:`);
    expect((await cloud.instances.list()).filter((i) => i.name === name)).toEqual([]);
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const taskFailures = (history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes);
    expect(taskFailures).toEqual([]);
  });

  it('destroys the guest and releases the claim when a build is cancelled during spawn', async () => {
    const { az, hosts } = await cloud.zone(1, { spawnSeconds: 30 });
    const [host] = hosts;
    const { instanceId, error } = await cloud.run(hosts, async () => {
      const { instanceId: id, handle } = startBuild({
        name: 'vm-cancel',
        flavor: 'm1.small',
        image: 'cirros',
        availabilityZone: az,
      });
      const h = await handle;
      await progressReached(
        h,
        async (p) => p.taskState === 'spawning' && (await cloud.driver(host).getGuest(id)) !== undefined,
        'the guest spawning'
      );
      await h.cancel();
      const err = await h.result().then(
        () => undefined,
        (e: unknown) => e
      );
      return { instanceId: id, error: err };
    });
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(((error as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'deleted', taskState: null });
    expect(await allocationsOf(instanceId)).toEqual([]);
    expect(await cloud.driver(host).listGuests()).toEqual([]);
  });

  it('answers a progress query with the live state, host, attempt and step', async () => {
    const { az, hosts } = await cloud.zone(1, { spawnSeconds: 2 });
    const [host] = hosts;
    const seen = await cloud.run(hosts, async () => {
      const { handle } = startBuild({ name: 'vm-query', flavor: 'm1.tiny', image: 'cirros', availabilityZone: az });
      const h = await handle;
      const progress = await progressReached(h, (p) => p.taskState === 'spawning', 'the spawn');
      await h.result();
      return { during: progress, after: await h.query(getProgressQuery) };
    });
    expect(seen.during).toMatchObject({
      vmState: 'building',
      taskState: 'spawning',
      host,
      attempt: 1,
      hostsTried: [host],
    });
    expect(seen.during.step).toMatch(/^spawn on /);
    expect(seen.after).toMatchObject({ vmState: 'active', taskState: null, host });
  });

  it('replays every recorded history cleanly against the current code (determinism guard)', async () => {
    const histories = [];
    for (const workflowId of started) {
      const history = await env.client.workflow
        .getHandle(workflowId)
        .fetchHistory()
        .catch(() => undefined);
      if (history) histories.push({ workflowId, history });
    }
    expect(histories.length).toBeGreaterThan(10);
    const results = Worker.runReplayHistories(
      { workflowBundle: { codePath: inject('workflowBundlePath') } },
      histories
    );
    const failures: string[] = [];
    for await (const result of results)
      if (result.error) failures.push(`${result.workflowId}: ${String(result.error)}`);
    expect(failures).toEqual([]);
  });
});
