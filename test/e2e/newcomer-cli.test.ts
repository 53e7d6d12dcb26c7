/**
 * What a newcomer trips over (issue 29), through `npm run conductor -- …` as a subprocess against the dev
 * server with the workers in-process (TestCloud): resize and migrate exit as soon as they printed their
 * last line, errors say what to do (evacuate while the host is up, a missing or misspelt field, an
 * unknown flavor, image or group, refused before any workflow starts), evacuations are `evacuate-…`
 * with a readable progress line, and the small commands (`flavors`, `images`, timestamps in `show`).
 */
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { FakeDriver } from '../../src/compute/fake';
import { CONDUCTOR_TASK_QUEUE } from '../../src/shared/task-queues';
import { recordStackIdentity } from '../../src/store/stack';
import { claimNamespace, namespaceStackId } from '../../src/workers/stack-identity';
import { ROOT, runCli } from '../helpers/cli';
import { TestCloud } from '../helpers/cloud';
import { freePort } from '../helpers/ports';
import { createDevServerEnv } from '../helpers/temporal';

const CLI = path.join(ROOT, 'src', 'cli', 'conductor.ts');
const exec = promisify(execFile);

/** The Web UI's saved view of what people started, as the README gives it (internal workflows hidden). */
const SAVED_VIEW_QUERY =
  /^WorkflowType NOT IN \(.*\)$/m.exec(readFileSync(path.join(ROOT, 'README.md'), 'utf8'))?.[0] ?? 'no saved view';

/** A search attribute's value in the stock CLI's `workflow describe -o json` (base64 JSON payloads). */
function searchAttribute(described: Record<string, unknown>, key: string): unknown {
  const info = described.workflowExecutionInfo as
    { searchAttributes?: { indexedFields?: Record<string, { data?: string }> } } | undefined;
  const data = info?.searchAttributes?.indexedFields?.[key]?.data;
  return data === undefined ? undefined : (JSON.parse(Buffer.from(data, 'base64').toString()) as unknown);
}

/** A CLI run, timed: when its last output arrived and when it exited (ms since its start). */
interface TimedRun {
  code: number | null;
  stdout: string;
  stderr: string;
  lastOutputMs: number;
  exitMs: number;
}

function timedCli(args: readonly string[], env: Record<string, string | undefined>): Promise<TimedRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let lastOutputMs = 0;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      lastOutputMs = Date.now() - started;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      lastOutputMs = Date.now() - started;
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr, lastOutputMs, exitMs: Date.now() - started }));
  });
}

