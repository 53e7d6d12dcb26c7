import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import type { InstanceRecord } from '../../src/domain/instance';
import type { RebootInput } from '../../src/domain/reboot';
import type { BuildInstanceInput, StartInput, StopInput } from '../../src/domain/schemas';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import { REBOOT_EVENT } from '../../src/workflows/reboot';
import type { reboot } from '../../src/workflows/reboot';
import { START_EVENT } from '../../src/workflows/start';
import type { start } from '../../src/workflows/start';
import { STOP_EVENT } from '../../src/workflows/stop';
import type { stop } from '../../src/workflows/stop';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { withWorkers } from '../helpers/temporal';
import { failureOf } from '../helpers/failures';
import { progressReached } from '../helpers/progress';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

// Stopped instances keep their allocation (Nova's too); nothing may be orphaned or over-committed.
useTimeSkippingCloud(
  (e, c) => {
    env = e;
    cloud = c;
  },
  { tag: 'ss', shutdownSeconds: 5, memoryMb: 32768, now: () => serverNowMs }
);

/**
 * The test server's clock (skipped time included), read at the start of every compute activity: the
 * guests of these hosts live on workflow time, so a cooperative guest that takes 5 s to shut down is off
 * 5 workflow seconds after the request, however little wall time that is.
 */
let serverNowMs = Date.now();

type ActivityFn = (...args: unknown[]) => Promise<unknown>;

/** Runs `fn` while the conductor, the scheduler and compute workers for `hosts` (on the server's clock) poll. */
function run<T>(hosts: readonly string[], fn: () => Promise<T>): Promise<T> {
  const computeQueues = new Set(hosts.map(computeTaskQueue));
  const specs = cloud.workerSpecs(hosts).map((spec) => {
    if (!computeQueues.has(spec.taskQueue)) return spec;
    const activities = Object.fromEntries(
      Object.entries((spec.activities ?? {}) as Record<string, ActivityFn>).map(([name, activity]) => [
        name,
        async (...args: unknown[]) => {
          serverNowMs = await env.currentTimeMs();
          return activity(...args);
        },
      ])
    );
    return { ...spec, activities };
  });
  return withWorkers(env, specs, fn);
}

async function build(input: Omit<BuildInstanceInput, 'flavor' | 'image'> & { flavor?: string; image?: string }) {
  const instanceId = randomUUID();
  return env.client.workflow.execute<typeof buildInstance>('buildInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.buildInstance(instanceId),
    args: [{ flavor: 'm1.small', image: 'cirros', ...input, instanceId }],
  });
}

/**
 * Builds one after the other. Never two result() calls at once: each unlocks the test server's time
 * skipping while it waits and locks it again after, and overlapping pairs leave it locked for good (every
 * later timer in this file would then run in real time).
 */
async function buildEach(inputs: Array<Parameters<typeof build>[0]>): Promise<InstanceRecord[]> {
  const records: InstanceRecord[] = [];
  for (const input of inputs) records.push(await build(input));
  return records;
}

interface OperationRun {
  workflowId: string;
  record?: InstanceRecord;
  error?: unknown;
  /** The workflow's own clock, start to close (skipped time included). */
  workflowMs: number;
  /** Real time spent waiting for the result. */
  wallMs: number;
}

function startStop(input: StopInput) {
  const workflowId = workflowIds.stop(String(input.instanceId), randomUUID());
  return env.client.workflow.start<typeof stop>('stop', { taskQueue: CONDUCTOR_TASK_QUEUE, workflowId, args: [input] });
}

function startStart(input: StartInput) {
  const workflowId = workflowIds.start(String(input.instanceId), randomUUID());
  return env.client.workflow.start<typeof start>('start', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId,
    args: [input],
  });
}

/** What outcomeOf needs of a stop or start handle. */
interface OperationHandle {
  workflowId: string;
  result(): Promise<InstanceRecord>;
  describe(): Promise<{ startTime: Date; closeTime?: Date }>;
}

