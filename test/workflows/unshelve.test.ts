/**
 * unshelve (issue 27) on the time-skipping server with fake hosts: a shelved-offloaded instance placed
 * by the scheduler (to a requested host, to a requested zone), rescheduled to an alternate when its spawn
 * fails, back to shelved_offloaded holding nothing when every host failed or it is cancelled; refusals;
 * a shelved (not offloaded) instance powered on where it is. The shelved image goes once the guest runs.
 */
import { randomUUID } from 'node:crypto';

import type { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it, vi } from 'vitest';

import type { InstanceRecord } from '../../src/domain/instance';
import type { UnshelveInput } from '../../src/domain/shelve';
import { shelvedImageName } from '../../src/domain/shelve';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import { START_EVENT } from '../../src/workflows/start';
import { UNSHELVE_SELECT_EVENT } from '../../src/workflows/unshelve';
import { UNSHELVE_EVENT } from '../../src/workflows/unshelve/attempt';
import type { TestCloud, ZoneSize } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { failureOf } from '../helpers/failures';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

/** This file's zones (see TestCloud.zone). */
const zone = <N extends ZoneSize>(count: N, spawnSeconds = 0.2) => cloud.zone(count, { tag: 'us', spawnSeconds });

function runType(type: string, input: object): Promise<{ record?: InstanceRecord; error?: unknown }> {
  const instanceId = (input as { instanceId: string }).instanceId;
  return env.client.workflow
    .execute(type, {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: `${type}-${instanceId}-${randomUUID()}`,
      args: [input],
    })
    .then(
      (record) => ({ record: record as InstanceRecord }),
      (error: unknown) => ({ error })
    );
}

function startUnshelve(input: UnshelveInput) {
  return env.client.workflow.start('unshelve', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.unshelve(String(input.instanceId), randomUUID()),
    args: [input],
  });
}

const unshelve = (input: UnshelveInput) => runType('unshelve', input);

/** An instance built in `az` (on `host` when given), then shelved (offloaded unless `offloadAfter`). */
async function shelved(hosts: string[], az: string, host?: string, offloadAfter = 0): Promise<InstanceRecord> {
  const instanceId = randomUUID();
  return cloud.run(hosts, async () => {
    await cloud.boot(az, { instanceId, ...(host ? { host } : {}) });
    const { record } = await runType('shelve', {
      instanceId,
      shutdownTimeoutSeconds: 0,
      shelvedOffloadTimeSeconds: offloadAfter === 0 ? 0 : -1,
    });
    return record!;
  });
}

const imageOf = async (instanceId: string) =>
  (await cloud.instances.listImages()).filter((i) => i.name === shelvedImageName(instanceId)).map((i) => i.status);

async function eventsOf(instanceId: string, action: string) {
  const found = (await cloud.instances.listActions(instanceId)).filter((a) => a.action === action).at(-1);
  return (found?.events ?? []).map((e) => [e.event, e.host, e.result]);
}

const allocationHosts = async (instanceId: string) =>
  [...new Set((await cloud.placement.getAllocations(instanceId)).map((a) => a.host))].sort();

async function guestsOn(hosts: string[], instanceId: string): Promise<string[]> {
  const on: string[] = [];
  for (const host of hosts) if (await cloud.driver(host).getGuest(instanceId)) on.push(host);
  return on;
}

