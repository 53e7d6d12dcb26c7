/**
 * What bench:e2e runs against: `temporal server start-dev` in memory (no --db-filename) on free
 * loopback ports, tuned as `make start` runs it, and real worker processes: the conductor, the
 * scheduler, one compute process per host of a generated fleet (spawn time from the bench), and the
 * baselines' three workers laid out the same way. Everything is stopped by `stop()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

import type { HostSpec } from '../../src/domain/fleet';
import { SEARCH_ATTRIBUTE_CLI_ARGS } from '../../src/shared/search-attributes';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../../src/shared/task-queues';
import { DEV_SERVER_TUNING_ARGS } from '../../src/workers/dev-server';
import { PROJECT_ROOT, requireTemporalBinary } from '../../src/workers/temporal-binaries';
import { HOLLOW_COMPUTE_QUEUE, HOLLOW_SCHEDULER_QUEUE, HOLLOW_WORKFLOW_QUEUE } from './hollow-workflows';

const TaskQueueType = temporal.api.enums.v1.TaskQueueType;

/** Linux's USER_HZ: the unit of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS = 100;

export interface StackOptions {
  hosts: HostSpec[];
  spawnSeconds: number;
}

export class BenchStack {
  readonly dataDir = mkdtempSync(path.join(tmpdir(), 'bench-e2e-'));
  readonly processes: Array<{ name: string; child: ChildProcess; output: string[] }> = [];
  address = '';
  client!: Client;
  private connection?: Connection;
  private stopped = false;

  constructor(readonly options: StackOptions) {}

  async start(): Promise<void> {
    const port = await freePort();
    this.address = `127.0.0.1:${port}`;
    this.spawn('temporal', requireTemporalBinary('cli'), [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--ui-port',
      String(await freePort()),
      '--headless',
      '--log-level',
      'error',
      ...DEV_SERVER_TUNING_ARGS,
      ...SEARCH_ATTRIBUTE_CLI_ARGS.flatMap((sa) => ['--search-attribute', sa]),
    ]);
    this.connection = await connect(this.address);
    this.client = new Client({ connection: this.connection });

    const fleetFile = path.join(this.dataDir, 'fleet.json');
    writeFileSync(fleetFile, JSON.stringify({ hosts: this.options.hosts }));
    const env = {
      TEMPORAL_ADDRESS: this.address,
      DATA_DIR: this.dataDir,
      FLEET_FILE: fleetFile,
      COMPUTE_SPAWN_SECONDS: String(this.options.spawnSeconds),
      // The reconciler's schedule would add its own load to the figures.
      RECONCILE_PERIOD_SECONDS: '0',
      LOG_LEVEL: 'WARN',
    };
    this.worker('conductor', 'src/workers/conductor-worker.ts', env);
    this.worker('scheduler', 'src/workers/scheduler-worker.ts', env);
    await this.waitForPollers([{ queue: SCHEDULER_TASK_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY }]);
    for (const host of this.options.hosts)
      this.worker(host.name, 'src/workers/compute-worker.ts', { ...env, COMPUTE_HOST: host.name });
    for (const role of ['workflows', 'scheduler', 'compute'])
      this.worker(`hollow-${role}`, 'bench/e2e/hollow-worker.ts', { ...env, HOLLOW_ROLE: role });
    await this.waitForPollers([
      { queue: CONDUCTOR_TASK_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW },
      ...this.options.hosts.map((h) => ({
        queue: computeTaskQueue(h.name),
        type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      })),
      { queue: HOLLOW_WORKFLOW_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW },
      { queue: HOLLOW_SCHEDULER_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY },
      { queue: HOLLOW_COMPUTE_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY },
    ]);
    // Every host registered with placement (each compute worker does it as it starts).
    for (const host of this.options.hosts) await this.client.workflow.getHandle(`register-host-${host.name}`).result();
  }

  /**
   * CPU time (user + system, ms) each process has used so far, by name (Linux /proc; empty elsewhere):
   * two readings around a window say where its CPU went.
   */
  cpuTimes(): Map<string, number> {
    const times = new Map<string, number>();
    for (const { name, child } of this.processes) {
      try {
        // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        times.set(name, ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS);
      } catch {
        // Not Linux, or the process has exited.
      }
    }
    return times;
  }

  /** The injected faults of one host (the fake hypervisor re-reads the file at each spawn). */
  setFaults(host: string, faults: object): void {
    writeFileSync(path.join(this.dataDir, 'compute', host, 'faults.json'), JSON.stringify(faults));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.connection?.close().catch(() => undefined);
    const exited = (p: { child: ChildProcess }) =>
      new Promise<void>((resolve) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
        p.child.once('exit', () => resolve());
        p.child.kill('SIGTERM');
        setTimeout(() => p.child.kill('SIGKILL'), 10_000).unref();
      });
    await Promise.all(this.processes.filter((p) => p.name !== 'temporal').map(exited));
    await Promise.all(this.processes.filter((p) => p.name === 'temporal').map(exited));
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private worker(name: string, script: string, env: Record<string, string>): void {
    // BENCH_CPU_PROF=<process names, comma-separated> (conductor, scheduler, bench-1, hollow-workflows …): V8 CPU profiles of
    // that process, one per thread (the workflow thread apart), in test-artifacts/bench-profiles/.
    const profile = (process.env.BENCH_CPU_PROF ?? '').split(',').includes(name)
      ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROJECT_ROOT, 'test-artifacts', 'bench-profiles')}`]
      : [];
    this.spawn(name, process.execPath, [...profile, '--import', 'tsx', path.join(PROJECT_ROOT, script)], env);
  }

  private spawn(name: string, command: string, args: string[], env: Record<string, string> = {}): void {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    const keep = (chunk: Buffer) => {
      output.push(chunk.toString());
      if (output.length > 200) output.shift();
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('exit', (code, signal) => {
      if (code !== 0 && code !== null && !this.stopped)
        console.error(`bench: ${name} exited (${signal ?? code}):\n${output.join('').slice(-2000)}`);
    });
    this.processes.push({ name, child, output });
  }

  private async waitForPollers(queues: Array<{ queue: string; type: number }>): Promise<void> {
    const deadline = Date.now() + 180_000;
    for (const { queue, type } of queues)
      for (;;) {
        const res = await this.connection!.workflowService.describeTaskQueue({
          namespace: 'default',
          taskQueue: { name: queue },
          taskQueueType: type,
        });
        if ((res.pollers ?? []).length > 0) break;
        if (Date.now() > deadline) throw new Error(`bench: no worker polls ${queue}`);
        await new Promise((r) => setTimeout(r, 250));
      }
  }
}

async function connect(address: string): Promise<Connection> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await Connection.connect({ address, connectTimeout: 2_000 });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
