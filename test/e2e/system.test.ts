/**
 * The system as `npm start` runs it: the launcher starts `temporal server start-dev` (with its Web UI),
 * the conductor, the scheduler and one compute worker process per host, and the stock `temporal` CLI
 * drives it. A small two-host fleet on private ports and a temporary data folder.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { Client, Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';

import { freePort } from '../helpers/ports';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');

describe('the system started by npm start', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'conductor-e2e-'));
  let launcher: ChildProcess;
  let output = '';
  let port = 0;
  let uiPort = 0;
  let metricsPort = 0;

  /** The stock `temporal` CLI against this system; JSON output parsed. */
  async function temporal(...args: string[]): Promise<unknown> {
    const { stdout } = await run(inject('temporalCli'), [...args, '--address', `127.0.0.1:${port}`, '-o', 'json'], {
      maxBuffer: 16 * 1024 * 1024,
    });
    return JSON.parse(stdout) as unknown;
  }

  beforeAll(async () => {
    [port, uiPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const fleetFile = path.join(dataDir, 'fleet.json');
    writeFileSync(
      fleetFile,
      JSON.stringify({
        hosts: [
          { name: 'e2e-a', availabilityZone: 'az1', vcpus: 16, memoryMb: 65536, diskGb: 1000 },
          { name: 'e2e-b', availabilityZone: 'az1', vcpus: 8, memoryMb: 32768, diskGb: 500 },
        ],
      })
    );
    launcher = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'launcher.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATA_DIR: path.join(dataDir, 'data'),
        FLEET_FILE: fleetFile,
        TEMPORAL_PORT: String(port),
        TEMPORAL_UI_PORT: String(uiPort),
        API_PORT: String(await freePort()),
        TEMPORAL_CLI_PATH: inject('temporalCli'),
        COMPUTE_SPAWN_SECONDS: '0.5',
        LOG_LEVEL: 'DEBUG',
        METRICS_PORT: String(metricsPort),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launcher.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    launcher.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await vi.waitFor(
      () => {
        if (launcher.exitCode !== null) throw new Error(`launcher exited ${launcher.exitCode}:\n${output}`);
        if (!output.includes('Conductor on Temporal is running')) throw new Error(`launcher not ready:\n${output}`);
      },
      { timeout: 150_000, interval: 250 }
    );
  }, 180_000);

  afterAll(() => {
    if (launcher && launcher.exitCode === null) launcher.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves the Web UI and has a live poller on every queue', async () => {
    const ui = await fetch(`http://127.0.0.1:${uiPort}/`);
    expect(ui.status).toBe(200);
    expect(output).toContain(`http://localhost:${uiPort}`);
    for (const queue of ['compute-e2e-a', 'compute-e2e-b', 'scheduler', 'conductor']) {
      const described = (await temporal('task-queue', 'describe', '--task-queue', queue)) as { pollers?: unknown[] };
      expect(described.pollers?.length ?? 0, queue).toBeGreaterThan(0);
    }
  });

  it('completes a build started with the stock temporal CLI', async () => {
    const result = (await temporal(
      'workflow',
      'execute',
      '--type',
      'buildInstance',
      '--task-queue',
      'conductor',
      '--workflow-id',
      'build-e2e-1',
      '--input',
      JSON.stringify({ name: 'e2e-1', flavor: 'm1.small', image: 'cirros' })
    )) as { status: string; result: { vmState: string; host: string; taskState: null; powerState: string } };
    expect(result.status).toBe('COMPLETED');
    expect(result.result).toMatchObject({
      vmState: 'active',
      taskState: null,
      powerState: 'running',
      host: 'e2e-a',
      availabilityZone: 'az1',
    });
  });

  it('shows every placement attempt of a build whose first host fails', async () => {
    mkdirSync(path.join(dataDir, 'data', 'compute', 'e2e-a'), { recursive: true });
    writeFileSync(
      path.join(dataDir, 'data', 'compute', 'e2e-a', 'faults.json'),
      JSON.stringify({ spawn: { failNext: 1 } })
    );
    const result = (await temporal(
      'workflow',
      'execute',
      '--type',
      'buildInstance',
      '--task-queue',
      'conductor',
      '--workflow-id',
      'build-e2e-2',
      '--input',
      JSON.stringify({ name: 'e2e-2', flavor: 'm1.small', image: 'cirros' })
    )) as { result: { instanceId: string; host: string; vmState: string } };
    expect(result.result).toMatchObject({ vmState: 'active', host: 'e2e-b' });

    const progress = (await temporal('workflow', 'query', '--workflow-id', 'build-e2e-2', '--name', 'getProgress')) as {
      queryResult: Array<{ attempt: number; hostsTried: string[] }>;
    };
    expect(progress.queryResult[0]).toMatchObject({ attempt: 2, hostsTried: ['e2e-a', 'e2e-b'] });

    const childId = `place-build-${result.result.instanceId}`;
    const runs = await vi.waitFor(
      async () => {
        const listed = (await temporal('workflow', 'list', '--query', `WorkflowId='${childId}'`)) as Array<{
          status: string;
        }>;
        expect(listed.length).toBeGreaterThanOrEqual(2);
        return listed;
      },
      { timeout: 10_000, interval: 250 }
    );
    expect(runs.map((r) => r.status).sort()).toEqual([
      'WORKFLOW_EXECUTION_STATUS_COMPLETED',
      'WORKFLOW_EXECUTION_STATUS_FAILED',
    ]);
    const described = (await temporal('workflow', 'describe', '--workflow-id', childId)) as {
      workflowExecutionInfo: { parentExecution?: { workflowId: string } };
    };
    expect(described.workflowExecutionInfo.parentExecution?.workflowId).toBe('build-e2e-2');
  });

  it('logs JSON lines carrying workflow and activity ids, and exports Prometheus metrics', async () => {
    const computeLines = output
      .split('\n')
      .filter((l) => l.startsWith('e2e-a '))
      .map((l) => l.slice(l.indexOf('| ') + 2));
    const parsed = computeLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.length).toBeGreaterThan(0);
    expect(parsed.every((l) => l.process === 'compute-e2e-a' && typeof l.ts === 'string')).toBe(true);
    expect(parsed.find((l) => l.activityType === 'spawnInstance')).toMatchObject({
      workflowId: expect.stringMatching(/^place-build-/) as unknown,
      activityId: expect.any(String) as unknown,
      taskQueue: 'compute-e2e-a',
    });
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^temporal_workflow_completed/m);
  });

  it('resizes with confirm (an Update), stops, and lists every operation of the instance by InstanceId', async () => {
    const built = (await temporal('workflow', 'query', '--workflow-id', 'build-e2e-1', '--name', 'getProgress')) as {
      queryResult: Array<{ instanceId: string }>;
    };
    const instanceId = built.queryResult[0]!.instanceId;
    const resizeId = `resize-${instanceId}-e2e`;
    await temporal(
      'workflow',
      'start',
      '--type',
      'resizeMigrate',
      '--task-queue',
      'conductor',
      '--workflow-id',
      resizeId,
      '--input',
      JSON.stringify({ instanceId, flavor: 'm1.medium' })
    );
    await vi.waitFor(
      async () => {
        const q = (await temporal('workflow', 'query', '--workflow-id', resizeId, '--name', 'getProgress').catch(
          () => undefined
        )) as { queryResult: Array<{ vmState: string }> } | undefined;
        expect(q?.queryResult[0]?.vmState).toBe('resized');
      },
      { timeout: 30_000, interval: 250 }
    );
    const confirmed = (await temporal(
      'workflow',
      'update',
      'execute',
      '--workflow-id',
      resizeId,
      '--name',
      'confirmResize'
    )) as {
      result: { decision: string; instance: { host: string; flavor: string; vmState: string } };
    };
    expect(confirmed.result).toMatchObject({
      decision: 'confirmed',
      instance: { host: 'e2e-b', flavor: 'm1.medium', vmState: 'active' },
    });

    const stopped = (await temporal(
      'workflow',
      'execute',
      '--type',
      'stop',
      '--task-queue',
      'conductor',
      '--workflow-id',
      `stop-${instanceId}-e2e`,
      '--input',
      JSON.stringify({ instanceId, shutdownTimeoutSeconds: 5 })
    )) as { status: string; result: { vmState: string; powerState: string; host: string } };
    expect(stopped).toMatchObject({
      status: 'COMPLETED',
      result: { vmState: 'stopped', powerState: 'shutdown', host: 'e2e-b' },
    });

    const ids = await vi.waitFor(
      async () => {
        const listed = (await temporal('workflow', 'list', '--query', `InstanceId='${instanceId}'`)) as Array<{
          execution: { workflowId: string };
        }>;
        const found = [...new Set(listed.map((w) => w.execution.workflowId))];
        expect(found.length).toBeGreaterThanOrEqual(4);
        return found;
      },
      { timeout: 10_000, interval: 250 }
    );
    // The build, its placement attempt, the resize (and its prep attempt child), the stop.
    expect(ids).toEqual(
      expect.arrayContaining(['build-e2e-1', `place-build-${instanceId}`, resizeId, `stop-${instanceId}-e2e`])
    );
    expect(ids.filter((id) => !/^(build-e2e-1|place-build-|place-resize-|resize-|stop-)/.test(id))).toEqual([]);
    const vmStates = (await temporal(
      'workflow',
      'list',
      '--query',
      `InstanceId='${instanceId}' AND VmState='stopped'`
    )) as Array<{
      execution: { workflowId: string };
    }>;
    expect(vmStates.map((w) => w.execution.workflowId)).toEqual([`stop-${instanceId}-e2e`]);

    // The README's first command again, same workflow id: the instance it made, not a second one.
    const again = (await temporal(
      'workflow',
      'execute',
      '--type',
      'buildInstance',
      '--task-queue',
      'conductor',
      '--workflow-id',
      'build-e2e-1',
      '--input',
      JSON.stringify({ name: 'e2e-1', flavor: 'm1.small', image: 'cirros' })
    )) as { status: string; result: { instanceId: string; vmState: string } };
    expect(again).toMatchObject({ status: 'COMPLETED', result: { instanceId, vmState: 'stopped' } });

    const deleted = (await temporal(
      'workflow',
      'execute',
      '--type',
      'deleteInstance',
      '--task-queue',
      'conductor',
      '--workflow-id',
      `delete-${instanceId}-e2e`,
      '--input',
      JSON.stringify({ instanceId })
    )) as { status: string; result: { vmState: string; taskState: string | null } };
    expect(deleted).toMatchObject({ status: 'COMPLETED', result: { vmState: 'deleted', taskState: null } });
  });

  it('live-migrates an instance with the stock temporal CLI, watched with getProgress, and leaves nothing behind', async () => {
    const built = (await temporal(
      'workflow',
      'execute',
      '--type',
      'buildInstance',
      '--task-queue',
      'conductor',
      '--workflow-id',
      'build-e2e-live',
      '--input',
      JSON.stringify({ name: 'e2e-live', flavor: 'm1.tiny', image: 'cirros' })
    )) as { result: { instanceId: string; host: string } };
    const { instanceId, host: source } = built.result;
    const liveId = `live-migrate-${instanceId}-e2e`;
    await temporal(
      'workflow',
      'start',
      '--type',
      'liveMigrate',
      '--task-queue',
      'conductor',
      '--workflow-id',
      liveId,
      '--input',
      JSON.stringify({ instanceId })
    );
    const progress = (await temporal('workflow', 'query', '--workflow-id', liveId, '--name', 'getProgress')) as {
      queryResult: Array<{ operation: string; instanceId: string }>;
    };
    expect(progress.queryResult[0]).toMatchObject({ operation: 'liveMigrate', instanceId });
    const result = (await temporal('workflow', 'result', '--workflow-id', liveId)) as {
      status: string;
      result: { vmState: string; host: string; liveMigration: { migration: { status: string }; downtimeMs: number } };
    };
    expect(result.status).toBe('COMPLETED');
    expect(result.result).toMatchObject({ vmState: 'active', liveMigration: { migration: { status: 'completed' } } });
    expect(result.result.host).not.toBe(source);
    expect(result.result.liveMigration.downtimeMs).toBeGreaterThan(0);
    const running = (await temporal(
      'workflow',
      'list',
      '--query',
      `InstanceId='${instanceId}' AND ExecutionStatus='Running'`
    )) as unknown[];
    expect(running).toEqual([]);
  });

  it('drives the same system with the conductor CLI: tables or JSON, live progress, typed failures, exit codes', async () => {
    const cliEnv = {
      ...process.env,
      TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
      DATA_DIR: path.join(dataDir, 'data'),
      LOG_LEVEL: 'WARN',
    };
    const conductor = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'cli', 'conductor.ts'), ...args], {
        cwd: ROOT,
        env: cliEnv,
      }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (err: { code: number; stdout: string; stderr: string }) => ({
          code: err.code,
          stdout: err.stdout,
          stderr: err.stderr,
        })
      );

    const boot = await conductor('boot', 'cli-vm', '--flavor', 'm1.tiny', '--image', 'cirros', '--json');
    expect(boot.code).toBe(0);
    const booted = JSON.parse(boot.stdout) as { instanceId: string; vmState: string; host: string };
    expect(booted).toMatchObject({ vmState: 'active' });
    expect(boot.stderr).toMatch(/spawning on e2e-/);

    const table = await conductor('list');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+STATUS/);
    expect(table.stdout).toMatch(new RegExp(`${booted.instanceId}\\s+cli-vm\\s+active`));

    const show = JSON.parse((await conductor('show', 'cli-vm', '--json')).stdout) as {
      actions: Array<{ action: string }>;
    };
    expect(show.actions.map((a) => a.action)).toEqual(['create']);

    const resized = await conductor('resize', 'cli-vm', '--flavor', 'm1.small', '--json');
    expect(resized.code).toBe(0);
    expect(JSON.parse(resized.stdout)).toMatchObject({ vmState: 'resized', flavor: 'm1.small' });
    const confirmed = await conductor('confirm', 'cli-vm', '--json');
    expect(confirmed.code).toBe(0);
    expect(JSON.parse(confirmed.stdout)).toMatchObject({ vmState: 'active', flavor: 'm1.small', taskState: null });

    const stopped = await conductor('stop', booted.instanceId, '--json');
    expect(stopped.code).toBe(0);
    expect(JSON.parse(stopped.stdout)).toMatchObject({ vmState: 'stopped' });
    const again = await conductor('stop', booted.instanceId);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^InstanceInvalidState: Cannot 'stop' instance .* while it is in vmState stopped$/m);
    expect(again.stderr).not.toMatch(/\n\s+at /);

    const started = await conductor('start', 'cli-vm', '--json');
    expect(started.code).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({ vmState: 'active', powerState: 'running' });

    // Cold migration, reverted: back on its host with its flavor.
    const before = JSON.parse((await conductor('show', 'cli-vm', '--json')).stdout) as { host: string; flavor: string };
    const migrated = await conductor('migrate', 'cli-vm', '--json');
    expect(migrated.code).toBe(0);
    expect(JSON.parse(migrated.stdout)).toMatchObject({ vmState: 'resized', flavor: before.flavor });
    const reverted = await conductor('revert', 'cli-vm', '--json');
    expect(reverted.code).toBe(0);
    expect(JSON.parse(reverted.stdout)).toMatchObject({ vmState: 'active', host: before.host, flavor: before.flavor });
    const noDecision = await conductor('confirm', 'cli-vm');
    expect(noDecision.code).toBe(1);
    expect(noDecision.stderr).toMatch(
      /^InstanceInvalidState: Instance .* has no resize or migration waiting for a decision\.$/m
    );

    const rebuilt = await conductor('rebuild', 'cli-vm', '--image', 'ubuntu-24.04', '--json');
    expect(rebuilt.code).toBe(0);
    expect(JSON.parse(rebuilt.stdout)).toMatchObject({ vmState: 'active', image: 'ubuntu-24.04', host: before.host });
    const live = await conductor('live-migrate', 'cli-vm', '--json');
    expect(live.code).toBe(0);
    expect(JSON.parse(live.stdout)).toMatchObject({ vmState: 'active', taskState: null });
    expect((JSON.parse(live.stdout) as { host: string }).host).not.toBe(before.host);
    expect(live.stderr).toMatch(/liveMigrate live-migrate-/);
    const noCopy = await conductor('live-migrate-abort', 'cli-vm');
    expect(noCopy.code).toBe(1);
    expect(noCopy.stderr).toMatch(/^InstanceInvalidState: Instance .* has no live migration under way/m);
    // Evacuation needs the host down; with its worker running it is refused, typed.
    const evacuate = await conductor('evacuate', 'cli-vm');
    expect(evacuate.code).toBe(1);
    expect(evacuate.stderr).toMatch(/^ComputeServiceInUse: /m);

    const bad = await conductor('boot', 'bad-vm', '--flavor', 'm9.huge', '--image', 'cirros');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /^InvalidRequest: Invalid request: flavor: unknown flavor 'm9.huge' \(valid: m1.tiny, m1.small, .*m1.xlarge.*\)$/m
    );

    const hosts = JSON.parse((await conductor('hosts', '--json')).stdout) as Array<{ host: string; up: boolean }>;
    expect(hosts.map((h) => [h.host, h.up])).toEqual([
      ['e2e-a', true],
      ['e2e-b', true],
    ]);
    const deleted = await conductor('delete', 'cli-vm', '--json');
    expect(deleted.code).toBe(0);
    expect(JSON.parse(deleted.stdout)).toMatchObject({ instanceId: booted.instanceId, vmState: 'deleted' });
    const audit = await conductor('audit');
    expect(audit).toMatchObject({ code: 0 });
    expect(audit.stdout).toContain('no orphaned allocations, no host over capacity');
  });

  it('replays every history the system recorded against the current workflow code (determinism guard)', async () => {
    const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    try {
      const client = new Client({ connection });
      const histories = client.workflow.list({ query: 'ExecutionStatus != "Running"' }).intoHistories();
      const types = new Set<string>();
      const failures: string[] = [];
      for await (const result of Worker.runReplayHistories(
        { workflowBundle: { codePath: inject('workflowBundlePath') } },
        histories
      )) {
        if (result.error) failures.push(`${result.workflowId}: ${String(result.error)}`);
        types.add(result.workflowId.replace(/-.*/, ''));
      }
      expect(failures).toEqual([]);
      // Builds, their attempts, resizes, stops, starts, rebuilds, and the hosts' registrations.
      expect([...types].sort()).toEqual(
        expect.arrayContaining(['build', 'delete', 'live', 'place', 'rebuild', 'register', 'resize', 'start', 'stop'])
      );
    } finally {
      await connection.close();
    }
  });

  it('stops every process on Ctrl-C', async () => {
    const exited = new Promise<number | null>((resolve) => launcher.once('exit', (code) => resolve(code)));
    launcher.kill('SIGINT');
    expect(await exited).toBe(0);
    const { stdout } = await run('ps', ['-eo', 'args']);
    expect(stdout).not.toContain(path.join(dataDir, 'data', 'temporal.db'));
  }, 60_000);
});