describe('unshelve of a shelved_offloaded instance', () => {
  it('goes to a requested host: active and running there, its allocation there, its shelved image deleted', async () => {
    const { az, hosts } = await zone(2);
    const [a, b] = hosts;
    const vm = await shelved(hosts, az, a);
    expect(vm).toMatchObject({ vmState: 'shelved_offloaded', host: null });

    const { record, error } = await cloud.run(hosts, () => unshelve({ instanceId: vm.instanceId, host: b }));
    expect(error).toBeUndefined();
    expect(record).toMatchObject({
      vmState: 'active',
      powerState: 'running',
      taskState: null,
      host: b,
      availabilityZone: az,
    });
    expect(await allocationHosts(vm.instanceId)).toEqual([b]);
    expect(await guestsOn(hosts, vm.instanceId)).toEqual([b]);
    expect((await cloud.driver(b).getGuest(vm.instanceId))?.image.name).toBe(shelvedImageName(vm.instanceId));
    expect(await imageOf(vm.instanceId)).toEqual(['deleted']);
    // The instance keeps its own image; only the guest's disk came from the shelved one.
    expect((await cloud.instances.get(vm.instanceId)).image).toBe('cirros');
    expect(await eventsOf(vm.instanceId, 'unshelve')).toEqual([
      [UNSHELVE_SELECT_EVENT, b, 'Success'],
      [UNSHELVE_EVENT, b, 'Success'],
    ]);
    expect((await cloud.instances.listActions(vm.instanceId)).map((x) => [x.action, x.result]).at(-1)).toEqual([
      'unshelve',
      'Success',
    ]);
  });

  it('goes to a requested availability zone (its zone updated); a host outside the zone asked is NoValidHost', async () => {
    const first = await zone(1);
    const second = await zone(1);
    const all = [...first.hosts, ...second.hosts];
    const vm = await shelved(all, first.az);
    const wrong = await cloud.run(all, () =>
      unshelve({ instanceId: vm.instanceId, availabilityZone: second.az, host: first.hosts[0] })
    );
    expect(failureOf(wrong.error).type).toBe('NoValidHost');
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'shelved_offloaded',
      taskState: null,
      host: null,
    });
    expect(await cloud.placement.getAllocations(vm.instanceId)).toEqual([]);

    const { record } = await cloud.run(all, () => unshelve({ instanceId: vm.instanceId, availabilityZone: second.az }));
    expect(record).toMatchObject({ vmState: 'active', host: second.hosts[0], availabilityZone: second.az });
    expect(await allocationHosts(vm.instanceId)).toEqual([second.hosts[0]]);
  });

  it('reschedules to an alternate when the spawn fails: the failed host holds nothing', async () => {
    const { az, hosts } = await zone(2);
    const vm = await shelved(hosts, az);
    const gate = cloud.holdNext('spawnInstance');
    const { record, first } = await cloud.run(hosts, async () => {
      const running = unshelve({ instanceId: vm.instanceId });
      await gate.reached;
      // The first host chosen fails its spawn.
      const failing = cloud.computeCalls.filter((c) => c.activity === 'spawnInstance').at(-1)!.host;
      await cloud.driver(failing).setFaults({ spawn: { failNext: 1 } });
      gate.open();
      return { ...(await running), first: failing };
    });
    const second = hosts.find((h) => h !== first)!;
    expect(record).toMatchObject({ vmState: 'active', host: second });
    expect(await allocationHosts(vm.instanceId)).toEqual([second]);
    expect(await guestsOn(hosts, vm.instanceId)).toEqual([second]);
    expect(await eventsOf(vm.instanceId, 'unshelve')).toEqual([
      [UNSHELVE_SELECT_EVENT, first, 'Success'],
      [UNSHELVE_EVENT, first, 'Error'],
      ['conductor_claim_alternate', second, 'Success'],
      [UNSHELVE_EVENT, second, 'Success'],
    ]);
    expect(await imageOf(vm.instanceId)).toEqual(['deleted']);
  });

  it('when every host fails: MaxRetriesExceeded, shelved_offloaded again with the fault, nothing claimed, no guest, its image kept', async () => {
    const { az, hosts } = await zone(2);
    const vm = await shelved(hosts, az);
    for (const host of hosts) await cloud.driver(host).setFaults({ spawn: { failNext: 1 } });
    const { error } = await cloud.run(hosts, () => unshelve({ instanceId: vm.instanceId }));
    expect(failureOf(error)).toEqual({
      type: 'MaxRetriesExceeded',
      message: `Exceeded maximum number of retries. Exhausted all hosts available for unshelving instance ${vm.instanceId}. Hosts tried: ${hosts.join(', ')}.`,
    });
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'shelved_offloaded',
      taskState: null,
      powerState: 'nostate',
      host: null,
    });
    expect(await cloud.placement.getAllocations(vm.instanceId)).toEqual([]);
    expect(await guestsOn(hosts, vm.instanceId)).toEqual([]);
    expect(await imageOf(vm.instanceId)).toEqual(['active']);
    expect((await cloud.instances.listFaults(vm.instanceId)).at(-1)?.message).toContain(
      'Exceeded maximum number of retries'
    );
    // It can be unshelved again later.
    const again = await cloud.run(hosts, () => unshelve({ instanceId: vm.instanceId }));
    expect(again.record).toMatchObject({ vmState: 'active', taskState: null });
  });

  it('a cancellation during the spawn rolls back: the half-made guest destroyed, the claim released, offloaded again (499)', async () => {
    const { az, hosts } = await zone(1, 30);
    const [host] = hosts;
    const vm = await shelved(hosts, az);
    const outcome = await cloud.run(hosts, async () => {
      const handle = await startUnshelve({ instanceId: vm.instanceId });
      await vi.waitFor(async () => expect(await cloud.driver(host).getGuest(vm.instanceId)).toBeDefined(), {
        timeout: 20_000,
        interval: 100,
      });
      await handle.cancel();
      return handle.result().then(
        () => undefined,
        (e: unknown) => e
      );
    });
    expect(((outcome as WorkflowFailedError).cause as { name?: string }).name).toBe('CancelledFailure');
    expect(await cloud.instances.get(vm.instanceId)).toMatchObject({
      vmState: 'shelved_offloaded',
      taskState: null,
      taskOwner: null,
      host: null,
    });
    expect(await cloud.placement.getAllocations(vm.instanceId)).toEqual([]);
    expect(await cloud.driver(host).listGuests()).toEqual([]);
    expect(await imageOf(vm.instanceId)).toEqual(['active']);
    expect((await cloud.instances.listFaults(vm.instanceId)).map((f) => [f.code, f.message]).at(-1)).toEqual([
      499,
      'unshelve cancelled by the user',
    ]);
  });
});