describe('npm run conductor, as a newcomer meets it', () => {
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
      { name: 'nc-a', availabilityZone: 'nc', memoryMb: 65536 },
      { name: 'nc-b', availabilityZone: 'nc', memoryMb: 65536 },
    ]);
    cliEnv = {
      DATA_DIR: cloud.dataDir,
      DATABASE_URL: undefined,
      CATALOGUE_FILE: undefined,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: env.namespace ?? 'default',
    };
  });
  afterAll(async () => {
    await cloud?.close();
    await env?.teardown();
  });

  const countWorkflows = async (query?: string) => (await env.client.workflow.count(query)).count;

  it('resize and migrate exit right after their last line (no long poll left open)', async () => {
    await inCloud(async () => {
      const boot = await conductor('boot', 'nc-vm', '--flavor', 'm1.small', '--image', 'cirros', '--az', 'nc');
      expect(boot.code, boot.stderr).toBe(0);

      const resize = await timedCli(['resize', 'nc-vm', '--flavor', 'm1.medium'], cliEnv);
      expect(resize.code, resize.stderr).toBe(0);
      expect(resize.stdout).toMatch(/^status\s+resized$/m);
      expect(resize.stderr).toMatch(/^confirm: npm run conductor -- confirm /m);
      // Before the fix the process stayed ~15 s after its last line (the result's long poll).
      expect(resize.exitMs - resize.lastOutputMs).toBeLessThan(2_000);
      expect((await conductor('confirm', 'nc-vm')).code).toBe(0);

      const migrate = await timedCli(['migrate', 'nc-vm'], cliEnv);
      expect(migrate.code, migrate.stderr).toBe(0);
      expect(migrate.stdout).toMatch(/^status\s+resized$/m);
      expect(migrate.exitMs - migrate.lastOutputMs).toBeLessThan(2_000);
      expect((await conductor('revert', 'nc-vm')).code).toBe(0);
    });
  });

  it('evacuate while the host is up says evacuate needs it down, how to force it down, or to live-migrate', async () => {
    await inCloud(async () => {
      const show = JSON.parse((await conductor('show', 'nc-vm', '--json')).stdout) as { host: string };
      const evacuate = await conductor('evacuate', 'nc-vm');
      expect(evacuate.code).toBe(1);
      expect(evacuate.stderr).toContain(`ComputeServiceInUse: Compute service of ${show.host} is still in use.`);
      expect(evacuate.stderr).toContain(`Evacuate needs the instance's host down`);
      expect(evacuate.stderr).toContain(`npm run conductor -- host down ${show.host}`);
      expect(evacuate.stderr).toContain('live-migrate');
    });
  });

  it('an evacuation is `evacuate-…` and its progress line names where from and where to', async () => {
    // Spawns take 5 s, so the CLI (which polls every 0.5 s) sees the spawning step even on a quiet machine.
    // Set before the cloud's compute workers start: each takes its host's driver when it starts.
    for (const host of hosts)
      cloud.drivers.set(host, new FakeDriver({ host, stateDir: path.join(cloud.dataDir, 'compute'), spawnSeconds: 5 }));
    await inCloud(async () => {
      const { host: source } = JSON.parse((await conductor('show', 'nc-vm', '--json')).stdout) as { host: string };
      expect((await conductor('host', 'down', source)).code).toBe(0);
      try {
        const evacuate = await conductor('evacuate', 'nc-vm');
        expect(evacuate.code, evacuate.stderr).toBe(0);
        expect(evacuate.stderr).toMatch(/^rebuild evacuate-[0-9a-f-]{36}-[0-9a-f]{8}$/m);
        expect(evacuate.stderr).toMatch(
          new RegExp(`^ {2}active/rebuild_spawning: spawning the guest on nc-[ab], evacuating from ${source}$`, 'm')
        );
        expect(evacuate.stderr).not.toMatch(/rebuild_spawning on /);
      } finally {
        expect((await conductor('host', 'up', source)).code).toBe(0);
      }
      // The refused one above, and this one.
      expect(await countWorkflows(`WorkflowId STARTS_WITH 'evacuate-'`)).toBe(2);
    });
  });

  it('refuses an unknown flavor, image or group before starting anything, listing the valid ones', async () => {
    const before = { workflows: await countWorkflows(), instances: (await cloud.instances.list()).length };
    const flavor = await conductor('boot', 'nc-bad', '--flavor', 'm1.huge', '--image', 'cirros');
    expect(flavor.code).toBe(2);
    expect(flavor.stderr.trim()).toBe(
      "InvalidRequest: Invalid request: flavor: unknown flavor 'm1.huge' (valid: m1.tiny, m1.small, m1.medium, m1.large, m1.xlarge; see `npm run conductor -- flavors`)"
    );
    const image = await conductor('boot', 'nc-bad', '--flavor', 'm1.small', '--image', 'debian');
    expect(image.code).toBe(2);
    expect(image.stderr).toContain(
      "Invalid request: image: unknown image 'debian' (valid: cirros, stubborn, dirty, ubuntu-24.04, fedora-41-aarch64;"
    );
    const group = await conductor('boot', 'nc-bad', '--flavor', 'm1.small', '--image', 'cirros', '--group', 'spread');
    expect(group.code).toBe(2);
    expect(group.stderr).toContain(
      "Invalid request: schedulerHints.group: unknown server group 'spread' (none exists yet; create it first: npm run conductor -- server-group create spread --policy anti-affinity)"
    );
    const resize = await conductor('resize', 'nc-vm', '--flavor', 'm1.huge');
    expect(resize.code).toBe(2);
    expect(resize.stderr).toContain("unknown flavor 'm1.huge' (valid: m1.tiny");
    // Nothing was started, nothing was written.
    expect(await countWorkflows()).toBe(before.workflows);
    expect((await cloud.instances.list()).length).toBe(before.instances);
  });

  it('a workflow input names a missing field as missing and a misspelt key as unknown', async () => {
    const fail = async (type: string, input: unknown) => {
      const err = await env.client.workflow
        .execute(type, { taskQueue: CONDUCTOR_TASK_QUEUE, workflowId: `bad-${randomUUID()}`, args: [input] })
        .then(
          () => undefined,
          (e: unknown) => e as { cause?: { type?: string; message?: string } }
        );
      return { type: err?.cause?.type, message: err?.cause?.message };
    };
    await inCloud(async () => {
      expect(await fail('stop', {})).toEqual({
        type: 'InvalidRequest',
        message: 'Invalid request: instanceId: missing (required)',
      });
      expect(await fail('buildInstance', { name: 'vm', flavour: 'm1.small', image: 'cirros' })).toEqual({
        type: 'InvalidRequest',
        message: "Invalid request: flavour: unknown key 'flavour'; flavor: missing (required)",
      });
      expect(await fail('stop', { instanceId: 'vm1' })).toEqual({
        type: 'InvalidRequest',
        message: 'Invalid request: instanceId: instance ids are UUIDs',
      });
    });
  });

  it('the Web UI reads: InstanceName, summaries and details (stock CLI `workflow describe`), step summaries', async () => {
    const temporal = async (...args: string[]) => {
      const { stdout } = await exec(inject('temporalCli'), [
        ...args,
        '--address',
        env.address,
        '--namespace',
        env.namespace ?? 'default',
        '-o',
        'json',
      ]);
      return stdout;
    };
    await inCloud(async () => {
      const boot = await conductor('boot', 'nc-ui', '--flavor', 'm1.small', '--image', 'cirros', '--az', 'nc');
      expect(boot.code, boot.stderr).toBe(0);
      const workflowId = /^buildInstance (build-\S+)$/m.exec(boot.stderr)?.[1] ?? '';
      const instanceId = workflowId.replace(/^build-/, '');
      const described = JSON.parse(await temporal('workflow', 'describe', '--workflow-id', workflowId)) as {
        executionConfig: { userMetadata?: { summary?: string; details?: string } };
        workflowExtendedInfo?: unknown;
      } & Record<string, unknown>;
      expect(described.executionConfig.userMetadata).toEqual({
        summary: 'build nc-ui (m1.small, cirros)',
        details: 'instance **nc-ui**, flavor m1.small, image cirros',
      });
      expect(searchAttribute(described, 'InstanceName')).toBe('nc-ui');
      expect(searchAttribute(described, 'InstanceId')).toBe(instanceId);

      // A build started with the stock CLI: the workflow tags the name itself; found by name.
      await temporal(
        'workflow',
        'execute',
        '--type',
        'buildInstance',
        '--task-queue',
        CONDUCTOR_TASK_QUEUE,
        '--workflow-id',
        'build-nc-raw',
        '--input',
        JSON.stringify({ name: 'nc-raw', flavor: 'm1.tiny', image: 'cirros', availabilityZone: 'nc' })
      );
      const raw = JSON.parse(await temporal('workflow', 'describe', '--workflow-id', 'build-nc-raw')) as Record<
        string,
        unknown
      >;
      expect(searchAttribute(raw, 'InstanceName')).toBe('nc-raw');
      const byName = await env.client.workflow.count(`InstanceName = 'nc-raw'`);
      expect(byName.count).toBe(1);

      // The placement child says what it places, and each compute step what it does, where, which attempt.
      const child = JSON.parse(
        await temporal('workflow', 'describe', '--workflow-id', `place-build-${instanceId}`)
      ) as typeof described;
      expect(child.executionConfig.userMetadata?.summary).toBe('place and build nc-ui (m1.small, cirros)');
      const history = JSON.parse(await temporal('workflow', 'show', '--workflow-id', `place-build-${instanceId}`)) as {
        events: Array<{
          eventType: string;
          userMetadata?: { summary?: { data?: string } };
          activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
        }>;
      };
      const summaries = history.events
        .filter((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED' && e.userMetadata?.summary?.data)
        .map((e) => ({
          activity: e.activityTaskScheduledEventAttributes?.activityType?.name,
          summary: JSON.parse(Buffer.from(e.userMetadata?.summary?.data ?? '', 'base64').toString()) as string,
        }));
      expect(summaries).toContainEqual({
        activity: 'spawnInstance',
        summary: expect.stringMatching(/^spawn on nc-[ab], attempt 1$/) as string,
      });

      // The saved view the README gives: only what a person started, no internal workflow.
      const view = env.client.workflow.list({ query: SAVED_VIEW_QUERY });
      const types = new Set<string>();
      for await (const w of view) types.add(w.type);
      expect(types).toContain('buildInstance');
      expect([...types].filter((t) => /placementAttempt|reconcile|registerHost|hostGuests/.test(t))).toEqual([]);
      expect((await env.client.workflow.count(`WorkflowType = 'placementAttempt'`)).count).toBeGreaterThan(0);
    });
  });

  it('flavors and images list the catalogue; show prints when things happened', async () => {
    const flavors = await conductor('flavors');
    expect(flavors.code, flavors.stderr).toBe(0);
    expect(flavors.stdout).toMatch(/^NAME\s+VCPUS\s+RAM MB\s+DISK GB/m);
    expect(flavors.stdout).toMatch(/^m1\.small\s+1\s+2048\s+20\s+-$/m);
    const images = await conductor('images', '--json');
    expect((JSON.parse(images.stdout) as Array<{ name: string }>).map((i) => i.name)).toEqual([
      'cirros',
      'stubborn',
      'dirty',
      'ubuntu-24.04',
      'fedora-41-aarch64',
    ]);
    const show = await conductor('show', 'nc-vm');
    expect(show.code, show.stderr).toBe(0);
    const iso = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z';
    expect(show.stdout).toMatch(new RegExp(`^created\\s+${iso}$`, 'm'));
    expect(show.stdout).toMatch(new RegExp(`^updated\\s+${iso}$`, 'm'));
    expect(show.stdout).toMatch(
      /ACTION\s+RESULT\s+EVENT\s+ATTEMPT\s+HOST\s+EVENT RESULT\s+STARTED\s+FINISHED\s+DETAILS/
    );
    expect(show.stdout).toMatch(new RegExp(`^create\\s+.*compute__?\\S*\\s+.*${iso}\\s+${iso}`, 'm'));
  });
});

