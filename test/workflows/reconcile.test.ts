/**
 * The reconciler and reset-state on the time-skipping server, with the real workers: each decision
 * (an interrupted build healed, an unconfirmed resize confirmed, an orphaned allocation released, a
 * missing one recreated, every live host reconciled, a down one skipped), a dry run changing nothing, a
 * live operation left alone, batches over continue-as-new, and reset-state refused while the operation
 * holding the instance runs. After every test the placement audit is clean (useTimeSkippingCloud) and
 * every workflow the test started is closed.
 */
import { randomUUID } from 'node:crypto';

import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import type { ReconcileDecision } from '../../src/domain/reconcile';
import { UNKNOWN_OWNER_GRACE_MS } from '../../src/domain/reconcile';
import type { ReconcileInput } from '../../src/domain/schemas';
import { confirmResizeUpdate } from '../../src/shared/messages';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import type { reconcile } from '../../src/workflows/reconcile';
import type { resetState } from '../../src/workflows/reset-state';
import type { resizeMigrate } from '../../src/workflows/resize-migrate';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { failureOfRun } from '../helpers/failures';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

const AZ = 'reconcile-az';
let hosts: string[] = [];
/** The workflows a test started: each must be closed when it ends. */
const started: WorkflowHandle[] = [];

beforeAll(async () => {
  hosts = await cloud.addHosts(
    ['rc-host-a', 'rc-host-b', 'rc-host-c'].map((name, i) => ({
      name,
      availabilityZone: AZ,
      memoryMb: 65536 - i * 8192,
    }))
  );
});

afterEach(async () => {
  for (const handle of started.splice(0))
    expect((await handle.describe()).status.name, handle.workflowId).not.toBe('RUNNING');
  cloud.liveness.down.clear();
});

const SMALL = { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 };

function startBuild(): Promise<WorkflowHandle<typeof buildInstance>> {
  return cloud.startBuild(AZ).then((h) => (started.push(h), h));
}

async function boot() {
  const record = await (await startBuild()).result();
  expect(record).toMatchObject({ vmState: 'active' });
  return record;
}

function startResize(instanceId: string): Promise<WorkflowHandle<typeof resizeMigrate>> {
  return env.client.workflow
    .start<typeof resizeMigrate>('resizeMigrate', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: workflowIds.resizeMigrate(instanceId, randomUUID().slice(0, 8)),
      args: [{ instanceId, flavor: 'm1.medium', confirmWindowSeconds: 0 }],
    })
    .then((h) => (started.push(h), h));
}

async function runReconcile(input: ReconcileInput = {}) {
  const handle = await env.client.workflow.start<typeof reconcile>('reconcile', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: `reconcile-test-${randomUUID().slice(0, 8)}`,
    args: [input],
  });
  started.push(handle);
  return handle.result();
}

function runResetState(instanceId: string, state: 'active' | 'error') {
  const workflowId = `reset-state-${instanceId}-${randomUUID().slice(0, 8)}`;
  return env.client.workflow
    .start<typeof resetState>('resetState', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId,
      args: [{ instanceId, state }],
    })
    .then((h) => (started.push(h), h.result()));
}

const about = (decisions: ReconcileDecision[], subject: string) => decisions.filter((d) => d.subject === subject);

async function resizedAndWaiting(): Promise<{
  instanceId: string;
  source: string;
  resize: WorkflowHandle<typeof resizeMigrate>;
}> {
  const { instanceId, host } = await boot();
  const resize = await startResize(instanceId);
  await vi.waitFor(async () => expect((await cloud.instances.get(instanceId)).vmState).toBe('resized'), {
    timeout: 20_000,
    interval: 100,
  });
  return { instanceId, source: host!, resize };
}

