/**
 * liveMigrate on the time-skipping server with real workers: a copy that converges, one that never does
 * (aborted by the completion timeout), an operator's abort and force-complete, a destination that fails
 * its pre-checks (the alternate is used), every destination failing, a destination dying mid-copy, a
 * failure after the switch-over, the lock refusing other operations meanwhile, the Updates refused
 * outside the migration statuses Nova allows them in, an abort while the destination is prepared, and
 * the late server-group check on the destination, a source that is down. Every test ends with
 * the workflows closed and the placement audit clean (useTimeSkippingCloud).
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';

import type { WorkflowHandle } from '@temporalio/client';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it, vi } from 'vitest';

import { FakeDriver } from '../../src/compute/fake';
import type { LiveMigrationOptions, LiveMigrationRequest } from '../../src/compute/driver';
import type { Faults } from '../../src/compute/fake';
import type { LiveMigrateInput } from '../../src/domain/schemas';
import { abortLiveMigrationUpdate, forceCompleteUpdate } from '../../src/shared/messages';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import { GROUP_CHECK_EVENT } from '../../src/workflows/build/attempt';
import { LIVE_EVENTS } from '../../src/workflows/live-migrate';
import type { liveMigrate } from '../../src/workflows/live-migrate';
import type { resizeMigrate } from '../../src/workflows/resize-migrate';
import type { serverGroup } from '../../src/workflows/server-group';
import type { stop } from '../../src/workflows/stop';
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
  { tag: 'lm' }
);

function startLive(input: LiveMigrateInput): Promise<WorkflowHandle<typeof liveMigrate>> {
  return env.client.workflow.start<typeof liveMigrate>('liveMigrate', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.liveMigrate(input.instanceId, randomUUID().slice(0, 8)),
    args: [input],
  });
}

const setFaults = (host: string, faults: Faults) => cloud.driver(host).setFaults(faults);
const guestsOf = async (host: string) => cloud.driver(host).listRecords();

/** Resolves once the source's memory copy is running (the liveMigration activity is pending). */
async function copying(handle: WorkflowHandle): Promise<void> {
  await vi.waitFor(
    async () =>
      expect(
        (await handle.describe()).raw.pendingActivities?.some(
          (a) => a.activityType?.name === 'liveMigration' && a.attempt === 1 && a.lastStartedTime
        )
      ).toBe(true),
    { timeout: 20_000, interval: 50 }
  );
}

/** Where the instance's allocations are, by host, and that its migrations hold none. */
async function allocationHosts(instanceId: string): Promise<string[]> {
  for (const m of await cloud.instances.listMigrations(instanceId))
    expect(await cloud.placement.getAllocations(m.id)).toEqual([]);
  return [...new Set((await cloud.placement.getAllocations(instanceId)).map((a) => a.host))];
}

/** Back on its source as it was: active, running, its guest running there only, its allocation there only. */
async function expectOnSource(instanceId: string, source: string, others: string[]): Promise<void> {
  expect(await cloud.instances.get(instanceId)).toMatchObject({
    vmState: 'active',
    taskState: null,
    host: source,
    powerState: 'running',
  });
  expect((await guestsOf(source)).find((g) => g.instanceId === instanceId)).toMatchObject({
    powerState: 'running',
    status: 'active',
  });
  for (const h of others) expect((await guestsOf(h)).map((g) => g.instanceId)).not.toContain(instanceId);
  expect(await allocationHosts(instanceId)).toEqual([source]);
}

