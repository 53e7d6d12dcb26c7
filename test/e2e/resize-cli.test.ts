/**
 * resizeMigrate driven by the stock `temporal` CLI against the dev server (`temporal server start-dev`),
 * with the conductor, scheduler and compute workers in-process: started with `workflow start --type
 * resizeMigrate`, confirmed with `workflow update execute --name confirmResize`. Updates are tested here
 * on the real server: the time-skipping server does not skip time while a caller awaits an Update.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { FakeDriver } from '../../src/compute/fake';
import type { ResizeOutcome } from '../../src/shared/messages';
import { resizeResult } from '../../src/shared/messages';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import type { resizeMigrate } from '../../src/workflows/resize-migrate';
import { TestCloud } from '../helpers/cloud';
import { createDevServerEnv } from '../helpers/temporal';
import { progressReached } from '../helpers/progress';

const exec = promisify(execFile);

describe('resizeMigrate through the temporal CLI (dev server)', () => {
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

  /** The stock `temporal` CLI against this server; JSON output parsed. */
  async function temporal(...args: string[]): Promise<unknown> {
    const { stdout } = await exec(inject('temporalCli'), [
      ...args,
      '--address',
      env.address,
      '--namespace',
      env.namespace ?? 'default',
      '-o',
      'json',
    ]);
    return JSON.parse(stdout) as unknown;
  }

  /** The CLI's failure: its exit is non-zero, and what it printed (the JSON on stdout, stderr) says why. */
  async function temporalFails(...args: string[]): Promise<string> {
    try {
      await temporal(...args);
    } catch (err) {
      const { stdout, stderr, code } = err as { stdout?: string; stderr?: string; code?: number };
      expect(code).not.toBe(0);
      return `${stdout ?? ''}${stderr ?? ''}`;
    }
    throw new Error(`temporal ${args.join(' ')} succeeded`);
  }

  it('starts with `workflow start --type resizeMigrate` and confirms with `workflow update execute --name confirmResize`', async () => {
    const az = 'cli-zone';
    const hosts = await cloud.addHosts([
      { name: 'cli-a', availabilityZone: az, memoryMb: 65536 },
      { name: 'cli-b', availabilityZone: az, memoryMb: 57344 },
    ]);
    // Disk transfers take 2 s so the test can knock while one runs; guests shut down in 0.1 s.
    for (const host of hosts)
      cloud.drivers.set(
        host,
        new FakeDriver({ host, stateDir: path.join(cloud.dataDir, 'compute'), spawnSeconds: 2, shutdownSeconds: 0.1 })
      );
    const [a, b] = hosts as [string, string];

    await cloud.run(hosts, async () => {
      const instanceId = randomUUID();
      const vm = await env.client.workflow.execute<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.buildInstance(instanceId),
        args: [{ instanceId, name: 'vm-cli', flavor: 'm1.small', image: 'cirros', availabilityZone: az }],
      });
      expect(vm.host).toBe(a);

      const workflowId = workflowIds.resizeMigrate(instanceId, 'cli');
      const started = (await temporal(
        'workflow',
        'start',
        '--type',
        'resizeMigrate',
        '--task-queue',
        CONDUCTOR_TASK_QUEUE,
        '--workflow-id',
        workflowId,
        '--input',
        JSON.stringify({ instanceId, flavor: 'm1.medium' })
      )) as { workflowId?: string; runId?: string };
      expect(started.workflowId).toBe(workflowId);
      const handle = env.client.workflow.getHandle<typeof resizeMigrate>(workflowId);

      // While the disk moves, the validator refuses a confirm at once and the CLI says why.
      await progressReached(handle, (p) => p.taskState === 'resize_migrating', 'the disk transfer');
      const early = await temporalFails(
        'workflow',
        'update',
        'execute',
        '--workflow-id',
        workflowId,
        '--name',
        'confirmResize'
      );
      expect(early).toContain(`Cannot 'confirmResize' instance ${instanceId} while it is in vmState active`);

      await progressReached(handle, (p) => p.vmState === 'resized' && p.taskState === null, 'the resize');
      const confirmed = (await temporal(
        'workflow',
        'update',
        'execute',
        '--workflow-id',
        workflowId,
        '--name',
        'confirmResize'
      )) as { result?: ResizeOutcome };
      expect(confirmed.result).toMatchObject({
        decision: 'confirmed',
        automatic: false,
        instance: { instanceId, vmState: 'active', host: b, flavor: 'm1.medium' },
        migration: { status: 'confirmed', sourceHost: a, destHost: b },
      });
      // The workflow's result is the instance record, with the same outcome under `resize`.
      expect(await handle.result()).toEqual(resizeResult(confirmed.result!));

      const migrationId = confirmed.result?.migration.id ?? '';
      expect(await cloud.placement.getAllocations(instanceId)).toEqual([
        { host: b, resources: { VCPU: 2, MEMORY_MB: 4096, DISK_GB: 40 } },
      ]);
      expect(await cloud.placement.getAllocations(migrationId)).toEqual([]);
      expect(await cloud.driver(a).listGuests()).toEqual([]);
      expect(await cloud.placement.audit()).toEqual({ orphans: [], overCapacity: [] });
    });
  });
  it('refuses a stop during a resize, then reverts with `workflow update execute --name revertResize`', async () => {
    const az = 'cli-revert-zone';
    const hosts = await cloud.addHosts([
      { name: 'rv-a', availabilityZone: az, memoryMb: 65536 },
      { name: 'rv-b', availabilityZone: az, memoryMb: 57344 },
    ]);
    const [a, b] = hosts as [string, string];
    await cloud.run(hosts, async () => {
      const instanceId = randomUUID();
      const vm = await env.client.workflow.execute<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.buildInstance(instanceId),
        args: [{ instanceId, name: 'vm-revert', flavor: 'm1.small', image: 'cirros', availabilityZone: az }],
      });
      expect(vm.host).toBe(a);
      const workflowId = workflowIds.resizeMigrate(instanceId, 'cli-revert');
      await temporal(
        'workflow',
        'start',
        '--type',
        'resizeMigrate',
        '--task-queue',
        CONDUCTOR_TASK_QUEUE,
        '--workflow-id',
        workflowId,
        '--input',
        JSON.stringify({ instanceId, flavor: 'm1.medium' })
      );
      const handle = env.client.workflow.getHandle<typeof resizeMigrate>(workflowId);
      await progressReached(handle, (p) => p.vmState === 'resized', 'the resize');

      // The instance is resized (VERIFY_RESIZE): a stop is refused at once, naming the state.
      const refused = await temporalFails(
        'workflow',
        'execute',
        '--type',
        'stop',
        '--task-queue',
        CONDUCTOR_TASK_QUEUE,
        '--workflow-id',
        workflowIds.stop(instanceId, 'cli'),
        '--input',
        JSON.stringify({ instanceId })
      );
      expect(refused).toContain('InstanceInvalidState');
      expect(refused).toContain(`Cannot 'stop' instance ${instanceId} while it is in vmState resized`);

      const reverted = (await temporal(
        'workflow',
        'update',
        'execute',
        '--workflow-id',
        workflowId,
        '--name',
        'revertResize'
      )) as { result?: ResizeOutcome };
      expect(reverted.result).toMatchObject({
        decision: 'reverted',
        automatic: false,
        instance: { instanceId, vmState: 'active', host: a, flavor: 'm1.small' },
        migration: { status: 'reverted', sourceHost: a, destHost: b },
      });
      expect(await cloud.placement.getAllocations(instanceId)).toEqual([
        { host: a, resources: { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 } },
      ]);
      expect(await cloud.placement.getAllocations(reverted.result?.migration.id ?? '')).toEqual([]);
      expect(await cloud.placement.audit()).toEqual({ orphans: [], overCapacity: [] });
    });
  });
});