describe('reconcile', () => {
  it('heals a build terminated mid-spawn: guest destroyed, claim released, error with a fault, task state clear', async () => {
    await cloud.run(hosts, async () => {
      const gate = cloud.holdNext('spawnInstance');
      const build = await startBuild();
      await gate.reached;
      const { instanceId, host } = (await cloud.instances.list()).find((i) => i.taskState === 'spawning')!;
      await build.terminate('operator');
      gate.open();
      await gate.done;
      // What the terminate left: the guest spawned, the claim held, the task state set.
      expect(await cloud.driver(host!).getGuest(instanceId)).toBeDefined();
      expect(await cloud.placement.getAllocations(instanceId)).toEqual([{ host, resources: SMALL }]);

      const result = await runReconcile();
      const [healed, ...more] = about(result.decisions, instanceId);
      expect(more).toEqual([]);
      expect(healed).toMatchObject({ kind: 'interrupted-operation', host, outcome: 'applied' });
      expect(healed?.note).toContain(`guest destroyed on ${host}`);
      expect(await cloud.instances.get(instanceId)).toMatchObject({
        vmState: 'error',
        taskState: null,
        taskOwner: null,
        host: null,
      });
      expect(await cloud.driver(host!).getGuest(instanceId)).toBeUndefined();
      expect(await cloud.placement.getAllocations(instanceId)).toEqual([]);
      const faults = await cloud.instances.listFaults(instanceId);
      expect(faults.at(-1)?.message).toMatch(
        /interrupted: task state spawning held, but its workflow .* is terminated/
      );
      const create = (await cloud.instances.listActions(instanceId)).find((a) => a.action === 'create')!;
      expect(create.result).toBe('Error');
      expect(create.events.map((e) => e.event)).toContain('conductor_reconcile');

      // A second pass finds nothing more to do for it.
      expect(about((await runReconcile()).decisions, instanceId)).toEqual([]);
    });
  });

  it('confirms a resize left in VERIFY_RESIZE by a terminated workflow: source guest and allocation gone, active', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId, source, resize } = await resizedAndWaiting();
      await resize.terminate('operator');
      const [migration] = await cloud.instances.listMigrations(instanceId);
      const dest = (await cloud.instances.get(instanceId)).host!;
      expect(await cloud.placement.getAllocations(migration!.id)).toEqual([{ host: source, resources: SMALL }]);

      const result = await runReconcile();
      expect(about(result.decisions, instanceId)).toEqual([
        expect.objectContaining({ kind: 'unconfirmed-resize', host: source, outcome: 'applied' }),
      ]);
      expect(await cloud.instances.get(instanceId)).toMatchObject({
        vmState: 'active',
        taskState: null,
        host: dest,
        flavor: 'm1.medium',
      });
      expect((await cloud.instances.getMigration(migration!.id)).status).toBe('confirmed');
      expect(await cloud.placement.getAllocations(migration!.id)).toEqual([]);
      expect(await cloud.driver(source).getGuest(instanceId)).toBeUndefined();
      expect(await cloud.driver(dest).getGuest(instanceId)).toMatchObject({ status: 'active' });
      const actions = await cloud.instances.listActions(instanceId);
      expect(actions.find((a) => a.action === 'confirmResize')).toMatchObject({
        result: 'Success',
        events: [expect.objectContaining({ event: 'compute_confirm_resize', result: 'Success' })],
      });
      expect(actions.find((a) => a.action === 'resize')?.events.map((e) => e.event)).toContain('conductor_reconcile');
    });
  });

  it('leaves an unconfirmed resize as it was when its source does not answer, and confirms it once it does', async () => {
    const { instanceId, source, resize } = await cloud.run(hosts, resizedAndWaiting);
    await cloud.run(hosts, () => resize.terminate('operator'));
    const [migration] = await cloud.instances.listMigrations(instanceId);
    // The source's worker is not running (the scheduler still counts the host as up).
    const silent = await cloud.run(
      hosts.filter((h) => h !== source),
      () => runReconcile()
    );
    const [decision] = about(silent.decisions, instanceId);
    expect(decision).toMatchObject({ kind: 'unconfirmed-resize', outcome: 'failed' });
    expect(decision?.note).toContain(`${source} did not destroy the source guest`);
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'resized', taskState: null });
    expect((await cloud.instances.getMigration(migration!.id)).status).toBe('finished');
    const confirm = (await cloud.instances.listActions(instanceId)).find((a) => a.action === 'confirmResize');
    expect(confirm?.result).toBe('Error');
    expect(confirm?.events).toMatchObject([{ event: 'compute_confirm_resize', result: 'Error' }]);

    const answered = await cloud.run(hosts, () => runReconcile());
    expect(about(answered.decisions, instanceId)).toMatchObject([{ kind: 'unconfirmed-resize', outcome: 'applied' }]);
    expect((await cloud.instances.get(instanceId)).vmState).toBe('active');
    expect(await cloud.placement.getAllocations(migration!.id)).toEqual([]);
  }, 60_000);

  it('clears a stop whose workflow is gone: as it was when nothing reached the host, error with a fault once it did', async () => {
    await cloud.run(hosts, async () => {
      const untouched = await boot();
      const reached = await boot();
      for (const { instanceId } of [untouched, reached]) {
        const owner = `stop-${instanceId}-gone`;
        const { actionId } = await cloud.instances.startAction(instanceId, 'stop', owner);
        await cloud.instances.update(instanceId, { taskState: 'powering-off', taskOwner: owner });
        if (instanceId === reached.instanceId) {
          const now = new Date().toISOString();
          await cloud.instances.recordEvent({
            actionId,
            event: 'compute_stop_instance',
            attempt: 1,
            host: reached.host,
            result: null,
            startedAt: now,
          });
        }
      }

      // An owner Temporal has never heard of may be about to start (a multi-create's child): left alone
      // while the instance changed recently.
      const early = await runReconcile();
      expect(about(early.decisions, untouched.instanceId)).toEqual([]);
      expect((await cloud.instances.get(untouched.instanceId)).taskState).toBe('powering-off');
      // … and healed once it has been still for longer than that.
      const still = new Date(Date.now() - UNKNOWN_OWNER_GRACE_MS - 60_000).toISOString();
      await cloud.store.db
        .updateTable('instances')
        .set({ updated_at: still })
        .where('instance_id', 'in', [untouched.instanceId, reached.instanceId])
        .execute();

      const result = await runReconcile();
      expect(about(result.decisions, untouched.instanceId)).toMatchObject([
        { kind: 'interrupted-operation', outcome: 'applied' },
      ]);
      expect(await cloud.instances.get(untouched.instanceId)).toMatchObject({
        vmState: 'active',
        taskState: null,
        taskOwner: null,
        host: untouched.host,
      });
      expect(await cloud.instances.listFaults(untouched.instanceId)).toEqual([]);
      expect(await cloud.instances.get(reached.instanceId)).toMatchObject({
        vmState: 'error',
        taskState: null,
        host: reached.host,
      });
      expect((await cloud.instances.listFaults(reached.instanceId)).at(-1)?.message).toContain(
        'Operation stop on instance'
      );
      // Neither lost its allocation or its guest.
      for (const { instanceId, host } of [untouched, reached]) {
        expect(await cloud.placement.getAllocations(instanceId)).toEqual([{ host, resources: SMALL }]);
        expect(await cloud.driver(host!).getGuest(instanceId)).toBeDefined();
      }
    });
  });

  it('leaves live operations alone: a resize awaiting its decision and a build mid-spawn', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId: resized, resize } = await resizedAndWaiting();
      const gate = cloud.holdNext('spawnInstance');
      const build = await startBuild();
      await gate.reached;
      const building = (await cloud.instances.list()).find((i) => i.taskState === 'spawning')!;
      const migrations = await cloud.instances.listMigrations(resized);

      const result = await runReconcile();
      expect(about(result.decisions, resized)).toEqual([]);
      expect(about(result.decisions, building.instanceId)).toEqual([]);
      expect(about(result.decisions, migrations[0]!.id)).toEqual([]);
      expect(await cloud.instances.get(building.instanceId)).toMatchObject({
        taskState: 'spawning',
        taskOwner: building.taskOwner,
      });
      expect((await cloud.instances.get(resized)).vmState).toBe('resized');

      gate.open();
      expect(await build.result()).toMatchObject({ vmState: 'active' });
      await resize.executeUpdate(confirmResizeUpdate);
      expect((await resize.result()).resize.decision).toBe('confirmed');
    });
  });

  it('a dry run decides and changes nothing; the real run releases orphans and recreates a missing allocation', async () => {
    await cloud.run(hosts, async () => {
      const [a, b] = hosts as [string, string];
      const ghost = `ghost-${randomUUID().slice(0, 8)}`;
      await cloud.placement.claim(ghost, a, SMALL);
      const { instanceId: deletedId } = await cloud.instances.create(seed({ vmState: 'deleted', host: null }));
      await cloud.placement.claim(deletedId, b, SMALL);
      const { instanceId: unallocated } = await cloud.instances.create(seed({ vmState: 'active', host: b }));
      const before = await cloud.placement.audit();

      const dry = await runReconcile({ dryRun: true });
      expect(dry.dryRun).toBe(true);
      const planned = [
        ...about(dry.decisions, ghost),
        ...about(dry.decisions, deletedId),
        ...about(dry.decisions, unallocated),
      ];
      expect(planned).toEqual([
        expect.objectContaining({ kind: 'orphaned-allocation', host: a, outcome: 'planned' }),
        expect.objectContaining({ kind: 'orphaned-allocation', host: b, outcome: 'planned' }),
        expect.objectContaining({ kind: 'missing-allocation', host: b, outcome: 'planned' }),
        // The seeded instance has no guest on its host: the power-state sync records nostate.
        expect.objectContaining({ kind: 'power-state-sync', host: b, outcome: 'planned' }),
      ]);
      expect(dry.decisions.filter((d) => d.kind === 'host-reconciled').every((d) => d.outcome === 'planned')).toBe(
        true
      );
      expect(await cloud.placement.audit()).toEqual(before);
      expect(await cloud.placement.getAllocations(unallocated)).toEqual([]);

      const real = await runReconcile();
      expect(about(real.decisions, ghost)).toEqual([expect.objectContaining({ outcome: 'applied' })]);
      expect(about(real.decisions, deletedId)).toEqual([expect.objectContaining({ outcome: 'applied' })]);
      expect(about(real.decisions, unallocated)).toEqual([
        expect.objectContaining({ kind: 'missing-allocation', outcome: 'applied' }),
        expect.objectContaining({ kind: 'power-state-sync', outcome: 'applied' }),
      ]);
      expect(await cloud.instances.get(unallocated)).toMatchObject({ vmState: 'active', powerState: 'nostate' });
      expect(await cloud.placement.getAllocations(ghost)).toEqual([]);
      expect(await cloud.placement.getAllocations(deletedId)).toEqual([]);
      expect(await cloud.placement.getAllocations(unallocated)).toEqual([{ host: b, resources: SMALL }]);
      // The seeded active instance has no guest: take it out of the cloud for the tests after this one.
      await cloud.placement.releaseConsumer(unallocated);
      await cloud.instances.update(unallocated, { vmState: 'deleted', host: null });
    });
  });

  it('reconciles every live host as a child and skips a down one; batches continue as new and keep every decision', async () => {
    await cloud.run(hosts, async () => {
      cloud.liveness.down.add(hosts[2]!);
      const result = await runReconcile({ batchSize: 1, batchesPerRun: 1 });
      const byHost = result.decisions.filter((d) => d.kind === 'host-reconciled' || d.kind === 'host-skipped');
      expect(byHost).toEqual([
        expect.objectContaining({ kind: 'host-reconciled', subject: hosts[0], outcome: 'applied' }),
        expect.objectContaining({ kind: 'host-reconciled', subject: hosts[1], outcome: 'applied' }),
        expect.objectContaining({ kind: 'host-skipped', subject: hosts[2], outcome: 'skipped' }),
      ]);
      // One batch per instance, then one per host, each in its own run.
      const instances = (await cloud.instances.list()).length;
      expect(result.batches).toBe(instances + 1 + hosts.length);
    });
  });

  it('refuses bad input with InvalidRequest', async () => {
    await cloud.run(hosts, async () => {
      const failure = await failureOfRun(runReconcile({ batchSize: 0 }));
      expect(failure.type).toBe('InvalidRequest');
      expect(failure.message).toContain('batchSize');
    });
  });
});

