/**
 * The conductor CLI against a running system: the dev server, with the conductor, scheduler and compute
 * workers in-process (TestCloud), and `npm run conductor -- …` as a subprocess reading the same store.
 * Host commands (disable / enable / down / up, and what `hosts` shows), requests refused before anything
 * is written, a closed pipe, `show` of a deleted instance by name, `console` (the guest's console read
 * from its host), pause / unpause / suspend / resume, and Ctrl-C while following a build.
 * Ends with the placement audit clean and no workflow running.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { FakeDriver } from '../../src/compute/fake';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import { ROOT, runCli, runProcess } from '../helpers/cli';
import { TestCloud } from '../helpers/cloud';
import { createDevServerEnv } from '../helpers/temporal';

const CLI = path.join(ROOT, 'src', 'cli', 'conductor.ts');

describe('npm run conductor against a running system', () => {
  let env: TestWorkflowEnvironment;
  let cloud: TestCloud;
  let hosts: string[];
  let cliEnv: Record<string, string | undefined>;
  const conductor = (...args: string[]) => runCli(CLI, args, cliEnv);
  const inCloud = <T>(fn: () => Promise<T>) => cloud.run(hosts, fn);

  beforeAll(async () => {
    env = await createDevServerEnv();
    cloud = await new TestCloud(env).open();
    hosts = await cloud.addHosts([
      { name: 'cli-a', availabilityZone: 'cli', memoryMb: 65536 },
      { name: 'cli-b', availabilityZone: 'cli', memoryMb: 57344 },
    ]);
    cliEnv = {
      DATA_DIR: cloud.dataDir,
      DATABASE_URL: undefined,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: env.namespace ?? 'default',
    };
  });
  afterAll(async () => {
    // Whatever the tests did: no workflow left running, placement consistent.
    const running: string[] = [];
    for await (const w of env.client.workflow.list({ query: 'ExecutionStatus = "Running"' }))
      running.push(w.workflowId);
    expect(running).toEqual([]);
    expect(await cloud.placement.audit()).toEqual({ orphans: [], overCapacity: [] });
    await cloud?.close();
    await env?.teardown();
  });

  /** A shell pipeline with the CLI's environment: its exit status and output. */
  const bash = (args: string[]) => runProcess('/bin/bash', args, cliEnv);

  /** Builds an instance in the zone through the workflow (workers running). */
  function build(name: string) {
    const instanceId = randomUUID();
    return env.client.workflow.execute<typeof buildInstance>('buildInstance', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: workflowIds.buildInstance(instanceId),
      args: [{ instanceId, name, flavor: 'm1.tiny', image: 'cirros', availabilityZone: 'cli' }],
    });
  }

  /** How many workflows visibility knows of (that match the query). */
  async function countWorkflows(query?: string): Promise<number> {
    return (await env.client.workflow.count(query)).count;
  }

  async function hostsJson(): Promise<
    Array<{ host: string; state: string; enabled: boolean; disabledReason: string }>
  > {
    const run = await conductor('hosts', '--json');
    expect(run.code, run.stderr).toBe(0);
    return JSON.parse(run.stdout) as never;
  }

  it('host disable / enable / down / up: each runs setHostService, and `hosts` shows the state', async () => {
    await inCloud(async () => {
      const disabled = await conductor('host', 'disable', 'cli-a', '--reason', 'firmware upgrade');
      expect(disabled.code, disabled.stderr).toBe(0);
      expect(disabled.stdout).toMatch(/^host\s+cli-a$/m);
      expect(disabled.stdout).toMatch(/^status\s+disabled: firmware upgrade$/m);
      const table = await conductor('hosts');
      expect(table.stdout).toMatch(/^cli-a\s+cli\s+up\s+disabled: firmware upgrade\s/m);

      const down = await conductor('host', 'down', 'cli-a', '--json');
      expect(down.code, down.stderr).toBe(0);
      expect(JSON.parse(down.stdout)).toMatchObject({ host: 'cli-a', forcedDown: true, up: false, alive: true });
      expect((await hostsJson()).find((h) => h.host === 'cli-a')).toMatchObject({
        state: 'down (forced)',
        enabled: false,
        disabledReason: 'firmware upgrade',
      });

      expect((await conductor('host', 'up', 'cli-a')).code).toBe(0);
      expect((await conductor('host', 'enable', 'cli-a')).code).toBe(0);
      expect((await hostsJson()).find((h) => h.host === 'cli-a')).toMatchObject({ state: 'up', enabled: true });
    });
    // Each command was one setHostService workflow, tagged with its host.
    await vi.waitFor(async () =>
      expect(await countWorkflows(`WorkflowType = 'setHostService' AND ComputeHost = 'cli-a'`)).toBe(4)
    );
  });

  it('refuses what can only fail before anything is written: an unknown --host, a host command on an unknown host', async () => {
    const before = { workflows: await countWorkflows(), instances: (await cloud.instances.list()).length };
    const runs = await Promise.all([
      conductor('boot', 'vm-nowhere', '--flavor', 'm1.small', '--image', 'cirros', '--host', 'no-such-host'),
      conductor('boot', 'vm-nowhere', '--flavor', 'm1.small', '--image', 'cirros', '--force-host', 'no-such-host'),
      conductor('host', 'disable', 'no-such-host'),
      conductor('host', 'down', 'Bad_Name'),
      conductor('evacuate', 'vm-any', '--host', 'no-such-host'),
      conductor('migrate', 'vm-any', '--host', 'no-such-host'),
      conductor('resize', 'vm-any', '--flavor', 'm1.medium', '--host', 'no-such-host'),
      conductor('host', 'disable', 'cli-a', '--reason', 'x'.repeat(300)),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
    expect(runs[0]?.stderr.trim()).toBe(
      "InvalidRequest: Invalid request: host: no compute host named 'no-such-host' is registered"
    );
    expect(runs[1]?.stderr.trim()).toBe(
      "InvalidRequest: Invalid request: forceHost: no compute host named 'no-such-host' is registered"
    );
    expect(runs[2]?.stderr.trim()).toBe(
      "InvalidRequest: Invalid request: host: no compute host named 'no-such-host' is registered"
    );
    expect(runs[3]?.stderr.trim()).toMatch(/^InvalidRequest: Invalid request: host: host names are lower-case/);
    for (const r of runs.slice(4, 7))
      expect(r.stderr.trim()).toBe(
        "InvalidRequest: Invalid request: host: no compute host named 'no-such-host' is registered"
      );
    expect(runs[7]?.stderr.trim()).toMatch(/^InvalidRequest: Invalid request: disabledReason: /);
    for (const r of runs) expect(r.stderr).not.toMatch(/\n\s+at /);
    expect((await cloud.instances.list()).length).toBe(before.instances);
    // Visibility is written just after a start: give it a moment to show one, had any been started.
    await delay(1_000);
    expect(await countWorkflows()).toBe(before.workflows);
  });

  it('exits quietly when the reader closes the pipe (`list | head -1`, `list | true`)', async () => {
    await inCloud(async () => {
      for (let i = 0; i < 3; i++) await build(`vm-pipe-${i}`);
    });
    const cli = `'${process.execPath}' --import tsx '${CLI}'`;
    for (const pipeline of [`${cli} list | head -1`, `${cli} list --json | true`, `${cli} hosts | true`]) {
      const run = await bash(['-o', 'pipefail', '-c', pipeline]);
      expect({ pipeline, code: run.code, stderr: run.stderr }).toEqual({ pipeline, code: 0, stderr: '' });
    }
    const head = await bash(['-c', `${cli} list | head -1`]);
    expect(head.stdout).toMatch(/^ID\s+NAME\s+STATUS/);
  });

  it('show finds a deleted instance by its name; a live one of the same name comes first', async () => {
    const built = await inCloud(() => build('vm-gone'));
    // Deleted through the CLI's own delete (deleteInstance): soft-deleted, no guest, no allocation.
    const deleted = await inCloud(() => conductor('delete', 'vm-gone'));
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(await cloud.driver(built.host!).getGuest(built.instanceId)).toBeUndefined();
    expect(await cloud.placement.getAllocations(built.instanceId)).toEqual([]);
    const shown = await conductor('show', 'vm-gone', '--json');
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ instanceId: built.instanceId, vmState: 'deleted' });
    const listed = await conductor('list', '--state', 'deleted', '--json');
    expect((JSON.parse(listed.stdout) as Array<{ instanceId: string }>).map((i) => i.instanceId)).toContain(
      built.instanceId
    );

    const again = await inCloud(() => build('vm-gone'));
    const live = await conductor('show', 'vm-gone', '--json');
    expect(JSON.parse(live.stdout)).toMatchObject({ instanceId: again.instanceId, vmState: 'active' });
    // Deleting it too leaves two deleted instances of that name: which one is ambiguous.
    expect((await inCloud(() => conductor('delete', 'vm-gone'))).code).toBe(0);
    const ambiguous = await conductor('show', 'vm-gone');
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr.trim()).toBe(
      `conductor show: 2 deleted instances are named 'vm-gone': use the id (${built.instanceId}, ${again.instanceId})`
    );
    expect((await conductor('show', 'vm-never-was')).stderr.trim()).toBe(
      'InstanceNotFound: Instance vm-never-was could not be found.'
    );
  });

  it("console prints the guest's console from its host (whole, last N lines, JSON); a guest gone is InstanceNotFound", async () => {
    const built = await inCloud(() => build('vm-console'));
    const host = built.host!;
    await inCloud(async () => {
      const whole = await conductor('console', 'vm-console');
      expect(whole.code, whole.stderr).toBe(0);
      expect(whole.stdout).toMatch(/GUEST-BOOT boot=1 image=cirros\n/);

      await cloud.driver(host).powerOff({ instanceId: built.instanceId });
      const last = await conductor('console', built.instanceId, '--lines', '1');
      expect(last.code, last.stderr).toBe(0);
      expect(last.stdout).toMatch(/^\[[^\]]+\] powered off \(forced\)\n$/);
      const json = await conductor('console', 'vm-console', '--lines', '2', '--json');
      expect(JSON.parse(json.stdout)).toEqual({
        instanceId: built.instanceId,
        host,
        output: expect.stringMatching(/GUEST-BOOT boot=1 image=cirros\n.*powered off \(forced\)\n$/) as string,
      });

      // The guest gone from its host behind the conductor's back: the host's answer, typed.
      await cloud.driver(host).destroy({ instanceId: built.instanceId });
      const gone = await conductor('console', 'vm-console');
      expect(gone.code).toBe(1);
      expect(gone.stderr.trim()).toMatch(/^InstanceNotFound: .*could not be found/);
      expect((await conductor('delete', 'vm-console')).code).toBe(0);
    });
    const bad = await conductor('console', 'vm-console', '--lines', '-1');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--lines/);
    expect(await countWorkflows(`WorkflowType = 'consoleOutput'`)).toBeGreaterThanOrEqual(3);
  });

  it('pause, unpause, suspend, resume: each runs its workflow and ends in the state Nova would; list --state finds it; the wrong state is refused with exit 1', async () => {
    const built = await inCloud(() => build('vm-pause'));
    const host = built.host!;
    await inCloud(async () => {
      const step = async (command: string, vmState: string, powerState: string) => {
        const run = await conductor(command, 'vm-pause');
        expect(run.code, `${command}: ${run.stderr}`).toBe(0);
        const shown = await conductor('show', 'vm-pause', '--json');
        expect(JSON.parse(shown.stdout), command).toMatchObject({ vmState, powerState, taskState: null });
        expect((await cloud.driver(host).getGuest(built.instanceId))?.powerState, command).toBe(powerState);
      };
      await step('pause', 'paused', 'paused');
      const listed = await conductor('list', '--state', 'paused', '--json');
      expect((JSON.parse(listed.stdout) as Array<{ instanceId: string }>).map((i) => i.instanceId)).toEqual([
        built.instanceId,
      ]);
      const refused = await conductor('suspend', 'vm-pause');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(
        `InstanceInvalidState: Cannot 'suspend' instance ${built.instanceId} while it is in vmState paused`
      );
      await step('unpause', 'active', 'running');
      await step('suspend', 'suspended', 'suspended');
      await step('resume', 'active', 'running');
      expect((await conductor('delete', 'vm-pause')).code).toBe(0);
    });
    for (const type of ['pause', 'unpause', 'suspend', 'resume'])
      expect(await countWorkflows(`WorkflowType = '${type}'`), type).toBeGreaterThanOrEqual(1);
  });

  it('Ctrl-C while following a build: says the build goes on and how to watch it; the build completes', async () => {
    for (const host of hosts)
      cloud.drivers.set(host, new FakeDriver({ host, stateDir: path.join(cloud.dataDir, 'compute'), spawnSeconds: 4 }));
    await inCloud(async () => {
      const childEnv: NodeJS.ProcessEnv = { ...process.env, ...cliEnv };
      delete childEnv.DATABASE_URL;
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', CLI, 'boot', 'vm-ctrl-c', '--flavor', 'm1.tiny', '--image', 'cirros', '--az', 'cli'],
        { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] }
      );
      let stderr = '';
      let stdout = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      await vi.waitFor(() => expect(stderr).toContain('building/spawning on '), { timeout: 30_000, interval: 100 });
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      const workflowId = /^buildInstance (build-\S+)$/m.exec(stderr)?.[1];
      expect(workflowId).toBeDefined();
      expect(stderr).toContain(`Interrupted: the operation goes on (workflow ${workflowId}). Watch it with`);
      expect(stderr).toContain(`npm run temporal -- workflow query --workflow-id ${workflowId} --name getProgress`);
      expect(stderr).toContain(`npm run temporal -- workflow describe --workflow-id ${workflowId}`);
      expect(stderr).not.toMatch(/\n\s+at /);
      expect(stdout).toBe('');
      const record = await env.client.workflow.getHandle<typeof buildInstance>(workflowId!).result();
      expect(record).toMatchObject({ name: 'vm-ctrl-c', vmState: 'active', taskState: null });
    });
  });
});
