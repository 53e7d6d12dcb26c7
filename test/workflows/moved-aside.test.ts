/**
 * The reconciler finds and cleans a resize's moved-aside guest (`<id>_resize`) left on the source after
 * its migration finished, and the guest of a deleted instance on any host: the source reports it as a
 * guest of an instance that lives elsewhere (the audit's `stray-guest`), its reconcileHost destroys it
 * (the driver's destroy removes the moved-aside copy too). Time-skipping server, real workers, the fake
 * hypervisor; the placement audit is clean after each test (useTimeSkippingCloud).
 */
import { randomUUID } from 'node:crypto';

import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { audit } from '../../src/domain/audit';
import { CONDUCTOR_TASK_QUEUE } from '../../src/shared/task-queues';
import type { reconcile } from '../../src/workflows/reconcile';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

const AZ = 'moved-aside-az';
const started: WorkflowHandle[] = [];
let hosts: string[] = [];

beforeAll(async () => {
  hosts = await cloud.addHosts([
    { name: 'ma-host-a', availabilityZone: AZ },
    { name: 'ma-host-b', availabilityZone: AZ, memoryMb: 16384 },
  ]);
});

afterEach(async () => {
  for (const handle of started.splice(0))
    expect((await handle.describe()).status.name, handle.workflowId).not.toBe('RUNNING');
});

async function boot() {
  const handle = await cloud.startBuild(AZ);
  started.push(handle);
  const record = await handle.result();
  return { instanceId: record.instanceId, host: record.host! };
}

async function runReconcile() {
  const handle = await env.client.workflow.start<typeof reconcile>('reconcile', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: `reconcile-aside-${randomUUID().slice(0, 8)}`,
    args: [{}],
  });
  started.push(handle);
  return handle.result();
}

/** The audit over the store and the hosts' guests (no workflow runs: every task owner is closed). */
async function auditNow() {
  const instances = await cloud.instances.list();
  const guests = new Map<string, string[]>();
  for (const h of hosts)
    guests.set(
      h,
      (await cloud.driver(h).listGuests()).map((g) => g.instanceId)
    );
  const migrations = (await Promise.all(instances.map((i) => cloud.instances.listMigrations(i.instanceId)))).flat();
  return audit({
    instances,
    allocations: [],
    migrations,
    migrationWorkflows: new Map(),
    workflowOpen: () => false,
    guests,
    overCapacity: [],
  }).filter((f) => f.kind === 'stray-guest' || f.kind === 'missing-guest');
}

describe('moved-aside and deleted instances’ guests (reconcile)', () => {
  it('a moved-aside guest left on another host after its instance settled is found and destroyed', async () => {
    await cloud.run(hosts, async () => {
      const { instanceId, host } = await boot();
      const other = hosts.find((h) => h !== host)!;
      // What a resize whose confirm never reached its source leaves there: the guest moved aside.
      const source = cloud.driver(other);
      await source.spawn({
        instanceId,
        name: 'vm',
        flavor: { name: 'm1.small', vcpus: 1, memoryMb: 2048, diskGb: 20 },
        image: { name: 'cirros', sizeGb: 0.02 },
      });
      await source.migrateDiskAndPowerOff(
        {
          instanceId,
          migrationId: `mig-${randomUUID()}`,
          newFlavor: { name: 'm1.medium', vcpus: 2, memoryMb: 4096, diskGb: 40 },
        },
        { shutdownTimeoutSeconds: 0 }
      );
      expect(await source.getResizeAsideGuest(instanceId)).toBeDefined();
      expect(await auditNow()).toEqual([
        expect.objectContaining({ kind: 'stray-guest', subject: instanceId, host: other }),
      ]);

      const { decisions } = await runReconcile();
      expect(decisions.find((d) => d.kind === 'host-reconciled' && d.subject === other)?.note).toContain(instanceId);
      expect(await source.getResizeAsideGuest(instanceId)).toBeUndefined();
      expect(await source.listGuests()).toEqual([]);
      expect(await cloud.driver(host).getPowerState({ instanceId })).toBe('running');
      expect(await auditNow()).toEqual([]);
    });
  });
});
