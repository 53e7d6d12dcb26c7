/**
 * Short compute steps on a host whose worker goes silent, on the dev server (the server the system runs
 * on): the time-skipping test server retries a heartbeat timeout whatever the retry policy says, the dev
 * server honours `TemporalTimeout:Heartbeat` as non-retryable. The in-process cloud of the workflow tests.
 */
import { randomUUID } from 'node:crypto';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { timestampMs } from '../../src/activities/scheduler/liveness';
import type { BuildInstanceInput } from '../../src/domain/schemas';
import { SHORT_STEP_HEARTBEAT_SECONDS } from '../../src/shared/activity-options';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import { TestCloud } from '../helpers/cloud';
import { createDevServerEnv } from '../helpers/temporal';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

beforeAll(async () => {
  env = await createDevServerEnv();
  cloud = await new TestCloud(env).open();
});
afterAll(async () => {
  await cloud?.close();
  await env?.teardown();
});
afterEach(async () => {
  expect(await cloud.placement.audit()).toEqual({ orphans: [], overCapacity: [] });
});

let zoneCounter = 0;
/** Two hosts in a zone of their own; the first ranks best (more free RAM), so it is chosen. */
async function twoHosts(): Promise<{ az: string; hosts: [string, string] }> {
  const az = `silent-az-${++zoneCounter}`;
  const hosts = await cloud.addHosts([
    { name: `silent${zoneCounter}-host-a`, availabilityZone: az, memoryMb: 65536 },
    { name: `silent${zoneCounter}-host-b`, availabilityZone: az, memoryMb: 32768 },
  ]);
  return { az, hosts: hosts as [string, string] };
}

/** Timeouts whose short-step heartbeat is SHORT_STEP_HEARTBEAT_SECONDS; start-to-close stays 60 s. */
const TIMEOUTS = { scheduleToStartSeconds: 60, heartbeatSeconds: 30, longStepSeconds: 60 };

async function startBuild(input: Omit<BuildInstanceInput, 'flavor' | 'image'>) {
  const instanceId = randomUUID();
  const handle = await env.client.workflow.start<typeof buildInstance>('buildInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.buildInstance(instanceId),
    args: [{ flavor: 'm1.small', image: 'cirros', timeouts: TIMEOUTS, ...input, instanceId }],
  });
  return { instanceId, handle };
}

describe('short compute steps on the dev server', () => {
  it('reschedules a build whose host went silent in a short step after one heartbeat timeout, not retrying it there', async () => {
    const { az, hosts } = await twoHosts();
    const [frozen, next] = hosts;
    const freeze = cloud.freezeHost(frozen);
    const { instanceId, record } = await cloud.run(hosts, async () => {
      const { instanceId, handle } = await startBuild({ name: 'vm-silent-dev', availabilityZone: az });
      return { instanceId, record: await handle.result() };
    });
    await freeze.reached;
    expect(record).toMatchObject({ vmState: 'active', taskState: null, host: next });
    expect((await cloud.placement.getAllocations(instanceId)).map((a) => a.host)).toEqual([next]);
    // One try on the silent host, then the guest's clean-up tried there (it gives up in seconds).
    expect(cloud.computeCalls.filter((c) => c.host === frozen).map((c) => c.activity)).toEqual([
      'allocateNetworks',
      'destroyInstance',
    ]);
    const first = (await cloud.instances.listActions(instanceId))
      .flatMap((a) => a.events)
      .filter((e) => e.attempt === 1);
    expect(first.map((e) => [e.event, e.host, e.result])).toEqual([['compute_allocate_networks', frozen, 'Error']]);
    expect(first[0]?.details).toMatch(/heartbeat timeout/i);
  });

  it('keeps a short step alive past its heartbeat timeout on a live worker, which heartbeats it', async () => {
    const { az, hosts } = await twoHosts();
    const [chosen] = hosts;
    const held = cloud.holdNext('allocateNetworks');
    const { instanceId, record } = await cloud.run(hosts, async () => {
      const { instanceId, handle } = await startBuild({ name: 'vm-slow-network', availabilityZone: az });
      await held.reached;
      const attempt = env.client.workflow.getHandle(workflowIds.placementAttempt(instanceId, 'build'));
      // Held until the server has seen heartbeats for longer than the step's heartbeat timeout.
      await vi.waitFor(
        async () => {
          const [pending] = (await attempt.describe()).raw.pendingActivities ?? [];
          expect(pending?.activityType?.name).toBe('allocateNetworks');
          const beating = timestampMs(pending?.lastHeartbeatTime) - timestampMs(pending?.lastStartedTime);
          expect(beating).toBeGreaterThan((SHORT_STEP_HEARTBEAT_SECONDS + 1) * 1000);
        },
        { timeout: 20_000, interval: 500 }
      );
      held.open();
      return { instanceId, record: await handle.result() };
    });
    expect(record).toMatchObject({ vmState: 'active', taskState: null, host: chosen });
    expect((await cloud.placement.getAllocations(instanceId)).map((a) => a.host)).toEqual([chosen]);
    expect(
      cloud.computeCalls.filter((c) => c.instanceId === instanceId && c.activity === 'allocateNetworks')
    ).toHaveLength(1);
  });
});