async function outcomeOf(handle: OperationHandle): Promise<OperationRun> {
  const wallStart = Date.now();
  const outcome = await handle.result().then(
    (record) => ({ record, error: undefined }),
    (error: unknown) => ({ record: undefined, error })
  );
  const wallMs = Date.now() - wallStart;
  const { startTime, closeTime } = await handle.describe();
  return {
    workflowId: handle.workflowId,
    ...outcome,
    wallMs,
    workflowMs: (closeTime ?? startTime).getTime() - startTime.getTime(),
  };
}

async function runReboot(input: RebootInput): Promise<OperationRun> {
  const workflowId = workflowIds.reboot(String(input.instanceId), randomUUID());
  return outcomeOf(
    await env.client.workflow.start<typeof reboot>('reboot', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId,
      args: [input],
    })
  );
}

async function runStop(input: StopInput): Promise<OperationRun> {
  return outcomeOf(await startStop(input));
}

async function runStart(input: StartInput): Promise<OperationRun> {
  return outcomeOf(await startStart(input));
}

/** The activity types a workflow scheduled, in order. */
async function activitiesOf(workflowId: string): Promise<string[]> {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    return name ? [name] : [];
  });
}

async function actionsOf(instanceId: string) {
  return (await cloud.instances.listActions(instanceId)).map((a) => [a.action, a.result]);
}

/** The compute event of the instance's last action of that name. */
async function eventOf(instanceId: string, action: string, event: string) {
  const actions = (await cloud.instances.listActions(instanceId)).filter((a) => a.action === action);
  const found = actions.at(-1)?.events.find((e) => e.event === event);
  expect(found).toBeDefined();
  return found!;
}

const count = (list: string[], item: string) => list.filter((x) => x === item).length;

