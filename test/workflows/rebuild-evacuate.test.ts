import { randomUUID } from 'node:crypto';
import path from 'node:path';

import type { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';

import { FakeDriver } from '../../src/compute/fake';
import type { RebuildInput } from '../../src/domain/schemas';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import type { rebuild } from '../../src/workflows/rebuild';
import type { reconcileHost } from '../../src/workflows/reconcile-host';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { failureOf } from '../helpers/failures';
import { progressReached } from '../helpers/progress';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

// Whatever a test did, placement is consistent after it: no orphaned allocation, no host over capacity.
useTimeSkippingCloud(
  (e, c) => {
    env = e;
    cloud = c;
  },
  { tag: 'rb' }
);

async function buildIn(az: string, hosts: readonly string[], image = 'cirros', group?: string, host = hosts[0]) {
  const instanceId = randomUUID();
  const schedulerHints = group ? { group } : {};
  const name = `vm-${instanceId.slice(0, 8)}`;
  const record = await cloud.run(hosts, () =>
    env.client.workflow.execute<typeof buildInstance>('buildInstance', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: workflowIds.buildInstance(instanceId),
      args: [{ instanceId, name, flavor: 'm1.small', image, availabilityZone: az, schedulerHints }],
    })
  );
  expect(record).toMatchObject({ vmState: 'active', host });
  return { instanceId, record };
}

function startRebuild(input: RebuildInput) {
  return env.client.workflow.start<typeof rebuild>('rebuild', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: (input.evacuate ? workflowIds.evacuate : workflowIds.rebuild)(input.instanceId, randomUUID()),
    args: [input],
  });
}

/** Runs a rebuild (or evacuation) to its end: the record, or the error it failed with. */
async function runRebuild(input: RebuildInput) {
  const handle = await startRebuild(input);
  return handle.result().then(
    (record) => ({ record, error: undefined }),
    (error: unknown) => ({ record: undefined, error })
  );
}

function reconcile(host: string) {
  return env.client.workflow.execute<typeof reconcileHost>('reconcileHost', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: `${workflowIds.reconcileHost(host)}-${randomUUID()}`,
    args: [{ host }],
  });
}

const allocationHosts = async (instanceId: string) =>
  (await cloud.placement.getAllocations(instanceId)).map((a) => a.host);

/** The events of the instance's last action named `action`, as [event, host, result]. */
async function eventsOf(instanceId: string, action: string) {
  const actions = (await cloud.instances.listActions(instanceId)).filter((a) => a.action === action);
  const last = actions.at(-1);
  return { action: last, events: (last?.events ?? []).map((e) => [e.event, e.host, e.result]) };
}

/** Waits until the operation reaches `taskState` (the query handler exists once the lock is taken). */
async function waitForTaskState(
  handle: Awaited<ReturnType<typeof startRebuild>>,
  taskState: string,
  also: () => Promise<boolean> = () => Promise.resolve(true)
) {
  await progressReached(handle, async (p) => p.taskState === taskState && (await also()), `task state ${taskState}`);
}

/** The conductor's events start at the same workflow time: their order among themselves is not defined. */
function conductorFirst(events: unknown[][], conductorEvents: number) {
  return [...events.slice(0, conductorEvents)].sort().concat(events.slice(conductorEvents));
}

/**
 * Short compute timeouts for cancellation tests: the SDK sends heartbeats (which carry the cancellation to
 * the activity) at most every 80% of the heartbeat timeout.
 */
const QUICK = { scheduleToStartSeconds: 10, heartbeatSeconds: 2, longStepSeconds: 120 };

/** Puts an instance into the stopped state, as a completed stop would leave it. */
async function markStopped(instanceId: string, host: string) {
  await cloud.driver(host).powerOff({ instanceId: instanceId });
  await cloud.instances.update(instanceId, { vmState: 'stopped', powerState: 'shutdown' });
}

