/**
 * setHostService (`host disable|enable|down|up`): Nova's service disable and forced_down, as the
 * scheduler and evacuate see them at once. Every test ends with the placement audit clean (the file's
 * cloud) and no workflow it started still running.
 */
import { randomUUID } from 'node:crypto';

import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterEach, describe, expect, it } from 'vitest';

import type { SetHostServiceInput } from '../../src/domain/schemas';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import type { rebuild } from '../../src/workflows/rebuild';
import type { reconcileHost } from '../../src/workflows/reconcile-host';
import type { setHostService } from '../../src/workflows/set-host-service';
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
  { tag: 'hs' }
);

/** Every workflow a test started: none may still run when it ends. */
const handles: WorkflowHandle[] = [];
afterEach(async () => {
  const statuses = await Promise.all(handles.splice(0).map(async (h) => (await h.describe()).status.name));
  expect(statuses.filter((s) => s === 'RUNNING')).toEqual([]);
});

async function setService(input: SetHostServiceInput, hosts: readonly string[] = []) {
  const handle = await env.client.workflow.start<typeof setHostService>('setHostService', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.setHostService(String(input.host), randomUUID().slice(0, 8)),
    args: [input],
  });
  handles.push(handle);
  return cloud.run(hosts, () => handle.result());
}

async function build(az: string, hosts: readonly string[]) {
  const instanceId = randomUUID();
  const handle = await env.client.workflow.start<typeof buildInstance>('buildInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.buildInstance(instanceId),
    args: [
      { instanceId, name: `vm-${instanceId.slice(0, 8)}`, flavor: 'm1.small', image: 'cirros', availabilityZone: az },
    ],
  });
  handles.push(handle);
  return cloud.run(hosts, () =>
    handle.result().then(
      (record) => ({ record, error: undefined }),
      (error: unknown) => ({ record: undefined, error })
    )
  );
}

async function evacuate(instanceId: string, hosts: readonly string[]) {
  const handle = await env.client.workflow.start<typeof rebuild>('rebuild', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.evacuate(instanceId, randomUUID().slice(0, 8)),
    args: [{ instanceId, evacuate: true }],
  });
  handles.push(handle);
  return cloud.run(hosts, () =>
    handle.result().then(
      (record) => ({ record, error: undefined }),
      (error: unknown) => ({ record: undefined, error })
    )
  );
}

async function refused(input: unknown) {
  const error = await setService(input as SetHostServiceInput).then(
    () => undefined,
    (err: unknown) => err
  );
  return failureOf(error);
}

const hostRow = async (host: string) => (await cloud.placement.listHostStates(() => true)).find((h) => h.host === host);