describe('npm run conductor refuses a store of another stack', () => {
  let env: TestWorkflowEnvironment;
  let cloud: TestCloud;
  let cliEnv: Record<string, string | undefined>;
  const conductor = (...args: string[]) => runCli(CLI, args, cliEnv);

  beforeAll(async () => {
    env = await createDevServerEnv();
    cloud = await new TestCloud(env).open();
    cliEnv = {
      DATA_DIR: cloud.dataDir,
      DATABASE_URL: undefined,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: env.namespace ?? 'default',
    };
  });
  afterAll(async () => {
    await cloud?.close();
    await env?.teardown();
  });

  it('reads only a store whose stack id the namespace names; says which stack when Temporal is not there', async () => {
    const namespace = env.namespace ?? 'default';
    // A store a conductor worker started on, for another stack (as make start's ./data is for the cluster).
    const stack = await recordStackIdentity(cloud.store, { address: '127.0.0.1:7233', namespace: 'default' });
    const refused = await conductor('list');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(
      `WrongStack: the store ${path.join(cloud.dataDir, 'conductor.sqlite')} belongs to stack ${stack.stackId} (Temporal 127.0.0.1:7233, namespace default), but this CLI is connected to ${env.address} namespace ${namespace}, which serves no conductor stack.`
    );
    expect((await conductor('boot', 'vm', '--flavor', 'm1.small', '--image', 'cirros')).stderr).toMatch(
      /^WrongStack: /m
    );
    expect((await env.client.workflow.count()).count).toBe(0);

    // The conductor worker's start-up claim: the namespace names the store's stack, and the CLI reads it.
    await claimNamespace(env.client.connection, namespace, stack.stackId);
    await claimNamespace(env.client.connection, namespace, stack.stackId); // idempotent
    expect(await namespaceStackId(env.client.connection, namespace)).toBe(stack.stackId);
    const read = await conductor('list');
    expect(read.code, read.stderr).toBe(0);
    // The id is kept on a later start (the address and namespace follow the worker's).
    expect((await recordStackIdentity(cloud.store, { address: env.address, namespace })).stackId).toBe(stack.stackId);

    // No Temporal where the CLI looks: the message says which stack the store belongs to.
    const nowhere = await runCli(CLI, ['list'], { ...cliEnv, TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` });
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(/^TemporalUnreachable: cannot reach Temporal at 127\.0\.0\.1:\d+ \(namespace /m);
    expect(nowhere.stderr).toContain(`belongs to the stack at ${env.address} (namespace ${namespace})`);
  });
});