/** Gives a host's fake hypervisor another spawn time (the next worker run uses it; same guest files). */
function setSpawnSeconds(host: string, spawnSeconds: number) {
  cloud.drivers.set(host, new FakeDriver({ host, stateDir: path.join(cloud.dataDir, 'compute'), spawnSeconds }));
}

describe('rebuild', () => {
  it('with the same image stays on its host: no scheduler, the same allocation, a rebuild action with its events', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [host] = hosts;
    const { instanceId } = await buildIn(az, hosts);
    const allocations = await cloud.placement.getAllocations(instanceId);
    const before = await cloud.driver(host).getGuest(instanceId);

    const { record, error } = await cloud.run(hosts, () => runRebuild({ instanceId }));
    expect(error).toBeUndefined();
    expect(record).toMatchObject({
      instanceId,
      vmState: 'active',
      taskState: null,
      taskOwner: null,
      powerState: 'running',
      host,
      image: 'cirros',
    });
    expect(await cloud.placement.getAllocations(instanceId)).toEqual(allocations);
    const { action, events } = await eventsOf(instanceId, 'rebuild');
    expect(action?.result).toBe('Success');
    expect(events).toEqual([
      ['rebuild_server', host, 'Success'],
      ['compute_rebuild_block_device_mapping', host, 'Success'],
      ['compute_rebuild_spawning', host, 'Success'],
    ]);
    const after = await cloud.driver(host).getGuest(instanceId);
    expect(after).toMatchObject({ image: { name: 'cirros' }, status: 'active', powerState: 'running' });
    expect(after?.spawnId).not.toBe(before?.spawnId); // a new guest
    expect(after?.network).toEqual(before?.network); // on the same port
  });

  it('with a new image checks it against the host (no claim) and ends with the new image', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [host] = hosts;
    const { instanceId } = await buildIn(az, hosts);
    const allocations = await cloud.placement.getAllocations(instanceId);

    const { record } = await cloud.run(hosts, () => runRebuild({ instanceId, image: 'ubuntu-24.04' }));
    expect(record).toMatchObject({ vmState: 'active', host, image: 'ubuntu-24.04', powerState: 'running' });
    expect(await cloud.placement.getAllocations(instanceId)).toEqual(allocations);
    expect(conductorFirst((await eventsOf(instanceId, 'rebuild')).events, 2)).toEqual([
      ['rebuild_server', host, 'Success'],
      ['scheduler_select_destinations', host, 'Success'],
      ['compute_rebuild_block_device_mapping', host, 'Success'],
      ['compute_rebuild_spawning', host, 'Success'],
    ]);
    expect(await cloud.driver(host).getGuest(instanceId)).toMatchObject({ image: { name: 'ubuntu-24.04' } });
  });

  it('with an image of another architecture fails with NoValidHost: error, the original image kept, a fault', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [host] = hosts;
    const { instanceId } = await buildIn(az, hosts);

    const { error } = await cloud.run(hosts, () => runRebuild({ instanceId, image: 'fedora-41-aarch64' }));
    const failure = failureOf(error);
    expect(failure.type).toBe('NoValidHost');
    expect(failure.message).toMatch(/ImagePropertiesFilter/);
    expect(await cloud.instances.get(instanceId)).toMatchObject({
      vmState: 'error',
      taskState: null,
      host,
      image: 'cirros',
      powerState: 'running',
    });
    expect((await cloud.instances.listFaults(instanceId)).map((f) => [f.code, f.message])).toEqual([
      [500, failure.message],
    ]);
    const { action, events } = await eventsOf(instanceId, 'rebuild');
    expect(action?.result).toBe('Error');
    expect(conductorFirst(events, 2)).toEqual([
      ['rebuild_server', host, 'Error'],
      ['scheduler_select_destinations', host, 'Error'],
    ]);
    // Nothing touched the guest, and the instance, still on its host, keeps its allocation there (Nova).
    expect(await cloud.driver(host).getGuest(instanceId)).toMatchObject({ image: { name: 'cirros' } });
    expect(await allocationHosts(instanceId)).toEqual([host]);

    // NOTE(nova): rebuild is allowed from ERROR and ends ACTIVE: the way back.
    const { record } = await cloud.run(hosts, () => runRebuild({ instanceId }));
    expect(record).toMatchObject({ vmState: 'active', image: 'cirros', host });
  });

  it('keeps a stopped instance stopped', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    const { instanceId } = await buildIn(az, hosts);
    await markStopped(instanceId, host);

    const { record } = await cloud.run(hosts, () => runRebuild({ instanceId, image: 'ubuntu-24.04' }));
    expect(record).toMatchObject({ vmState: 'stopped', powerState: 'shutdown', image: 'ubuntu-24.04', host });
    expect(await cloud.driver(host).getGuest(instanceId)).toMatchObject({
      image: { name: 'ubuntu-24.04' },
      powerState: 'shutdown',
    });
  });

  it('fails at once with InstanceInvalidState naming the state when another operation holds the instance', async () => {
    const { az, hosts } = await cloud.zone(1);
    const { instanceId } = await buildIn(az, hosts);
    await cloud.instances.update(instanceId, { taskState: 'powering-off', taskOwner: 'stop-elsewhere' });

    const { error } = await cloud.run(hosts, () => runRebuild({ instanceId }));
    const failure = failureOf(error);
    expect(failure.type).toBe('InstanceInvalidState');
    expect(failure.message).toContain('taskState powering-off');
    expect(await cloud.instances.get(instanceId)).toMatchObject({
      vmState: 'active',
      taskState: 'powering-off',
      taskOwner: 'stop-elsewhere',
    });
    expect((await cloud.instances.listActions(instanceId)).map((a) => a.action)).toEqual(['create']);
    await cloud.instances.update(instanceId, { taskState: null });
  });

  it.each([
    ['rebuild', {}],
    ['evacuate', { evacuate: true }],
  ])(
    '%s of an error instance with no host is refused (Nova: InstanceNotReady), changing nothing',
    async (action, patch) => {
      const { az, hosts } = await cloud.zone(1);
      const { instanceId } = await buildIn(az, hosts);
      await cloud.instances.update(instanceId, { vmState: 'error', host: null });
      const before = await cloud.instances.get(instanceId);

      const { error } = await cloud.run(hosts, () => runRebuild({ instanceId, ...patch }));
      const failure = failureOf(error);
      expect(failure.type).toBe('InstanceInvalidState');
      expect(failure.message).toBe(
        `Cannot '${action}' instance ${instanceId} while it is in vmState error with no host`
      );
      expect(await cloud.instances.get(instanceId)).toEqual(before);
      expect((await cloud.instances.listActions(instanceId)).map((a) => a.action)).toEqual(['create']);
      // Back on its host: the shared placement audit after each test finds no orphaned allocation.
      await cloud.instances.update(instanceId, { vmState: 'active', host: hosts[0] });
    }
  );

  it.each([
    ['an unknown image', 'image', { image: 'no-such-image' }],
    ['a host without evacuate', 'host', { host: 'somewhere' }],
    ['an image with evacuate', 'image', { evacuate: true, image: 'cirros' }],
    ['a malformed instance id', 'instanceId', { instanceId: 'not-a-uuid' }],
    ['an unexpected field', 'unexpected', { unexpected: 1 }],
  ])('refuses %s with InvalidRequest naming %s, changing nothing', async (_label, field, patch) => {
    const { az, hosts } = await cloud.zone(1);
    const { instanceId, record: built } = await buildIn(az, hosts);
    const input = { instanceId, ...patch } as unknown as RebuildInput;
    const { error } = await cloud.run(hosts, () => runRebuild(input));
    const failure = failureOf(error);
    expect(failure.type).toBe('InvalidRequest');
    expect(failure.message).toContain(`Invalid request: ${field}:`);
    expect(await cloud.instances.get(instanceId)).toEqual(built);
    expect((await cloud.instances.listActions(instanceId)).map((a) => a.action)).toEqual(['create']);
  });

  it('cancelled while spawning ends in a stable state: error, no task, the original image, the allocation kept', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [host] = hosts;
    const { instanceId } = await buildIn(az, hosts);
    setSpawnSeconds(host, 30);
    const error = await cloud.run(hosts, async () => {
      const handle = await startRebuild({ instanceId, image: 'ubuntu-24.04', timeouts: QUICK });
      await waitForTaskState(handle, 'rebuild_spawning', async () => !!(await cloud.driver(host).getGuest(instanceId)));
      await handle.cancel();
      return handle.result().then(
        () => undefined,
        (e: unknown) => e
      );
    });
    expect(((error as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    expect(await cloud.instances.get(instanceId)).toMatchObject({
      vmState: 'error',
      taskState: null,
      powerState: 'nostate',
      image: 'cirros',
      host,
    });
    expect((await cloud.instances.listFaults(instanceId)).map((f) => f.code)).toEqual([499]);
    expect(await cloud.driver(host).listGuests()).toEqual([]);
    expect(await allocationHosts(instanceId)).toEqual([host]);

    setSpawnSeconds(host, 0.2);
    const { record } = await cloud.run(hosts, () => runRebuild({ instanceId }));
    expect(record).toMatchObject({ vmState: 'active', powerState: 'running', image: 'cirros' });
  });
});