describe('stop', () => {
  it('takes the whole 60 s timeout on a guest that ignores ACPI, then forces it off: skipped, not slept', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    await cloud.driver(host).setFaults({ ignoreShutdown: true });
    const { instanceId } = await run(hosts, () => build({ name: 'vm-stubborn', availabilityZone: az }));
    const result = await run(hosts, () => runStop({ instanceId }));

    expect(result.error).toBeUndefined();
    expect(result.record).toMatchObject({
      instanceId,
      vmState: 'stopped',
      taskState: null,
      taskOwner: null,
      powerState: 'shutdown',
      host,
    });
    expect(result.workflowMs).toBeGreaterThanOrEqual(60_000);
    expect(result.workflowMs).toBeLessThan(70_000);
    expect(result.wallMs).toBeLessThan(10_000);
    expect((await cloud.driver(host).getGuest(instanceId))?.powerState).toBe('shutdown');

    const event = await eventOf(instanceId, 'stop', STOP_EVENT);
    expect(event).toMatchObject({ host, result: 'Success' });
    expect(event.details).toMatch(
      /^forced power-off: .* 6 ACPI request\(s\) .* shutdown timeout of 60 s \(the default\)/
    );
    expect(Date.parse(event.finishedAt!) - Date.parse(event.startedAt)).toBeGreaterThanOrEqual(60_000);
    // An ACPI request every 10 s until the timeout, then one forced power-off.
    const activities = await activitiesOf(result.workflowId);
    expect(count(activities, 'requestShutdown')).toBe(6);
    expect(count(activities, 'powerOffInstance')).toBe(1);
    expect(await actionsOf(instanceId)).toEqual([
      ['create', 'Success'],
      ['stop', 'Success'],
    ]);
  });

  it('stops a cooperative guest within a second of its power-off (the state read each second), and a slow one before the timeout', async () => {
    const quick = await cloud.zone(1, { shutdownSeconds: 5 });
    const slow = await cloud.zone(1, { shutdownSeconds: 25 });
    const hosts = [...quick.hosts, ...slow.hosts];
    const [a, b] = await run(hosts, () =>
      buildEach([
        { name: 'vm-quick', availabilityZone: quick.az },
        { name: 'vm-slow', availabilityZone: slow.az },
      ])
    ).then((records) => records as [InstanceRecord, InstanceRecord]);

    const first = await run(hosts, () => runStop({ instanceId: a.instanceId }));
    expect(first.record).toMatchObject({ vmState: 'stopped', powerState: 'shutdown', taskState: null });
    expect(first.workflowMs).toBeGreaterThanOrEqual(5_000);
    expect(first.workflowMs).toBeLessThanOrEqual(7_000);
    expect((await eventOf(a.instanceId, 'stop', STOP_EVENT)).details).toBe(
      'graceful shutdown: the guest powered off within 5 s of 1 ACPI request(s)'
    );
    expect(count(await activitiesOf(first.workflowId), 'powerOffInstance')).toBe(0);

    // Re-sent requests (at 0, 10 and 20 s) do not restart the guest's 25 s: off 25 s in, never forced.
    const second = await run(hosts, () => runStop({ instanceId: b.instanceId }));
    expect(second.record).toMatchObject({ vmState: 'stopped', powerState: 'shutdown' });
    expect(second.workflowMs).toBeGreaterThanOrEqual(25_000);
    expect(second.workflowMs).toBeLessThan(28_000);
    expect((await eventOf(b.instanceId, 'stop', STOP_EVENT)).details).toBe(
      'graceful shutdown: the guest powered off within 25 s of 3 ACPI request(s)'
    );
    expect(count(await activitiesOf(second.workflowId), 'requestShutdown')).toBe(3);
    expect(count(await activitiesOf(second.workflowId), 'powerOffInstance')).toBe(0);
  });

  it("lets the image's os_shutdown_timeout win over 60 s, and the input win over the image", async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    await cloud.driver(host).setFaults({ ignoreShutdown: true });
    const [byImage, byInput, atOnce] = await run(hosts, () =>
      buildEach([
        // The catalogue's image says 30 s: a plain stop must find that itself.
        { name: 'vm-image', availabilityZone: az, image: 'slow-shutdown-image' },
        { name: 'vm-input', availabilityZone: az },
        { name: 'vm-now', availabilityZone: az },
      ])
    ).then((records) => records.map((r) => r.instanceId) as [string, string, string]);

    const image = await run(hosts, () => runStop({ instanceId: byImage }));
    expect(image.record).toMatchObject({ vmState: 'stopped', powerState: 'shutdown' });
    expect(image.workflowMs).toBeGreaterThanOrEqual(30_000);
    expect(image.workflowMs).toBeLessThan(40_000);
    expect((await eventOf(byImage, 'stop', STOP_EVENT)).details).toContain(
      "shutdown timeout of 30 s (the image's os_shutdown_timeout)"
    );

    const input = await run(hosts, () =>
      runStop({ instanceId: byInput, imageOsShutdownTimeoutSeconds: 30, shutdownTimeoutSeconds: 15 })
    );
    expect(input.record).toMatchObject({ vmState: 'stopped', powerState: 'shutdown' });
    expect(input.workflowMs).toBeGreaterThanOrEqual(15_000);
    expect(input.workflowMs).toBeLessThan(25_000);
    const inputEvent = await eventOf(byInput, 'stop', STOP_EVENT);
    expect(inputEvent.details).toContain('2 ACPI request(s) and the shutdown timeout of 15 s (the request)');

    // A timeout of 0 is Nova's clean_shutdown=False: forced at once, no ACPI request.
    const now = await run(hosts, () => runStop({ instanceId: atOnce, shutdownTimeoutSeconds: 0 }));
    expect(now.record).toMatchObject({ vmState: 'stopped', powerState: 'shutdown' });
    expect(now.workflowMs).toBeLessThan(5_000);
    expect((await eventOf(atOnce, 'stop', STOP_EVENT)).details).toMatch(/^forced power-off: shutdown timeout 0 s/);
    expect(count(await activitiesOf(now.workflowId), 'requestShutdown')).toBe(0);
  });

  it('succeeds at once when the guest is already off (powered off behind our back)', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    const { instanceId } = await run(hosts, () => build({ name: 'vm-off', availabilityZone: az }));
    await cloud.driver(host).powerOff({ instanceId: instanceId });

    const result = await run(hosts, () => runStop({ instanceId }));
    expect(result.record).toMatchObject({ vmState: 'stopped', powerState: 'shutdown', taskState: null });
    expect(result.workflowMs).toBeLessThan(5_000);
    expect((await eventOf(instanceId, 'stop', STOP_EVENT)).details).toBe('guest already off: nothing to do');
    const activities = await activitiesOf(result.workflowId);
    expect(count(activities, 'requestShutdown') + count(activities, 'powerOffInstance')).toBe(0);
  });

  it('refuses an instance that is already stopped (vmState stopped, as Nova: 409), changing nothing', async () => {
    const { az, hosts } = await cloud.zone(1, { shutdownSeconds: 1 });
    const { instanceId } = await run(hosts, () => build({ name: 'vm-twice', availabilityZone: az }));
    await run(hosts, () => runStop({ instanceId }));
    const before = await cloud.instances.get(instanceId);

    const again = await run(hosts, () => runStop({ instanceId }));
    const failure = failureOf(again.error);
    expect(failure.type).toBe('InstanceInvalidState');
    expect(failure.message).toBe(`Cannot 'stop' instance ${instanceId} while it is in vmState stopped`);
    expect(await cloud.instances.get(instanceId)).toEqual(before);
    expect(await actionsOf(instanceId)).toEqual([
      ['create', 'Success'],
      ['stop', 'Success'],
    ]);
    expect(await cloud.instances.listFaults(instanceId)).toEqual([]);
  });

  it("refuses an instance that is still building, naming the build's task state; the build goes on", async () => {
    const { az, hosts } = await cloud.zone(1, { spawnSeconds: 3 });
    const outcome = await run(hosts, async () => {
      const instanceId = randomUUID();
      const building = await env.client.workflow.start<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.buildInstance(instanceId),
        args: [{ instanceId, name: 'vm-building', flavor: 'm1.small', image: 'cirros', availabilityZone: az }],
      });
      await progressReached(building, (p) => p.taskState === 'spawning', 'the spawn');
      const stopped = await runStop({ instanceId });
      return { instanceId, stopped, built: await building.result() };
    });
    const failure = failureOf(outcome.stopped.error);
    expect(failure.type).toBe('InstanceInvalidState');
    expect(failure.message).toBe(`Cannot 'stop' instance ${outcome.instanceId} while it is in taskState spawning`);
    expect(outcome.built).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null });
    expect(await actionsOf(outcome.instanceId)).toEqual([['create', 'Success']]);
  });

  it('lets exactly one of two concurrent stops proceed; the other fails InstanceInvalidState', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    await cloud.driver(host).setFaults({ ignoreShutdown: true });
    const { instanceId } = await run(hosts, () => build({ name: 'vm-race', availabilityZone: az }));

    const results = await run(hosts, async () => {
      const handles = await Promise.all([startStop({ instanceId }), startStop({ instanceId })]);
      // One result at a time: each result() call unlocks time skipping while it waits.
      const outcomes: OperationRun[] = [];
      for (const handle of handles) outcomes.push(await outcomeOf(handle));
      return outcomes;
    });
    const winners = results.filter((r) => r.record);
    const losers = results.filter((r) => r.error);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    expect(winners[0]?.record).toMatchObject({ vmState: 'stopped', powerState: 'shutdown', taskState: null });
    const failure = failureOf(losers[0]?.error);
    expect(failure.type).toBe('InstanceInvalidState');
    expect(failure.message).toMatch(
      new RegExp(`^Cannot 'stop' instance ${instanceId} while it is in (taskState powering-off|vmState stopped)$`)
    );
    expect(await actionsOf(instanceId)).toEqual([
      ['create', 'Success'],
      ['stop', 'Success'],
    ]);
    expect(count(await activitiesOf(winners[0]!.workflowId), 'powerOffInstance')).toBe(1);
  });

  it('fails ComputeHostUnavailable when the host has no live worker, leaving the instance active with a fault', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    const { instanceId } = await run(hosts, () => build({ name: 'vm-dead-host', availabilityZone: az }));

    const result = await run([], () =>
      runStop({ instanceId, timeouts: { scheduleToStartSeconds: 1, heartbeatSeconds: 5, longStepSeconds: 60 } })
    );
    const failure = failureOf(result.error);
    expect(failure.type).toBe('ComputeHostUnavailable');
    expect(failure.message).toBe(`Compute host ${host} is unavailable: it did not answer (SCHEDULE_TO_START timeout)`);
    expect(await cloud.instances.get(instanceId)).toMatchObject({
      vmState: 'active',
      taskState: null,
      taskOwner: null,
      powerState: 'running',
      host,
    });
    expect((await cloud.instances.listFaults(instanceId)).map((f) => [f.code, f.message])).toEqual([
      [500, failure.message],
    ]);
    expect(await actionsOf(instanceId)).toEqual([
      ['create', 'Success'],
      ['stop', 'Error'],
    ]);
    expect(await eventOf(instanceId, 'stop', STOP_EVENT)).toMatchObject({ host, result: 'Error' });
    expect((await cloud.driver(host).getGuest(instanceId))?.powerState).toBe('running');
  });

  it('fails ComputeHostUnavailable in seconds when the host goes silent (a frozen worker), leaving the instance active', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    const { instanceId } = await run(hosts, () => build({ name: 'vm-frozen-host', availabilityZone: az }));

    const freeze = cloud.freezeHost(host);
    // A short step's start-to-close stays 60 s, which the test server does not skip while a step is held.
    const result = await run(hosts, () =>
      runStop({ instanceId, timeouts: { scheduleToStartSeconds: 60, heartbeatSeconds: 2, longStepSeconds: 60 } })
    );
    await freeze.reached;
    const failure = failureOf(result.error);
    expect(failure.type).toBe('ComputeHostUnavailable');
    expect(failure.message).toBe(`Compute host ${host} is unavailable: it did not answer (HEARTBEAT timeout)`);
    expect(await cloud.instances.get(instanceId)).toMatchObject({
      vmState: 'active',
      taskState: null,
      taskOwner: null,
      powerState: 'running',
      host,
    });
    expect(await actionsOf(instanceId)).toEqual([
      ['create', 'Success'],
      ['stop', 'Error'],
    ]);
    expect(await eventOf(instanceId, 'stop', STOP_EVENT)).toMatchObject({ host, result: 'Error' });
    expect((await cloud.driver(host).getGuest(instanceId))?.powerState).toBe('running');
  });

  it('fails InstanceNotFound when the guest is missing from its host, leaving the instance as it was', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    const { instanceId } = await run(hosts, () => build({ name: 'vm-vanished', availabilityZone: az }));
    await cloud.driver(host).destroy({ instanceId: instanceId });

    const result = await run(hosts, () => runStop({ instanceId }));
    expect(failureOf(result.error).type).toBe('InstanceNotFound');
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'active', taskState: null });
    expect(await actionsOf(instanceId)).toEqual([
      ['create', 'Success'],
      ['stop', 'Error'],
    ]);
  });

  it('ends a cancelled stop with the lock released: as it was while the guest runs, stopped once it is off', async () => {
    const stubborn = await cloud.zone(1);
    const cooperative = await cloud.zone(1, { shutdownSeconds: 1 });
    await cloud.driver(stubborn.hosts[0]).setFaults({ ignoreShutdown: true });
    const hosts = [...stubborn.hosts, ...cooperative.hosts];
    const [a, b] = await run(hosts, () =>
      buildEach([
        { name: 'vm-cancel-on', availabilityZone: stubborn.az },
        { name: 'vm-cancel-off', availabilityZone: cooperative.az },
      ])
    ).then((records) => records as [InstanceRecord, InstanceRecord]);

    /** Starts a stop, waits (in real time: nothing skips outside result()) until it waits on the guest, cancels it. */
    const cancelWhileWaiting = async (instanceId: string, extraWaitMs: number, shutdownTimeoutSeconds?: number) => {
      const handle = await startStop({
        instanceId,
        ...(shutdownTimeoutSeconds === undefined ? {} : { shutdownTimeoutSeconds }),
      });
      await progressReached(handle, (p) => p.step.startsWith('graceful shutdown'), 'the graceful shutdown');
      await delay(extraWaitMs);
      await handle.cancel();
      return outcomeOf(handle);
    };
    const [stillOn, nowOff] = await run(hosts, async () => [
      await cancelWhileWaiting(a.instanceId, 0),
      // The guest acts on the ACPI request (1 s) before the cancellation: it cannot be taken back. A 3600 s
      // timeout reads the power state every 10 s, so the cancellation (at 1.5 s) comes before the next read.
      await cancelWhileWaiting(b.instanceId, 1_500, 3600),
    ]);

    for (const { error } of [stillOn, nowOff]) {
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect(((error as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    }
    expect(await cloud.instances.get(a.instanceId)).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
      taskOwner: null,
    });
    expect(await cloud.instances.get(b.instanceId)).toMatchObject({
      vmState: 'stopped',
      powerState: 'shutdown',
      taskState: null,
    });
    for (const id of [a.instanceId, b.instanceId]) {
      expect(await actionsOf(id)).toEqual([
        ['create', 'Success'],
        ['stop', 'Error'],
      ]);
      expect((await cloud.instances.listFaults(id)).map((f) => f.code)).toEqual([499]);
    }
  });

  it('refuses an error instance that has no host (Nova: InstanceNotReady) without writing anything', async () => {
    const { az, hosts } = await cloud.zone(1, { memoryMb: 8192 });
    const built = await run(hosts, () =>
      build({ name: 'vm-nowhere', flavor: 'm1.xlarge', availabilityZone: az }).then(
        () => undefined,
        (err: unknown) => err
      )
    );
    expect(failureOf(built).type).toBe('NoValidHost');
    const [instance] = (await cloud.instances.list()).filter((i) => i.name === 'vm-nowhere');
    expect(instance).toMatchObject({ vmState: 'error', host: null });
    const faultsBefore = await cloud.instances.listFaults(instance!.instanceId);

    const result = await run(hosts, () => runStop({ instanceId: instance!.instanceId }));
    const failure = failureOf(result.error);
    expect(failure.type).toBe('InstanceInvalidState');
    expect(failure.message).toBe(
      `Cannot 'stop' instance ${instance!.instanceId} while it is in vmState error with no host`
    );
    expect(await cloud.instances.listFaults(instance!.instanceId)).toEqual(faultsBefore);
    expect(await actionsOf(instance!.instanceId)).toEqual([['create', 'Error']]);
  });

  it.each([
    ['instanceId', { instanceId: 'not-a-uuid' }],
    ['shutdownTimeoutSeconds', { shutdownTimeoutSeconds: -1 }],
    ['imageOsShutdownTimeoutSeconds', { imageOsShutdownTimeoutSeconds: 1.5 }],
    ['shutdownRetryIntervalSeconds', { shutdownRetryIntervalSeconds: 0 }],
    ['timeouts.scheduleToStartSeconds', { timeouts: { scheduleToStartSeconds: 0 } }],
    ['unexpected', { unexpected: true }],
  ])('rejects a malformed %s with InvalidRequest naming it', async (field, patch) => {
    const input = { instanceId: randomUUID(), ...patch } as unknown as StopInput;
    const result = await run([], () => runStop(input));
    const failure = failureOf(result.error);
    expect(failure.type).toBe('InvalidRequest');
    expect(failure.message).toContain(`Invalid request: ${field}:`);
  });

  it('fails InstanceNotFound for an unknown instance', async () => {
    const result = await run([], () => runStop({ instanceId: randomUUID() }));
    expect(failureOf(result.error).type).toBe('InstanceNotFound');
  });
});

