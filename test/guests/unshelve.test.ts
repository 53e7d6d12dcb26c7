/**
 * Shelve-offload then unshelve onto another host with real QEMU guests, through the workflows (issue 27):
 * the allocation moves to the new host and the guest there boots from its own copy of the shelved disk
 * (the guest images count their boots on their disk: its first boot there is the old guest's second),
 * with no backing file on the shelved image, which is deleted. Two hosts, one guest alive at a time.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';

import type { FakeDriver } from '../../src/compute/fake';
import type { InstanceRecord } from '../../src/domain/instance';
import { shelvedImageName } from '../../src/domain/shelve';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import { GuestLab } from './helpers';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;
useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

const execute = (type: string, workflowId: string, input: object): Promise<InstanceRecord> =>
  env.client.workflow.execute(type, { taskQueue: CONDUCTOR_TASK_QUEUE, workflowId, args: [input] });

describe('QEMU guests: shelve-offload, then unshelve onto another host', () => {
  const lab = new GuestLab();
  // The image store is a directory of its own (the shared guest images linked in): the shelved image
  // never lands among the shared ones.
  const store = mkdtempSync(path.join(tmpdir(), 'image-store-'));
  for (const file of ['vmlinuz', 'initrd.gz', 'cirros.qcow2'])
    symlinkSync(path.join(inject('guestImageDir'), file), path.join(store, file));
  const hosts = ['ug-a', 'ug-b'];

  beforeAll(async () => {
    await cloud.addHosts(hosts.map((name) => ({ name, availabilityZone: 'ug' })));
    for (const host of hosts) cloud.drivers.set(host, lab.driver(host, { imageDir: store }) as unknown as FakeDriver);
  });
  afterEach(() => {
    expect(lab.qemuPids()).toEqual([]);
    expect(lab.leftovers()).toEqual([]);
  });
  afterAll(async () => {
    await lab.dispose();
    rmSync(store, { recursive: true, force: true });
  });

  it('moves the allocation and keeps the disk: the guest on the new host boots for the second time', async () => {
    const [a, b] = hosts as [string, string];
    const instanceId = '00000000-0000-4000-8000-0000000000a1';
    const timings = await cloud.run(hosts, async () => {
      await execute('buildInstance', workflowIds.buildInstance(instanceId), {
        instanceId,
        name: 'vm-unshelve',
        flavor: 'm1.tiny',
        image: 'cirros',
        availabilityZone: 'ug',
        host: a,
      });
      expect(lab.boots(instanceId)).toEqual([expect.stringMatching(/^GUEST-BOOT boot=1 /)]);
      const shelving = Date.now();
      const offloaded = await execute('shelve', workflowIds.shelve(instanceId, 'r1'), { instanceId });
      const shelveMs = Date.now() - shelving;
      expect(offloaded).toMatchObject({ vmState: 'shelved_offloaded', host: null });
      expect(await cloud.placement.getAllocations(instanceId)).toEqual([]);
      expect(existsSync(path.join(store, `${shelvedImageName(instanceId)}.qcow2`))).toBe(true);

      const unshelving = Date.now();
      const back = await execute('unshelve', workflowIds.unshelve(instanceId, 'r2'), { instanceId, host: b });
      const unshelveMs = Date.now() - unshelving;
      expect(back).toMatchObject({ vmState: 'active', powerState: 'running', host: b });
      expect([...new Set((await cloud.placement.getAllocations(instanceId)).map((x) => x.host))]).toEqual([b]);
      expect(lab.boots(instanceId)).toEqual([expect.stringMatching(/^GUEST-BOOT boot=2 /)]);
      // The guest's disk is its own: the shelved image is gone, and nothing backs on it.
      expect(existsSync(path.join(store, `${shelvedImageName(instanceId)}.qcow2`))).toBe(false);
      const disk = path.join(lab.instanceDir(instanceId), 'disk.qcow2');
      const info = JSON.parse(
        execFileSync('qemu-img', ['info', '-U', '--output=json', disk], { encoding: 'utf8' })
      ) as {
        'backing-filename'?: string;
      };
      expect(info['backing-filename']).toBeUndefined();

      await execute('deleteInstance', workflowIds.deleteInstance(instanceId, 'r3'), { instanceId });
      return { shelveMs, unshelveMs };
    });
    console.log(
      `shelve (offloaded at once) ${timings.shelveMs} ms, unshelve onto another host ${timings.unshelveMs} ms`
    );
  });
});
