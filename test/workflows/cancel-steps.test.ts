/**
 * Cancelling an operation at each kind of step it runs leaves a stable state: the task state cleared,
 * nothing allocated that no instance holds, no guest left for an instance that does not live there.
 * Each step is held at a gate in front of its compute activity (the activity was sent to the host and
 * is running there), the operation is cancelled, then the step goes on. After every test the placement
 * audit is clean (useTimeSkippingCloud).
 */
import { randomUUID } from 'node:crypto';

import type { WorkflowHandle } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it, vi } from 'vitest';

import type { ComputeActivities } from '../../src/activities/compute';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import type { resizeMigrate } from '../../src/workflows/resize-migrate';
import type { TestCloud } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;

useTimeSkippingCloud(
  (e, c) => {
    env = e;
    cloud = c;
  },
  { tag: 'cx' }
);

/** Holds `step`, starts the operation, cancels it once the step is on the host, lets the step go on. */
async function cancelAt(step: keyof ComputeActivities, start: () => Promise<WorkflowHandle>): Promise<unknown> {
  const gate = cloud.holdNext(step);
  const handle = await start();
  // The operation reaches the step, or ends without it: then the test fails saying how, not by its
  // timeout. Its status is polled (describe): waiting on its result would let the test server skip time.
  let reached = false;
  void gate.reached.then(() => (reached = true));
  const ended = await vi.waitFor(
    async () => {
      if (reached) return undefined;
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING') return status.name;
      throw new Error(`the operation has not reached ${step}`);
    },
    { timeout: 45_000, interval: 100 }
  );
  if (ended) throw new Error(`the operation ended ${ended} before ${step}`);
  await handle.cancel();
  gate.open();
  await gate.done;
  return handle.result().then(
    () => undefined,
    (err: unknown) => err
  );
}

function expectCancelled(error: unknown): void {
  expect(error).toBeInstanceOf(WorkflowFailedError);
  expect(((error as WorkflowFailedError).cause as { name?: string } | undefined)?.name).toBe('CancelledFailure');
}

const guestsOf = async (host: string) => (await cloud.driver(host).listGuests()).map((g) => g.instanceId);

describe('cancelling at each step', () => {
  // Cancelling during a short compute step (allocateNetworks, rebuildPrepare) or during finishResize
  // leaves the workflow task unanswered on the time-skipping server, before this kernel too: not covered
  // here until that is understood (see the closing note of the kernel issue).
  it.each(['spawnInstance'] as const)(
    'a build cancelled at %s (as the spawn completes) ends deleted, holding nothing, with no guest',
    async (step) => {
      const { az, hosts } = await cloud.zone(2);
      const instanceId = randomUUID();
      const error = await cloud.run(hosts, () =>
        cancelAt(step, () =>
          env.client.workflow.start<typeof buildInstance>('buildInstance', {
            taskQueue: CONDUCTOR_TASK_QUEUE,
            workflowId: workflowIds.buildInstance(instanceId),
            args: [{ instanceId, name: 'vm-cancel', flavor: 'm1.small', image: 'cirros', availabilityZone: az }],
          })
        )
      );
      expectCancelled(error);
      expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'deleted', taskState: null });
      expect(await cloud.placement.getAllocations(instanceId)).toEqual([]);
      for (const host of hosts) expect(await guestsOf(host)).not.toContain(instanceId);
    }
  );

  it('a build cancelled while the scheduler selects (and claims) ends deleted, with no fault and nothing claimed', async () => {
    const { az, hosts } = await cloud.zone(2);
    const instanceId = randomUUID();
    const error = await cloud.run(hosts, async () => {
      const gate = cloud.holdNext('selectDestinations');
      const handle = await env.client.workflow.start<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.buildInstance(instanceId),
        args: [{ instanceId, name: 'vm-cancel', flavor: 'm1.small', image: 'cirros', availabilityZone: az }],
      });
      await gate.reached;
      await handle.cancel();
      // The selection (made by the placement attempt) answers only once the attempt knows it is cancelled.
      await cloud.cancelRequestSeen(workflowIds.placementAttempt(instanceId, 'build'));
      gate.open();
      return handle.result().then(
        () => undefined,
        (err: unknown) => err
      );
    });
    expectCancelled(error);
    expect(await cloud.instances.get(instanceId)).toMatchObject({ vmState: 'deleted', taskState: null, host: null });
    expect((await cloud.instances.listFaults(instanceId)).map((f) => [f.code, f.message])).toEqual([
      [499, 'Build cancelled by the user'],
    ]);
    // The claim the selection made as the build was cancelled was released after it, not before.
    expect(await cloud.placement.getAllocations(instanceId)).toEqual([]);
    expect(cloud.computeCalls.filter((c) => c.instanceId === instanceId)).toEqual([]);
  });

  it.each(['prepResize', 'resizeInstance'] as const)(
    'a resize cancelled at %s is back on its source: old flavor, its allocation and guest there only',
    async (step) => {
      const { az, hosts } = await cloud.zone(2);
      const [source, dest] = hosts;
      const outcome = await cloud.run(hosts, async () => {
        const { instanceId } = await cloud.boot(az);
        const err = await cancelAt(step, () =>
          env.client.workflow.start<typeof resizeMigrate>('resizeMigrate', {
            taskQueue: CONDUCTOR_TASK_QUEUE,
            workflowId: workflowIds.resizeMigrate(instanceId, randomUUID().slice(0, 8)),
            args: [{ instanceId, flavor: 'm1.medium' }],
          })
        );
        return { err, instanceId };
      });
      expectCancelled(outcome.err);
      const { instanceId } = outcome;
      expect(await cloud.instances.get(instanceId)).toMatchObject({
        vmState: 'active',
        taskState: null,
        host: source,
        flavor: 'm1.small',
        powerState: 'running',
      });
      expect((await cloud.placement.getAllocations(instanceId)).map((a) => a.host)).toEqual([source]);
      expect(await guestsOf(source)).toContain(instanceId);
      expect(await guestsOf(dest)).not.toContain(instanceId);
      const migrations = await cloud.instances.listMigrations(instanceId);
      expect(migrations.map((m) => m.status)).toEqual(['error']);
    }
  );
});