describe('start', () => {
  it('starts a stopped instance (active, running); refuses an active one, naming its state', async () => {
    const { az, hosts } = await cloud.zone(1, { shutdownSeconds: 1 });
    const [host] = hosts;
    const { instanceId } = await run(hosts, () => build({ name: 'vm-start', availabilityZone: az }));

    const early = await run(hosts, () => runStart({ instanceId }));
    const failure = failureOf(early.error);
    expect(failure.type).toBe('InstanceInvalidState');
    expect(failure.message).toBe(`Cannot 'start' instance ${instanceId} while it is in vmState active`);

    await run(hosts, () => runStop({ instanceId }));
    expect((await cloud.driver(host).getGuest(instanceId))?.powerState).toBe('shutdown');
    const started = await run(hosts, () => runStart({ instanceId }));
    expect(started.error).toBeUndefined();
    expect(started.record).toMatchObject({
      instanceId,
      vmState: 'active',
      taskState: null,
      taskOwner: null,
      powerState: 'running',
      host,
    });
    expect((await cloud.driver(host).getGuest(instanceId))?.powerState).toBe('running');
    expect(await eventOf(instanceId, 'start', START_EVENT)).toMatchObject({ host, result: 'Success' });
    expect(await actionsOf(instanceId)).toEqual([
      ['create', 'Success'],
      ['stop', 'Success'],
      ['start', 'Success'],
    ]);
    // And it can be stopped again: the lock was released.
    const again = await run(hosts, () => runStop({ instanceId }));
    expect(again.record).toMatchObject({ vmState: 'stopped' });
  });

  it('fails ComputeHostUnavailable when the host is down, leaving the instance stopped with a fault', async () => {
    const { az, hosts } = await cloud.zone(1, { shutdownSeconds: 1 });
    const { instanceId } = await run(hosts, () => build({ name: 'vm-start-dead', availabilityZone: az }));
    await run(hosts, () => runStop({ instanceId }));

    const result = await run([], () =>
      runStart({ instanceId, timeouts: { scheduleToStartSeconds: 1, heartbeatSeconds: 5, longStepSeconds: 60 } })
    );
    expect(failureOf(result.error).type).toBe('ComputeHostUnavailable');
    expect(await cloud.instances.get(instanceId)).toMatchObject({
      vmState: 'stopped',
      powerState: 'shutdown',
      taskState: null,
    });
    expect((await actionsOf(instanceId)).at(-1)).toEqual(['start', 'Error']);
  });

  it.each([
    ['instanceId', { instanceId: 'nope' }],
    ['unexpected', { instanceId: randomUUID(), unexpected: 1 }],
  ])('rejects a malformed %s with InvalidRequest naming it', async (field, input) => {
    const result = await run([], () => runStart(input as unknown as StartInput));
    const failure = failureOf(result.error);
    expect(failure.type).toBe('InvalidRequest');
    expect(failure.message).toContain(`Invalid request: ${field}:`);
  });
});