describe('rebuild with evacuate', () => {
  it('is refused while the source host is up, changing nothing', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source] = hosts;
    const { instanceId, record: built } = await buildIn(az, hosts);

    const { error } = await cloud.run(hosts.slice(1), () => runRebuild({ instanceId, evacuate: true }));
    const failure = failureOf(error);
    // Nova's words, then what to do: force the host down (and how), or live-migrate instead.
    expect(failure).toEqual({
      type: 'ComputeServiceInUse',
      message: expect.stringContaining(`Compute service of ${source} is still in use.`) as string,
    });
    expect(failure?.message).toContain(`Evacuate needs the instance's host down`);
    expect(failure?.message).toContain(`npm run conductor -- host down ${source}`);
    expect(failure?.message).toContain('live-migrate');
    expect(await cloud.instances.get(instanceId)).toEqual(built);
    expect((await cloud.instances.listActions(instanceId)).map((a) => a.action)).toEqual(['create']);
    expect(await cloud.instances.listMigrations(instanceId)).toEqual([]);
    expect(await allocationHosts(instanceId)).toEqual([source]);
  });

  it('re-creates the instance on another host while the source is down; the returning source cleans up', async () => {
    const { az, hosts } = await cloud.zone(3);
    const [source, dest, other] = hosts;
    const { instanceId } = await buildIn(az, hosts);
    cloud.liveness.down.add(source);
    try {
      // The source has no live worker either: nothing runs on it.
      const { record, error } = await cloud.run([dest, other], () => runRebuild({ instanceId, evacuate: true }));
      expect(error).toBeUndefined();
      expect(record).toMatchObject({
        vmState: 'active',
        taskState: null,
        powerState: 'running',
        host: dest,
        availabilityZone: az,
        image: 'cirros',
      });
    } finally {
      cloud.liveness.down.delete(source);
    }
    // As in Nova, the instance holds allocations on both hosts until the source returns; they are not orphans.
    expect(await allocationHosts(instanceId)).toEqual([source, dest].sort());
    expect((await cloud.placement.audit()).orphans).toEqual([]);
    const [migration] = await cloud.instances.listMigrations(instanceId);
    expect(migration).toMatchObject({
      migrationType: 'evacuation',
      status: 'done',
      sourceHost: source,
      destHost: dest,
    });
    const { action, events } = await eventsOf(instanceId, 'evacuate');
    expect(action?.result).toBe('Success');
    expect(conductorFirst(events, 2)).toEqual([
      ['rebuild_server', source, 'Success'],
      ['scheduler_select_destinations', source, 'Success'],
      ['compute_rebuild_block_device_mapping', dest, 'Success'],
      ['compute_rebuild_spawning', dest, 'Success'],
    ]);
    expect(await cloud.driver(dest).getGuest(instanceId)).toMatchObject({ status: 'active', powerState: 'running' });
    expect(await cloud.driver(source).getGuest(instanceId)).toBeDefined(); // the dead host still has it

    // The source compute restarts: its worker polls again and it reconciles.
    const result = await cloud.run(hosts, () => reconcile(source));
    expect(result).toEqual({
      host: source,
      guests: 1,
      cleaned: [
        { instanceId, migrationId: migration?.id, currentHost: dest, guestDestroyed: true, allocationReleased: true },
      ],
      deleted: [],
    });
    expect(await cloud.driver(source).listGuests()).toEqual([]);
    expect(await cloud.driver(dest).getGuest(instanceId)).toBeDefined();
    expect(await allocationHosts(instanceId)).toEqual([dest]);
    expect((await cloud.instances.listMigrations(instanceId)).map((m) => m.status)).toEqual(['completed']);
    expect((await eventsOf(instanceId, 'evacuate')).events.at(-1)).toEqual([
      'compute_destroy_evacuated_instance',
      source,
      'Success',
    ]);
    // Reconciling again finds nothing left to do.
    expect((await cloud.run(hosts, () => reconcile(source))).cleaned).toEqual([]);
  });

  it('to a forced host claims it directly, from a forced-down source, whatever the task state; stopped stays stopped', async () => {
    const { az, hosts } = await cloud.zone(3);
    const [source, , requested] = hosts;
    const { instanceId } = await buildIn(az, hosts);
    await markStopped(instanceId, source);
    // A start sent to the host just before it died, never to finish (Nova bug 1978983).
    await cloud.instances.update(instanceId, { taskState: 'powering-on', taskOwner: 'start-lost' });
    await cloud.placement.setForcedDown(source, true);
    try {
      const { record, error } = await cloud.run(hosts.slice(1), () =>
        runRebuild({ instanceId, evacuate: true, host: requested, force: true })
      );
      expect(error).toBeUndefined();
      expect(record).toMatchObject({
        vmState: 'stopped',
        taskState: null,
        taskOwner: null,
        powerState: 'shutdown',
        host: requested,
      });
    } finally {
      await cloud.placement.setForcedDown(source, false);
    }
    const { events } = await eventsOf(instanceId, 'evacuate');
    expect(conductorFirst(events, 2)).toEqual([
      ['conductor_claim_requested_host', requested, 'Success'],
      ['rebuild_server', source, 'Success'],
      ['compute_rebuild_block_device_mapping', requested, 'Success'],
      ['compute_rebuild_spawning', requested, 'Success'],
    ]);
    expect(await allocationHosts(instanceId)).toEqual([source, requested].sort());
    expect(await cloud.driver(requested).getGuest(instanceId)).toMatchObject({ powerState: 'shutdown' });

    const result = await cloud.run(hosts, () => reconcile(source));
    expect(result.cleaned.map((c) => c.instanceId)).toEqual([instanceId]);
    expect(await allocationHosts(instanceId)).toEqual([requested]);
  });

  it("to a requested host goes through the scheduler's filters unless forced; a forced one meets the late group check", async () => {
    const { az, hosts } = await cloud.zone(3);
    const [first, source, free] = hosts;
    const group = `rb-anti-${az}`;
    await cloud.instances.ensureServerGroup(group, 'anti-affinity');
    const member = await buildIn(az, hosts, 'cirros', group, first);
    const { instanceId } = await buildIn(az, hosts, 'cirros', group, source);
    cloud.liveness.down.add(source);
    const outcomes = await cloud.run([first, free], async () => [
      // The scheduler's anti-affinity filter refuses the member's host: nothing claimed there.
      failureOf((await runRebuild({ instanceId, evacuate: true, host: first })).error),
      // Forced, the scheduler is skipped; the late check on the destination fails it (Nova's BuildAbortException).
      failureOf((await runRebuild({ instanceId, evacuate: true, host: first, force: true })).error),
      await runRebuild({ instanceId, evacuate: true, host: free }),
    ]);
    cloud.liveness.down.delete(source);
    expect(outcomes[0]).toMatchObject({ type: 'NoValidHost' });
    expect(outcomes[1]).toMatchObject({ type: 'BuildAborted' });
    expect((outcomes[1] as { message: string }).message).toMatch(
      new RegExp(
        `Build of instance ${instanceId} aborted: Server group ${group} \\(anti-affinity\\) would be violated on ${first}: member ${member.instanceId} is there`
      )
    );
    expect(outcomes[2]).toMatchObject({ error: undefined, record: { vmState: 'active', host: free, taskState: null } });
    const evacuations = (await cloud.instances.listActions(instanceId)).filter((a) => a.action === 'evacuate');
    const conductorEvents = [2, 3, 3];
    expect(
      evacuations.map((a, i) => [
        a.result,
        conductorFirst(
          a.events.map((e) => [e.event, e.host, e.result]),
          conductorEvents[i]!
        ),
      ])
    ).toEqual([
      [
        'Error',
        [
          ['rebuild_server', source, 'Error'],
          ['scheduler_select_destinations', source, 'Error'],
        ],
      ],
      [
        'Error',
        [
          ['compute_validate_instance_group_policy', first, 'Error'],
          ['conductor_claim_requested_host', first, 'Success'],
          ['rebuild_server', source, 'Error'],
        ],
      ],
      [
        'Success',
        [
          ['compute_validate_instance_group_policy', free, 'Success'],
          ['rebuild_server', source, 'Success'],
          ['scheduler_select_destinations', source, 'Success'],
          ['compute_rebuild_block_device_mapping', free, 'Success'],
          ['compute_rebuild_spawning', free, 'Success'],
        ],
      ],
    ]);
    expect((await cloud.instances.listMigrations(instanceId)).map((m) => [m.status, m.destHost])).toEqual([
      ['error', first],
      ['error', first],
      ['done', free],
    ]);
    expect(await allocationHosts(member.instanceId)).toEqual([first]);
    expect(await allocationHosts(instanceId)).toEqual([source, free].sort());
    expect((await cloud.driver(first).listGuests()).map((g) => g.instanceId)).toEqual([member.instanceId]);
    const result = await cloud.run(hosts, () => reconcile(source));
    expect(result.cleaned.map((c) => c.instanceId)).toEqual([instanceId]);
    expect(await allocationHosts(instanceId)).toEqual([free]);
  });

  it('refuses a requested host that is the source, unknown, or down, changing nothing', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, other] = hosts;
    const { instanceId, record: built } = await buildIn(az, hosts);
    cloud.liveness.down.add(source);
    cloud.liveness.down.add(other);
    try {
      const outcomes = await cloud.run([], async () => [
        failureOf((await runRebuild({ instanceId, evacuate: true, host: source })).error),
        failureOf((await runRebuild({ instanceId, evacuate: true, host: 'no-such-host' })).error),
        failureOf((await runRebuild({ instanceId, evacuate: true, host: other })).error),
      ]);
      expect(outcomes.map((o) => o.type)).toEqual(['InvalidRequest', 'InvalidRequest', 'ComputeHostUnavailable']);
      expect(outcomes[0]?.message).toContain('Invalid request: host:');
      expect(outcomes[2]?.message).toContain(other);
    } finally {
      cloud.liveness.down.delete(source);
      cloud.liveness.down.delete(other);
    }
    expect(await cloud.instances.get(instanceId)).toEqual(built);
    expect(await cloud.instances.listMigrations(instanceId)).toEqual([]);
  });

  it('that fails on the destination frees its claim and keeps the previous state, with a fault; never retried elsewhere', async () => {
    const { az, hosts } = await cloud.zone(3);
    const [source, dest, other] = hosts;
    const { instanceId, record: built } = await buildIn(az, hosts);
    await cloud.driver(dest).setFaults({ spawn: { failNext: 1, kind: 'abort' } });
    cloud.liveness.down.add(source);
    let outcome;
    try {
      outcome = await cloud.run([dest, other], () => runRebuild({ instanceId, evacuate: true }));
    } finally {
      cloud.liveness.down.delete(source);
    }
    const failure = failureOf(outcome.error);
    expect(failure.type).toBe('BuildAborted');
    expect(failure.message).toMatch(/unacceptable/i);
    expect(await cloud.instances.get(instanceId)).toMatchObject({
      vmState: 'active',
      taskState: null,
      powerState: 'running',
      host: source,
      image: 'cirros',
      availabilityZone: built.availabilityZone,
    });
    expect((await cloud.instances.listFaults(instanceId)).map((f) => f.message)).toEqual([failure.message]);
    expect((await cloud.instances.listMigrations(instanceId)).map((m) => [m.status, m.destHost])).toEqual([
      ['error', dest],
    ]);
    expect(await allocationHosts(instanceId)).toEqual([source]);
    expect(await cloud.driver(dest).listGuests()).toEqual([]);
    expect(await cloud.driver(other).listGuests()).toEqual([]);
    const { action, events } = await eventsOf(instanceId, 'evacuate');
    expect(action?.result).toBe('Error');
    expect(events.at(-1)).toEqual(['compute_rebuild_spawning', dest, 'Error']);
    expect(events.filter(([, host]) => host === other)).toEqual([]);
  });

  it('fails with NoValidHost when no other host fits, keeping the previous state', async () => {
    const { az, hosts } = await cloud.zone(1);
    const [source] = hosts;
    const { instanceId } = await buildIn(az, hosts);
    cloud.liveness.down.add(source);
    let outcome;
    try {
      outcome = await cloud.run([], () => runRebuild({ instanceId, evacuate: true }));
    } finally {
      cloud.liveness.down.delete(source);
    }
    expect(failureOf(outcome.error).type).toBe('NoValidHost');
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'active', taskState: null, host: source });
    expect((await cloud.instances.listMigrations(instanceId)).map((m) => m.status)).toEqual(['error']);
    expect(await allocationHosts(instanceId)).toEqual([source]);
  });

  it('cancelled while spawning on the destination tears the guest down, frees the claim, keeps the previous state', async () => {
    const { az, hosts } = await cloud.zone(2, { spawnSeconds: [0.2, 30] });
    const [source, dest] = hosts;
    const { instanceId } = await buildIn(az, hosts);
    cloud.liveness.down.add(source);
    let error: unknown;
    try {
      error = await cloud.run([dest], async () => {
        const handle = await startRebuild({ instanceId, evacuate: true, timeouts: QUICK });
        await waitForTaskState(
          handle,
          'rebuild_spawning',
          async () => !!(await cloud.driver(dest).getGuest(instanceId))
        );
        await handle.cancel();
        return handle.result().then(
          () => undefined,
          (e: unknown) => e
        );
      });
    } finally {
      cloud.liveness.down.delete(source);
    }
    expect(((error as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    expect(await cloud.instances.get(instanceId)).toMatchObject({
      vmState: 'active',
      taskState: null,
      powerState: 'running',
      host: source,
    });
    expect(await allocationHosts(instanceId)).toEqual([source]);
    expect(await cloud.driver(dest).listGuests()).toEqual([]);
    expect((await cloud.instances.listMigrations(instanceId)).map((m) => m.status)).toEqual(['error']);
  });
});
