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

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

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
        TEMPORAL_CLI_PATH: inject('temporalCli'),
        COMPUTE_SPAWN_SECONDS: '0.5',
        LOG_LEVEL: 'DEBUG',
        METRICS_PORT: String(metricsPort),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launcher.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    launcher.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 150_000;
    while (!output.includes('Conductor on Temporal is running')) {
      if (launcher.exitCode !== null) throw new Error(`launcher exited ${launcher.exitCode}:\n${output}`);
      if (Date.now() > deadline) throw new Error(`launcher not ready:\n${output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
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
    let runs: Array<{ status: string }> = [];
    for (let i = 0; i < 40 && runs.length < 2; i++) {
      runs = (await temporal('workflow', 'list', '--query', `WorkflowId='${childId}'`)) as Array<{ status: string }>;
      if (runs.length < 2) await new Promise((r) => setTimeout(r, 250));
    }
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

  it('stops every process on Ctrl-C', async () => {
    const exited = new Promise<number | null>((resolve) => launcher.once('exit', (code) => resolve(code)));
    launcher.kill('SIGINT');
    expect(await exited).toBe(0);
    const { stdout } = await run('ps', ['-eo', 'args']);
    expect(stdout).not.toContain(path.join(dataDir, 'data', 'temporal.db'));
  }, 60_000);
});