describe('reboot', () => {
  it('SOFT: the guest shuts itself down on ACPI and is started again from its disk, never forced off', async () => {
    const { az, hosts } = await cloud.zone(1, { shutdownSeconds: 3 });
    const [host] = hosts;
    const { instanceId } = await run(hosts, () => build({ name: 'vm-soft', availabilityZone: az }));
    const bootsBefore = (await cloud.driver(host).getGuest(instanceId))!.boots;

    const result = await run(hosts, () => runReboot({ instanceId, type: 'SOFT' }));
    expect(result.record).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null, host });
    expect(result.workflowMs).toBeGreaterThanOrEqual(3_000);
    expect(result.workflowMs).toBeLessThan(6_000);
    expect((await cloud.driver(host).getGuest(instanceId))!.boots).toBe(bootsBefore + 1);
    const activities = await activitiesOf(result.workflowId);
    expect(count(activities, 'requestShutdown')).toBe(1);
    expect(count(activities, 'powerOffInstance')).toBe(0);
    expect(count(activities, 'powerOnInstance')).toBe(1);
    expect((await eventOf(instanceId, 'reboot', REBOOT_EVENT)).details).toBe(
      'soft reboot: the guest shut down within 3 s of 1 ACPI request(s), then started'
    );
    expect(await actionsOf(instanceId)).toEqual([
      ['create', 'Success'],
      ['reboot', 'Success'],
    ]);
  });

  it('SOFT of a guest that ignores ACPI falls back to HARD after the soft-reboot timeout: skipped, not slept', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    await cloud.driver(host).setFaults({ ignoreShutdown: true });
    const { instanceId } = await run(hosts, () => build({ name: 'vm-deaf', availabilityZone: az }));

    const result = await run(hosts, () => runReboot({ instanceId, type: 'SOFT' }));
    expect(result.record).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null });
    expect(result.workflowMs).toBeGreaterThanOrEqual(120_000); // Nova's wait_soft_reboot_seconds
    const activities = await activitiesOf(result.workflowId);
    expect(count(activities, 'requestShutdown')).toBe(12);
    expect(count(activities, 'powerOffInstance')).toBe(1);
    expect((await eventOf(instanceId, 'reboot', REBOOT_EVENT)).details).toBe(
      'soft reboot fell back to hard: the guest was still on after 12 ACPI request(s) and 120 s; powered off by force, then started'
    );
  });

  it('HARD powers off by force and starts; from stopped too, where SOFT is refused and changes nothing', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    const [a, b] = await run(hosts, () =>
      buildEach([
        { name: 'vm-hard', availabilityZone: az },
        { name: 'vm-stopped', availabilityZone: az },
      ])
    ).then((records) => records as [InstanceRecord, InstanceRecord]);

    const hard = await run(hosts, () => runReboot({ instanceId: a.instanceId, type: 'HARD' }));
    expect(hard.record).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null });
    const activities = await activitiesOf(hard.workflowId);
    expect(count(activities, 'requestShutdown')).toBe(0);
    expect(count(activities, 'powerOffInstance')).toBe(1);
    expect(count(activities, 'powerOnInstance')).toBe(1);
    expect((await eventOf(a.instanceId, 'reboot', REBOOT_EVENT)).details).toBe(
      'hard reboot: the guest powered off by force, then started'
    );

    await run(hosts, () => runStop({ instanceId: b.instanceId, shutdownTimeoutSeconds: 0 }));
    const soft = await run(hosts, () => runReboot({ instanceId: b.instanceId }));
    expect(failureOf(soft.error)).toEqual({
      type: 'InstanceInvalidState',
      message: expect.stringMatching(/Cannot 'reboot' instance .* in vmState stopped/) as string,
    });
    expect(await cloud.instances.get(b.instanceId)).toMatchObject({ vmState: 'stopped', taskState: null });
    const fromStopped = await run(hosts, () => runReboot({ instanceId: b.instanceId, type: 'HARD' }));
    expect(fromStopped.record).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null, host });
    expect(count(await activitiesOf(fromStopped.workflowId), 'powerOffInstance')).toBe(0); // already off
  });

  it('a bad request is InvalidRequest and writes nothing', async () => {
    const { az, hosts } = await cloud.zone(1);
    const { instanceId } = await run(hosts, () => build({ name: 'vm-bad', availabilityZone: az }));
    const bad = await run(hosts, () => runReboot({ instanceId, type: 'GENTLE' as never }));
    expect(failureOf(bad.error).type).toBe('InvalidRequest');
    expect(await actionsOf(instanceId)).toEqual([['create', 'Success']]);
  });
});