describe('resetState', () => {
  it('is refused with InstanceInvalidState while the operation holding the instance runs', async () => {
    await cloud.run(hosts, async () => {
      const gate = cloud.holdNext('spawnInstance');
      const build = await startBuild();
      await gate.reached;
      const building = (await cloud.instances.list()).find((i) => i.taskState === 'spawning')!;
      const failure = await failureOfRun(runResetState(building.instanceId, 'active'));
      expect(failure.type).toBe('InstanceInvalidState');
      expect(failure.message).toContain(`while its operation ${building.taskOwner} is running`);
      expect(await cloud.instances.get(building.instanceId)).toMatchObject({
        vmState: 'building',
        taskState: 'spawning',
      });
      gate.open();
      expect(await build.result()).toMatchObject({ vmState: 'active' });
    });
  });

  it('sets the vm state and clears a task state whose workflow is gone, with a resetState action', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId, host } = await boot();
      await cloud.instances.update(instanceId, { taskState: 'powering-off', taskOwner: 'stop-that-never-ran' });
      const record = await runResetState(instanceId, 'error');
      expect(record).toMatchObject({ vmState: 'error', taskState: null, taskOwner: null, host });
      const action = (await cloud.instances.listActions(instanceId)).find((a) => a.action === 'resetState');
      expect(action?.result).toBe('Success');
      expect(action?.events).toMatchObject([{ event: 'conductor_reset_state' }]);
      expect(action?.events[0]?.details).toContain('active → error');
      expect(await runResetState(instanceId, 'active')).toMatchObject({ vmState: 'active', taskState: null });
    });
  });

  it('refuses a deleted instance and an unknown one, changing nothing', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId } = await cloud.instances.create(seed({ vmState: 'deleted', host: null }));
      expect((await failureOfRun(runResetState(instanceId, 'active'))).type).toBe('InstanceInvalidState');
      expect((await cloud.instances.get(instanceId)).vmState).toBe('deleted');
      expect((await failureOfRun(runResetState(randomUUID(), 'active'))).type).toBe('InstanceNotFound');
    });
  });
});

/** An instance record written straight to the store (a state no workflow left behind). */
function seed(fields: { vmState: 'active' | 'deleted'; host: string | null }) {
  return {
    instanceId: randomUUID(),
    name: 'seeded',
    vmState: fields.vmState,
    taskState: null,
    powerState: fields.vmState === 'active' ? ('running' as const) : ('nostate' as const),
    host: fields.host,
    availabilityZone: AZ,
    flavor: 'm1.small',
    image: 'cirros',
    vcpus: 1,
    memoryMb: 2048,
    diskGb: 20,
    serverGroup: null,
  };
}
