/**
 * The reconciler's power-state sync (Nova's _sync_power_states) on the time-skipping server with the real
 * workers and the fake hypervisor: a guest that powered itself off (the fault file's `guestPowersOff`)
 * stops its instance, a guest running while its instance is stopped is powered off, a vanished guest's
 * power state is recorded as nostate (the instance left active, as Nova), paused and suspended instances
 * are not mismatches, an instance an operation holds is skipped, and a dry run changes nothing. Each
 * decision is an instance event (`conductor_sync_power_state`). After every test the placement audit is
 * clean (useTimeSkippingCloud) and every workflow the test started is closed.
 */
import { randomUUID } from 'node:crypto';

import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { POWER_SYNC_EVENT } from '../../src/domain/power-sync';
import type { ReconcileDecision } from '../../src/domain/reconcile';
import type { ReconcileInput } from '../../src/domain/schemas';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { pause } from '../../src/workflows/pause';
import type { reconcile } from '../../src/workflows/reconcile';
import type { stop } from '../../src/workflows/stop';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

const AZ = 'power-sync-az';
const started: WorkflowHandle[] = [];

let hosts: string[] = [];

beforeAll(async () => {
  hosts = await cloud.addHosts([{ name: 'ps-host-a', availabilityZone: AZ }]);
});

afterEach(async () => {
  for (const handle of started.splice(0))
    expect((await handle.describe()).status.name, handle.workflowId).not.toBe('RUNNING');
});

async function boot() {
  const handle = await cloud.startBuild(AZ);
  started.push(handle);
  const record = await handle.result();
  expect(record).toMatchObject({ vmState: 'active', powerState: 'running' });
  return { instanceId: record.instanceId, host: record.host! };
}

function startStop(instanceId: string) {
  return env.client.workflow
    .start<typeof stop>('stop', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: workflowIds.stop(instanceId, randomUUID()),
      args: [{ instanceId }],
    })
    .then((h) => (started.push(h), h));
}

async function runReconcile(input: ReconcileInput = {}) {
  const handle = await env.client.workflow.start<typeof reconcile>('reconcile', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: `reconcile-power-${randomUUID().slice(0, 8)}`,
    args: [input],
  });
  started.push(handle);
  return handle.result();
}

const syncOf = (decisions: ReconcileDecision[], instanceId: string) =>
  decisions.filter((d) => d.kind === 'power-state-sync' && d.subject === instanceId);

async function syncEvents(instanceId: string) {
  return (await cloud.instances.listActions(instanceId)).flatMap((a) =>
    a.events.filter((e) => e.event === POWER_SYNC_EVENT).map((e) => ({ action: a.action, result: e.result }))
  );
}

describe('power-state sync (reconcile)', () => {
  it('a guest that powered itself off stops its instance: stopped, a stop action with the sync event', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId, host } = await boot();
      await cloud.driver(host).setFaults({ guestPowersOff: [instanceId] });
      const { decisions } = await runReconcile();
      expect(syncOf(decisions, instanceId)).toMatchObject([{ outcome: 'applied', host }]);
      expect(syncOf(decisions, instanceId)[0]?.detail).toMatch(/stopped by itself/);
      expect(await cloud.instances.get(instanceId)).toMatchObject({
        vmState: 'stopped',
        powerState: 'shutdown',
        taskState: null,
      });
      expect(await syncEvents(instanceId)).toEqual([{ action: 'stop', result: 'Success' }]);
      expect(await cloud.driver(host).getPowerState({ instanceId })).toBe('shutdown');
      // Settled: the next pass has nothing to say about it.
      expect(syncOf((await runReconcile()).decisions, instanceId)).toEqual([]);
    });
  });

  it('a guest running while its instance is stopped is powered off; the instance stays stopped', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId, host } = await boot();
      await (await startStop(instanceId)).result();
      await cloud.driver(host).powerOn({ instanceId }); // behind the conductor's back
      const { decisions } = await runReconcile();
      expect(syncOf(decisions, instanceId)).toMatchObject([{ outcome: 'applied' }]);
      expect(syncOf(decisions, instanceId)[0]?.detail).toMatch(/runs while the instance is stopped/);
      expect(await cloud.driver(host).getPowerState({ instanceId })).toBe('shutdown');
      expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'stopped', powerState: 'shutdown' });
      expect(await syncEvents(instanceId)).toEqual([{ action: 'stop', result: 'Success' }]);
    });
  });

  it('a vanished guest: its power state recorded as nostate, the instance left active (Nova warns and ignores)', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId, host } = await boot();
      await cloud.driver(host).destroy({ instanceId }); // behind the conductor's back
      const { decisions } = await runReconcile();
      expect(syncOf(decisions, instanceId)).toMatchObject([{ outcome: 'applied' }]);
      expect(syncOf(decisions, instanceId)[0]?.detail).toMatch(/is gone \(nostate\)/);
      expect(await cloud.instances.get(instanceId)).toMatchObject({
        vmState: 'active',
        powerState: 'nostate',
        taskState: null,
      });
      expect(await syncEvents(instanceId)).toEqual([{ action: 'syncPowerState', result: 'Success' }]);
      expect(syncOf((await runReconcile()).decisions, instanceId)).toEqual([]);
    });
  });

  it('a paused instance is not a mismatch; nor an instance an operation holds (a stop mid-shutdown)', async () => {
    await cloud.run(hosts, async () => {
      const paused = await boot();
      const pauseHandle = await env.client.workflow.start<typeof pause>('pause', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: `pause-${paused.instanceId}-${randomUUID().slice(0, 8)}`,
        args: [{ instanceId: paused.instanceId }],
      });
      started.push(pauseHandle);
      await pauseHandle.result();

      const held = await boot();
      const gate = cloud.holdNext('requestShutdown');
      const stopping = await startStop(held.instanceId);
      await gate.reached;
      await cloud.driver(held.host).setFaults({ guestPowersOff: [held.instanceId] });
      const { decisions } = await runReconcile();
      expect(syncOf(decisions, paused.instanceId)).toEqual([]);
      expect(syncOf(decisions, held.instanceId)).toEqual([]);
      expect(await cloud.instances.get(held.instanceId)).toMatchObject({ taskState: 'powering-off' });
      gate.open();
      await stopping.result();
      expect(await cloud.instances.get(held.instanceId)).toMatchObject({ vmState: 'stopped', taskState: null });
      expect(await syncEvents(held.instanceId)).toEqual([]);
      expect(await cloud.instances.get(paused.instanceId)).toMatchObject({ vmState: 'paused', powerState: 'paused' });
    });
  });

  it('a dry run plans and changes nothing', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId, host } = await boot();
      await cloud.driver(host).setFaults({ guestPowersOff: [instanceId] });
      const { decisions } = await runReconcile({ dryRun: true });
      expect(syncOf(decisions, instanceId)).toMatchObject([{ outcome: 'planned' }]);
      expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'active', powerState: 'running' });
      expect(await syncEvents(instanceId)).toEqual([]);
      // The next real pass stops it.
      expect(syncOf((await runReconcile()).decisions, instanceId)).toMatchObject([{ outcome: 'applied' }]);
    });
  });
});