describe('unshelve refusals and a shelved instance', () => {
  it('refuses an active instance, and one a shelve holds, changing nothing (InstanceInvalidState)', async () => {
    const { az, hosts } = await zone(1);
    const [host] = hosts;
    const instanceId = randomUUID();
    await cloud.run(hosts, () =>
      env.client.workflow.execute('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.buildInstance(instanceId),
        args: [{ name: 'vm-unshelve-refuse', flavor: 'm1.small', image: 'cirros', availabilityZone: az, instanceId }],
      })
    );
    const active = await cloud.run(hosts, () => unshelve({ instanceId }));
    expect(failureOf(active.error)).toEqual({
      type: 'InstanceInvalidState',
      message: `Cannot 'unshelve' instance ${instanceId} while it is in vmState active`,
    });

    const gate = cloud.holdNext('snapshotInstance');
    const during = await cloud.run(hosts, async () => {
      const shelving = runType('shelve', { instanceId, shutdownTimeoutSeconds: 0 });
      await gate.reached;
      const refused = await unshelve({ instanceId });
      gate.open();
      return { refused, shelve: await shelving };
    });
    // The shelve the refusal met went on to its end: shelved, then offloaded at once.
    expect(during.shelve.error).toBeUndefined();
    expect(during.shelve.record).toMatchObject({ vmState: 'shelved_offloaded', host: null });
    expect(failureOf(during.refused.error).type).toBe('InstanceInvalidState');
    expect(failureOf(during.refused.error).message).toContain('shelving_image_uploading');
    expect((await cloud.instances.listActions(instanceId)).map((a) => a.action)).toEqual([
      'create',
      'shelve',
      'shelveOffload',
    ]);
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'shelved_offloaded', host: null });
    expect(await cloud.driver(host).getGuest(instanceId)).toBeUndefined();
  });

  it('powers a shelved (not offloaded) instance on where it is, its image deleted; a zone or host for it is refused', async () => {
    const { az, hosts } = await zone(2);
    const [a, b] = hosts;
    const vm = await shelved(hosts, az, a, -1);
    expect(vm).toMatchObject({ vmState: 'shelved', host: a });
    const claim = await cloud.placement.getAllocations(vm.instanceId);

    const moved = await cloud.run(hosts, () => unshelve({ instanceId: vm.instanceId, host: b }));
    expect(failureOf(moved.error).type).toBe('InstanceInvalidState');
    expect(failureOf(moved.error).message).toContain('only a shelved_offloaded instance');

    const { record } = await cloud.run(hosts, () => unshelve({ instanceId: vm.instanceId }));
    expect(record).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null, host: a });
    expect(await cloud.placement.getAllocations(vm.instanceId)).toEqual(claim);
    expect(await cloud.driver(a).getGuest(vm.instanceId)).toMatchObject({ powerState: 'running', boots: 2 });
    expect(await imageOf(vm.instanceId)).toEqual(['deleted']);
    expect(await cloud.driver(a).listSnapshots()).toEqual({});
    expect(await eventsOf(vm.instanceId, 'unshelve')).toEqual([[START_EVENT, a, 'Success']]);
  });
});