describe('setHostService', () => {
  it('disable keeps new builds off the host (ComputeFilter) with its reason; enable takes them back', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    expect(await setService({ host: a, disabled: true, disabledReason: 'firmware upgrade' })).toMatchObject({
      host: a,
      known: true,
      enabled: false,
      disabledReason: 'firmware upgrade',
      forcedDown: false,
      up: true,
    });
    expect(await hostRow(a)).toMatchObject({ enabled: false, disabledReason: 'firmware upgrade' });
    // The best-ranked host is disabled: the build lands on the other one.
    expect((await build(az, hosts)).record).toMatchObject({ vmState: 'active', host: b });

    await setService({ host: b, disabled: true });
    const none = await build(az, hosts);
    const failure = failureOf(none.error);
    expect(failure.type).toBe('NoValidHost');
    expect(failure.message).toMatch(/^No valid host was found\. .*ComputeFilter/);

    expect(await setService({ host: a, disabled: false })).toMatchObject({ enabled: true, disabledReason: null });
    expect((await build(az, hosts)).record).toMatchObject({ vmState: 'active', host: a });
    await setService({ host: b, disabled: false });
  });

  it('down (forced) lets evacuate take an instance while its worker still runs; up refuses it again', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [a, b] = hosts;
    const { record } = await build(az, hosts);
    const instanceId = record!.instanceId;
    expect(record).toMatchObject({ host: a });

    // Its worker polls: evacuate is refused while the host is up.
    const inUse = await evacuate(instanceId, hosts);
    expect(failureOf(inUse.error)).toEqual({
      type: 'ComputeServiceInUse',
      message: expect.stringContaining(`Compute service of ${a} is still in use.`) as string,
    });

    expect(await setService({ host: a, forcedDown: true }, hosts)).toMatchObject({
      host: a,
      forcedDown: true,
      alive: true,
      up: false,
      reason: 'forced down',
      enabled: true,
    });
    // The scheduler sees it at once: nothing new goes to a forced-down host.
    const other = await build(az, hosts);
    expect(other.record).toMatchObject({ vmState: 'active', host: b });

    const evacuated = await evacuate(instanceId, hosts);
    expect(evacuated.error).toBeUndefined();
    expect(evacuated.record).toMatchObject({ vmState: 'active', taskState: null, host: b });

    expect(await setService({ host: a, forcedDown: false }, hosts)).toMatchObject({
      forcedDown: false,
      up: true,
      reason: 'up',
    });
    // Back up: the host's start-up reconciliation removes the evacuated guest and its source allocation.
    const reconcile = await env.client.workflow.start<typeof reconcileHost>('reconcileHost', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: `${workflowIds.reconcileHost(a)}-${randomUUID().slice(0, 8)}`,
      args: [{ host: a }],
    });
    handles.push(reconcile);
    expect((await cloud.run(hosts, () => reconcile.result())).cleaned.map((c) => c.instanceId)).toEqual([instanceId]);
    expect((await cloud.placement.getAllocations(instanceId)).map((x) => x.host)).toEqual([b]);
    expect(await cloud.driver(a).getGuest(instanceId)).toBeUndefined();

    // Up again, a second evacuation is refused as the first was.
    const again = await evacuate(instanceId, hosts);
    expect(failureOf(again.error)).toMatchObject({ type: 'ComputeServiceInUse' });
  });

  it('a host with no live worker reads down, not forced; asking without a change returns the state', async () => {
    const { hosts } = await cloud.zone(1);
    const [a] = hosts;
    cloud.liveness.down.add(a);
    try {
      expect(await setService({ host: a })).toMatchObject({
        host: a,
        known: true,
        up: false,
        alive: false,
        forcedDown: false,
        reason: 'no live compute worker',
      });
    } finally {
      cloud.liveness.down.delete(a);
    }
  });

  it('refuses an unknown host and bad input as InvalidRequest naming the field, changing nothing', async () => {
    const { hosts } = await cloud.zone(1);
    const before = await cloud.placement.listHostStates(() => true);
    expect(await refused({ host: 'no-such-host', disabled: true, forcedDown: true })).toEqual({
      type: 'InvalidRequest',
      message: "Invalid request: host: no compute host named 'no-such-host' is registered",
    });
    expect(await refused({ host: hosts[0], disabled: false, disabledReason: 'why' })).toEqual({
      type: 'InvalidRequest',
      message: 'Invalid request: disabledReason: a reason is given only to disable a host',
    });
    expect(await refused({ host: 'Not_A_Host', forcedDown: true })).toMatchObject({
      type: 'InvalidRequest',
      message: expect.stringMatching(/^Invalid request: host: /) as unknown,
    });
    expect(await refused({ host: hosts[0], forcedDown: 'yes' })).toMatchObject({
      type: 'InvalidRequest',
      message: expect.stringMatching(/^Invalid request: forcedDown: /) as unknown,
    });
    expect(await refused({ host: hosts[0], frozen: true })).toMatchObject({
      type: 'InvalidRequest',
      message: expect.stringMatching(/^Invalid request: frozen: /) as unknown,
    });
    expect(await cloud.placement.listHostStates(() => true)).toEqual(before);
  });
});
