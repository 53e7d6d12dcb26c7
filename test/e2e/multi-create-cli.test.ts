/**
 * The conductor CLI's multi-create and server-group commands against the dev server, with the conductor,
 * scheduler and compute workers in-process (TestCloud) and the CLI as a subprocess on the same store:
 * `server-group create|list|show|delete` and `boot NAME --count N --group G`, their tables, JSON and exit
 * statuses. Afterwards the placement audit is clean and no workflow is left running.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { ROOT, runCli } from '../helpers/cli';
import { TestCloud } from '../helpers/cloud';
import { createDevServerEnv } from '../helpers/temporal';

const CLI = path.join(ROOT, 'src', 'cli', 'conductor.ts');
const exec = promisify(execFile);

describe('conductor CLI: boot --count and server-group (dev server)', () => {
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

  const conductor = (...args: string[]) =>
    runCli(CLI, args, { DATA_DIR: cloud.dataDir, DATABASE_URL: undefined, TEMPORAL_ADDRESS: env.address });

  /** The stock `temporal` CLI against this server, JSON output: its exit status and what it printed. */
  async function temporal(...args: string[]): Promise<{ code: number; out: string }> {
    const all = [...args, '--address', env.address, '--namespace', env.namespace ?? 'default', '-o', 'json'];
    return exec(inject('temporalCli'), all).then(
      ({ stdout }) => ({ code: 0, out: stdout }),
      (err: { code?: number; stdout?: string; stderr?: string }) => ({
        code: err.code ?? 1,
        out: `${err.stdout ?? ''}${err.stderr ?? ''}`,
      })
    );
  }

  it('the stock temporal CLI runs the serverGroup workflow: create, show, delete, and a typed failure', async () => {
    await cloud.run([], async () => {
      const run = (id: string, input: unknown) =>
        temporal(
          'workflow',
          'execute',
          '--type',
          'serverGroup',
          '--task-queue',
          'conductor',
          '--workflow-id',
          id,
          '--input',
          JSON.stringify(input)
        );
      const created = await run('sg-create', { action: 'create', name: 'stock', policy: 'affinity' });
      expect(created.code).toBe(0);
      // (The CLI's JSON prints the empty member and host lists as null.)
      expect((JSON.parse(created.out) as { result: { groups: unknown[] } }).result.groups).toEqual([
        expect.objectContaining({ name: 'stock', policy: 'affinity' }),
      ]);
      const bad = await run('sg-bad', { action: 'create', name: 'stock' });
      expect(bad.code).not.toBe(0);
      expect(bad.out).toContain('InvalidRequest');
      const deleted = await run('sg-delete', { action: 'delete', name: 'stock' });
      expect(deleted.code).toBe(0);
      const missing = await run('sg-show', { action: 'show', name: 'stock' });
      expect(missing.code).not.toBe(0);
      expect(missing.out).toContain('Server group stock could not be found.');
    });
  });

  it('creates a group, boots three spread over three hosts, refuses a fourth and the delete of a group in use', async () => {
    const az = 'mc-cli';
    const hosts = await cloud.addHosts(
      ['a', 'b', 'c'].map((x, i) => ({ name: `mc-cli-${x}`, availabilityZone: az, memoryMb: 65536 - i * 8192 }))
    );
    await cloud.run(hosts, async () => {
      const created = await conductor('server-group', 'create', 'cli-spread', '--policy', 'anti-affinity', '--json');
      expect(created.code).toBe(0);
      expect(JSON.parse(created.stdout)).toEqual({
        name: 'cli-spread',
        policy: 'anti-affinity',
        members: [],
        hosts: [],
      });

      const booted = await conductor(
        'boot',
        'web',
        '--flavor',
        'm1.small',
        '--image',
        'cirros',
        '--az',
        az,
        '--count',
        '3',
        '--group',
        'cli-spread'
      );
      expect(booted.stderr).not.toMatch(/\n\s+at /);
      expect(booted.code).toBe(0);
      const rows = booted.stdout.trim().split('\n');
      expect(rows[0]).toMatch(/^NAME +ID +STATE +HOST +WORKFLOW +FAILURE$/);
      expect(rows.slice(2).map((r) => r.split(/ +/).slice(0, 1).concat(r.split(/ +/).slice(2, 3)))).toEqual([
        ['web-1', 'active'],
        ['web-2', 'active'],
        ['web-3', 'active'],
      ]);
      expect(new Set(rows.slice(2).map((r) => r.split(/ +/)[3]))).toEqual(new Set(hosts));

      // The group holds every host: two more cannot be placed, and nothing is claimed for them.
      const crowd = await conductor(
        'boot',
        'crowd',
        '--flavor',
        'm1.small',
        '--image',
        'cirros',
        '--az',
        az,
        '--count',
        '2',
        '--group',
        'cli-spread'
      );
      expect(crowd.code).toBe(1);
      expect(crowd.stderr).toMatch(/^NoValidHost: No valid host was found\. Filter ServerGroupAntiAffinityFilter/m);
      expect(crowd.stderr).not.toMatch(/\n\s+at /);

      const shown = await conductor('server-group', 'show', 'cli-spread', '--json');
      expect(shown.code).toBe(0);
      const group = JSON.parse(shown.stdout) as { members: string[]; hosts: string[] };
      // The three built and the two in error (Nova's buried instances are members too).
      expect(group.members).toHaveLength(5);
      expect(group.hosts).toEqual([...hosts].sort());

      const listed = await conductor('server-group', 'list');
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/^NAME +POLICY +MEMBERS +HOSTS$/m);
      expect(listed.stdout).toMatch(/^cli-spread +anti-affinity +5 +mc-cli-a, mc-cli-b, mc-cli-c$/m);

      const inUse = await conductor('server-group', 'delete', 'cli-spread');
      expect(inUse.code).toBe(1);
      expect(inUse.stderr).toMatch(/^ServerGroupInUse: Server group cli-spread still has 5 member\(s\)/m);
      const missing = await conductor('server-group', 'delete', 'no-such-group', '--json');
      expect(missing.code).toBe(1);
      expect(JSON.parse(missing.stdout)).toEqual({
        error: { type: 'ServerGroupNotFound', message: 'Server group no-such-group could not be found.' },
      });
    });

    expect(await cloud.placement.audit()).toEqual({ orphans: [], overCapacity: [] });
    const running: string[] = [];
    for await (const wf of env.client.workflow.list({ query: "ExecutionStatus = 'Running'" }))
      running.push(wf.workflowId);
    expect(running).toEqual([]);
  });
});