describe('liveMigrate', () => {
  it('converges: the instance runs on the destination, one guest, its allocation there only, the downtime recorded', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const result = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      expect(vm.host).toBe(source);
      return (await startLive({ instanceId: vm.instanceId })).result();
    });
    expect(result).toMatchObject({ vmState: 'active', taskState: null, host: dest, powerState: 'running' });
    expect(result.liveMigration.migration).toMatchObject({
      migrationType: 'live-migration',
      status: 'completed',
      sourceHost: source,
      destHost: dest,
    });
    expect(result.liveMigration.downtimeMs).toBeGreaterThan(0);
    expect(result.liveMigration.downtimeMs).toBeLessThanOrEqual(500);
    // The switch-over pause is the migration's downtime, in its record.
    expect((await cloud.instances.listMigrations(result.instanceId))[0]?.downtimeMs).toBe(
      result.liveMigration.downtimeMs
    );
    expect(result.liveMigration.migration.downtimeMs).toBe(result.liveMigration.downtimeMs);
    expect(result.liveMigration.rounds).toBeGreaterThanOrEqual(2);
    expect((await guestsOf(source)).map((g) => g.instanceId)).not.toContain(result.instanceId);
    expect((await guestsOf(dest)).filter((g) => g.instanceId === result.instanceId)).toMatchObject([
      { status: 'active', powerState: 'running' },
    ]);
    expect(await allocationHosts(result.instanceId)).toEqual([dest]);
    const action = (await cloud.instances.listActions(result.instanceId)).find((a) => a.action === 'live-migration');
    expect(action?.result).toBe('Success');
    expect(action?.events.map((e) => e.event)).toEqual(
      expect.arrayContaining([
        LIVE_EVENTS.select,
        'compute_check_can_live_migrate_source',
        'compute_check_can_live_migrate_destination',
        LIVE_EVENTS.pre,
        LIVE_EVENTS.copy,
        LIVE_EVENTS.postDest,
        LIVE_EVENTS.postSource,
      ])
    );
  });

  it('never converges (pages dirtied faster than copied): aborted by the completion timeout, back on the source', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      await setFaults(source, { liveMigration: { bandwidthMbPerSecond: 4096, dirtyMbPerSecond: 8192 } });
      const err = await (
        await startLive({ instanceId: vm.instanceId, completionTimeoutSecondsPerGb: 1 })
      )
        .result()
        .catch((e: unknown) => e);
      return { vm, err };
    });
    expect(failureOf(outcome.err)).toMatchObject({ type: 'LiveMigrationAborted' });
    expect(failureOf(outcome.err).message).toMatch(/not converged within the completion timeout/);
    await expectOnSource(outcome.vm.instanceId, source, [dest]);
    const [migration] = await cloud.instances.listMigrations(outcome.vm.instanceId);
    expect(migration?.status).toBe('cancelled');
  });

  it('abortLiveMigration mid-copy: the copy stops, the destination is cleaned, the guest keeps running on the source', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      await setFaults(source, { liveMigration: { bandwidthMbPerSecond: 1024, dirtyMbPerSecond: 2048 } });
      const handle = await startLive({ instanceId: vm.instanceId });
      await copying(handle);
      // The guest still runs on the source while the memory is copied.
      expect((await guestsOf(source)).find((g) => g.instanceId === vm.instanceId)?.powerState).toBe('running');
      expect(await handle.executeUpdate(abortLiveMigrationUpdate)).toEqual({ aborted: true });
      return { vm, err: await handle.result().catch((e: unknown) => e) };
    });
    expect(failureOf(outcome.err)).toMatchObject({ type: 'LiveMigrationAborted' });
    expect(failureOf(outcome.err).message).toMatch(/by the operator/);
    await expectOnSource(outcome.vm.instanceId, source, [dest]);
    expect((await cloud.instances.get(outcome.vm.instanceId)).taskState).toBeNull();
  });

  it('abortLiveMigration that reaches a copy already switched over answers aborted: false, and the migration completes', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    // The source's copy does not see the cancel in time: it switches over anyway (QEMU's copy may finish
    // between the abort and migrate_cancel).
    class SwitchesOverRegardless extends FakeDriver {
      override liveMigration(request: LiveMigrationRequest, options: LiveMigrationOptions) {
        return super.liveMigration(request, { ...options, signal: new AbortController().signal });
      }
    }
    cloud.drivers.set(
      source,
      new SwitchesOverRegardless({ host: source, stateDir: path.join(cloud.dataDir, 'compute'), spawnSeconds: 0.2 })
    );
    const result = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      // Converges in a few rounds of about a second.
      await setFaults(source, { liveMigration: { bandwidthMbPerSecond: 256, dirtyMbPerSecond: 64 } });
      const handle = await startLive({ instanceId: vm.instanceId });
      await copying(handle);
      expect(await handle.executeUpdate(abortLiveMigrationUpdate)).toEqual({ aborted: false });
      return handle.result();
    });
    expect(result).toMatchObject({ host: dest, vmState: 'active', powerState: 'running', taskState: null });
    expect(await allocationHosts(result.instanceId)).toEqual([dest]);
    expect((await guestsOf(source)).map((g) => g.instanceId)).not.toContain(result.instanceId);
    const [migration] = await cloud.instances.listMigrations(result.instanceId);
    expect(migration?.status).toBe('completed');
  });

  it('forceComplete: the guest is paused so the copy converges, and the migration completes', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const result = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      await setFaults(source, { liveMigration: { bandwidthMbPerSecond: 1024, dirtyMbPerSecond: 2048 } });
      const handle = await startLive({ instanceId: vm.instanceId });
      await copying(handle);
      expect(await handle.executeUpdate(forceCompleteUpdate)).toEqual({ forced: true });
      return handle.result();
    });
    expect(result).toMatchObject({ host: dest, vmState: 'active', powerState: 'running' });
    expect(result.liveMigration.forced).toBe(true);
    expect(await allocationHosts(result.instanceId)).toEqual([dest]);
    expect((await guestsOf(source)).map((g) => g.instanceId)).not.toContain(result.instanceId);
  });

  it('a destination whose CPU lacks a feature of the source fails its pre-check: the alternate is used', async () => {
    const avx = { architecture: 'x86_64', traits: ['HW_CPU_X86_AVX2'] };
    const { az, hosts } = await cloud.zone(3, { cpus: [avx, { architecture: 'x86_64', traits: [] }, avx] });
    const [source, lacking, alternate] = hosts;
    const result = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      return (await startLive({ instanceId: vm.instanceId })).result();
    });
    expect(result.host).toBe(alternate);
    expect((await guestsOf(lacking)).map((g) => g.instanceId)).not.toContain(result.instanceId);
    expect((await guestsOf(source)).map((g) => g.instanceId)).not.toContain(result.instanceId);
    expect(await allocationHosts(result.instanceId)).toEqual([alternate]);
    const events = (await cloud.instances.listActions(result.instanceId))
      .find((a) => a.action === 'live-migration')
      ?.events.filter((e) => e.event === 'compute_check_can_live_migrate_destination');
    expect(events?.map((e) => [e.host, e.result])).toEqual([
      [lacking, 'Error'],
      [alternate, 'Success'],
    ]);
    expect(events?.[0]?.details).toMatch(/lacks HW_CPU_X86_AVX2/);
  });

  it('every destination failing its pre-check leaves the instance as it was, with a fault: MigrationPreCheckError', async () => {
    const { az, hosts } = await cloud.zone(3);
    const [source, b, c] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      await setFaults(b, { liveMigration: { checkDestinationFailNext: 1 } });
      await setFaults(c, { liveMigration: { checkDestinationFailNext: 1 } });
      return { vm, err: await (await startLive({ instanceId: vm.instanceId })).result().catch((e: unknown) => e) };
    });
    expect(failureOf(outcome.err)).toMatchObject({ type: 'MigrationPreCheckError' });
    expect(failureOf(outcome.err).message).toMatch(new RegExp(`hosts tried: ${b}, ${c}`));
    await expectOnSource(outcome.vm.instanceId, source, [b, c]);
    const faults = await cloud.instances.listFaults(outcome.vm.instanceId);
    expect(faults.at(-1)?.message).toMatch(/Migration pre-check error/);
    expect((await cloud.instances.listMigrations(outcome.vm.instanceId))[0]?.status).toBe('error');
  });

  it('a destination that dies mid-copy (its heartbeat times out) rolls back to the source', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      await setFaults(source, { liveMigration: { bandwidthMbPerSecond: 1024, dirtyMbPerSecond: 2048 } });
      await setFaults(dest, { liveMigration: { receiveHangNext: 1 } });
      const handle = await startLive({
        instanceId: vm.instanceId,
        timeouts: { scheduleToStartSeconds: 60, heartbeatSeconds: 2, longStepSeconds: 600 },
      });
      return { vm, err: await handle.result().catch((e: unknown) => e) };
    });
    expect(failureOf(outcome.err)).toMatchObject({ type: 'MigrationError' });
    expect(failureOf(outcome.err).message).toMatch(
      new RegExp(`destination ${dest} stopped answering during the copy \\(HEARTBEAT timeout\\)`)
    );
    await expectOnSource(outcome.vm.instanceId, source, [dest]);
  });

  it('a failure after the switch-over: error on the destination, its allocation there only, no guest running twice, the source guest removed', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      await setFaults(dest, { liveMigration: { postFailNext: 1 } });
      return { vm, err: await (await startLive({ instanceId: vm.instanceId })).result().catch((e: unknown) => e) };
    });
    expect(failureOf(outcome.err)).toMatchObject({ type: 'MigrationError' });
    expect(await cloud.instances.get(outcome.vm.instanceId)).toMatchObject({
      vmState: 'error',
      host: dest,
      taskState: null,
    });
    expect(await allocationHosts(outcome.vm.instanceId)).toEqual([dest]);
    const running = [...(await guestsOf(source)), ...(await guestsOf(dest))].filter(
      (g) => g.instanceId === outcome.vm.instanceId && g.powerState === 'running'
    );
    expect(running).toEqual([]);
    // The source's paused guest is removed all the same (Nova's _post_live_migration cleans the source).
    expect((await guestsOf(source)).map((g) => g.instanceId)).not.toContain(outcome.vm.instanceId);
    // Clean up the guest the failure left on the destination (the reconciler's job on a real cloud).
    await cloud.driver(dest).destroy({ instanceId: outcome.vm.instanceId });
    await cloud.placement.releaseConsumer(outcome.vm.instanceId);
  });

  it('abortLiveMigration and forceComplete during the pre-checks (migration accepted) are refused with InvalidMigrationState; the migration goes on', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const gate = cloud.holdNext('checkCanLiveMigrateDestination');
      const handle = await startLive({ instanceId: vm.instanceId });
      await gate.reached;
      const refused = await handle.executeUpdate(abortLiveMigrationUpdate).catch((e: unknown) => e);
      const refusedForce = await handle.executeUpdate(forceCompleteUpdate).catch((e: unknown) => e);
      gate.open();
      return { vm, refused, refusedForce, record: await handle.result() };
    });
    // Nova: abort is allowed while the migration is queued, preparing or running (2.65), force-complete
    // while running; otherwise InvalidMigrationState (400).
    for (const [refused, method] of [
      [outcome.refused, 'abortLiveMigration'],
      [outcome.refusedForce, 'forceComplete'],
    ] as const) {
      expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
      const cause = (refused as WorkflowUpdateFailedError).cause as { type?: string; message?: string };
      expect(cause).toMatchObject({ type: 'InvalidMigrationState' });
      expect(cause.message).toMatch(
        new RegExp(
          `of instance ${outcome.vm.instanceId} is accepted\\. Cannot ${method} while the migration is in this state`
        )
      );
    }
    expect(outcome.record.host).toBe(dest);
    expect(await allocationHosts(outcome.vm.instanceId)).toEqual([dest]);
    expect(source).not.toBe(dest);
  });

  it('abortLiveMigration while the destination is prepared (migration preparing) is taken once pre_live_migration answered: rolled back, cancelled', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const gate = cloud.holdNext('preLiveMigration');
      const handle = await startLive({ instanceId: vm.instanceId });
      await gate.reached;
      const answer = await handle.executeUpdate(abortLiveMigrationUpdate);
      gate.open();
      return { vm, answer, err: await handle.result().catch((e: unknown) => e) };
    });
    expect(outcome.answer).toEqual({ aborted: true });
    expect(failureOf(outcome.err)).toMatchObject({ type: 'LiveMigrationAborted' });
    expect(failureOf(outcome.err).message).toMatch(/by the operator/);
    await expectOnSource(outcome.vm.instanceId, source, [dest]);
    const [migration] = await cloud.instances.listMigrations(outcome.vm.instanceId);
    expect(migration?.status).toBe('cancelled');
    const events = (await cloud.instances.listActions(outcome.vm.instanceId)).find(
      (a) => a.action === 'live-migration'
    )?.events;
    // The copy never started; the destination was cleaned (Nova's rollback_live_migration_at_destination).
    expect(events?.map((e) => e.event)).not.toContain(LIVE_EVENTS.copy);
    expect(events?.find((e) => e.event === LIVE_EVENTS.rollbackDest)).toMatchObject({ host: dest, result: 'Success' });
  });

  it('the late server-group check on the destination: an anti-affinity member that arrived there since the scheduler chose fails it, the next destination is used', async () => {
    const { az, hosts } = await cloud.zone(4);
    const [a, b, c, d] = hosts;
    const group = `live-spread-${randomUUID().slice(0, 8)}`;
    const outcome = await cloud.run(hosts, async () => {
      await env.client.workflow.execute<typeof serverGroup>('serverGroup', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.serverGroup('create', randomUUID().slice(0, 8)),
        args: [{ action: 'create', name: group, policy: 'anti-affinity' }],
      });
      const first = await cloud.boot(az, { schedulerHints: { group } });
      const second = await cloud.boot(az, { schedulerHints: { group } });
      expect([first.host, second.host]).toEqual([a, b]);
      // The first's migration chose c (alternate d) and waits at its source check; meanwhile the second
      // is moved to c. The first's check on c then finds it there.
      const gate = cloud.holdNext('checkCanLiveMigrateSource');
      const handle = await startLive({ instanceId: first.instanceId });
      await gate.reached;
      // Forced: the scheduler's group filter counts the first's claim on c; the late check reads the records.
      const moved = await (await startLive({ instanceId: second.instanceId, host: c, force: true })).result();
      gate.open();
      return { first, moved, record: await handle.result() };
    });
    expect(outcome.moved.host).toBe(c);
    expect(outcome.record).toMatchObject({ host: d, vmState: 'active', taskState: null });
    expect(await allocationHosts(outcome.first.instanceId)).toEqual([d]);
    expect((await guestsOf(c)).map((g) => g.instanceId)).not.toContain(outcome.first.instanceId);
    const checks = (await cloud.instances.listActions(outcome.first.instanceId))
      .find((x) => x.action === 'live-migration')
      ?.events.filter((e) => e.event === GROUP_CHECK_EVENT);
    expect(checks?.map((e) => [e.host, e.result])).toEqual([
      [c, 'Error'],
      [d, 'Success'],
    ]);
    expect(checks?.[0]?.details).toMatch(new RegExp(`member ${outcome.moved.instanceId} is there`));
  });

  it('a stop or a resize during a live migration is refused with InstanceInvalidState', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      await setFaults(source, { liveMigration: { bandwidthMbPerSecond: 1024, dirtyMbPerSecond: 2048 } });
      const handle = await startLive({ instanceId: vm.instanceId });
      await copying(handle);
      const stopErr = await env.client.workflow
        .execute<typeof stop>('stop', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds.stop(vm.instanceId, 'during-live'),
          args: [{ instanceId: vm.instanceId }],
        })
        .catch((e: unknown) => e);
      const resizeErr = await env.client.workflow
        .execute<typeof resizeMigrate>('resizeMigrate', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds.resizeMigrate(vm.instanceId, 'during-live'),
          args: [{ instanceId: vm.instanceId, flavor: 'm1.medium' }],
        })
        .catch((e: unknown) => e);
      await handle.executeUpdate(abortLiveMigrationUpdate);
      await handle.result().catch(() => undefined);
      return { vm, stopErr, resizeErr };
    });
    expect(failureOf(outcome.stopErr)).toMatchObject({ type: 'InstanceInvalidState' });
    expect(failureOf(outcome.stopErr).message).toMatch(/taskState migrating/);
    expect(failureOf(outcome.resizeErr)).toMatchObject({ type: 'InstanceInvalidState' });
    await expectOnSource(outcome.vm.instanceId, source, [dest]);
  });

  it('a request for its own host is refused before anything is written', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      const actions = await cloud.instances.listActions(vm.instanceId);
      const err = await (
        await startLive({ instanceId: vm.instanceId, host: source })
      )
        .result()
        .catch((e: unknown) => e);
      expect(await cloud.instances.listActions(vm.instanceId)).toEqual(actions);
      return { vm, err };
    });
    expect(failureOf(outcome.err)).toMatchObject({ type: 'InvalidRequest' });
    expect(await cloud.instances.listMigrations(outcome.vm.instanceId)).toEqual([]);
  });

  it('a source that is down fails ComputeHostUnavailable: the migration error, its allocation moved back, nothing on the destination', async () => {
    const { az, hosts } = await cloud.zone(2);
    const [source, dest] = hosts;
    const outcome = await cloud.run(hosts, async () => {
      const vm = await cloud.boot(az);
      await cloud.placement.setForcedDown(source, true);
      try {
        return { vm, err: await (await startLive({ instanceId: vm.instanceId })).result().catch((e: unknown) => e) };
      } finally {
        await cloud.placement.setForcedDown(source, false);
      }
    });
    expect(failureOf(outcome.err)).toMatchObject({ type: 'ComputeHostUnavailable' });
    expect(failureOf(outcome.err).message).toMatch(/forced down \(the source of a live migration must be up\)/);
    // Nova's migration, created before its _check_host_is_up, ends error; the selection made beside the
    // liveness question has its claim released.
    expect((await cloud.instances.listMigrations(outcome.vm.instanceId)).map((m) => m.status)).toEqual(['error']);
    await expectOnSource(outcome.vm.instanceId, source, [dest]);
    expect((await cloud.instances.listFaults(outcome.vm.instanceId)).at(-1)?.message).toMatch(/unavailable/);
  });
});
