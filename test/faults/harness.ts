/**
 * Shared machinery of the fault suite: a dev server and worker processes this test starts one by one
 * (so it can kill -9, SIGSTOP/SIGCONT and restart any of them), the builds it drives, and an invariant
 * checker that reads the store, the compute hosts' guest files and Temporal's visibility on its
 * own (not through the audit code), then asks `npm run audit -- --live --json` whether it agrees.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { Connection } from '@temporalio/client';
import { Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, TerminatedFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { expect, inject, vi } from 'vitest';

import { readHostGuestsSync } from '../../src/compute/fake/guest-files';
import type { HostSpec } from '../../src/domain/fleet';
import { SEARCH_ATTRIBUTE_CLI_ARGS } from '../../src/shared/search-attributes';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../../src/shared/task-queues';
import { openStore } from '../../src/store/db';
import { DEV_SERVER_TUNING_ARGS } from '../../src/workers/dev-server';
import { createInstanceRepository } from '../../src/store/instances';
import { freePort } from '../helpers/ports';
import { checkInvariants, type Problem } from './invariants';
import { connectWhenServing, Proc } from './process';

const ROOT = path.resolve(__dirname, '..', '..');

export { Proc } from './process';

/**
 * Waits (vi.waitFor, every 250 ms) until `probe` returns a value other than undefined, and returns it;
 * after `timeoutMs` fails naming what it waited for, with the probe's last error.
 */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  try {
    return await vi.waitFor(
      async () => {
        const value = await probe();
        if (value === undefined) throw new Error('not yet');
        return value;
      },
      { timeout: timeoutMs, interval: 250 }
    );
  } catch (err) {
    throw new Error(`timed out after ${timeoutMs} ms: ${what} (${err instanceof Error ? err.message : String(err)})`, {
      cause: err,
    });
  }
}

/** Short compute timeouts for every operation the suite starts (the input schemas allow them). */
export const FAST_TIMEOUTS = { scheduleToStartSeconds: 5, heartbeatSeconds: 5, longStepSeconds: 60 };

export type Role = 'conductor' | 'scheduler' | 'compute';

/** A dev server on free loopback ports with its own data folder, and the workers of one fleet. */
export class Stack {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'conductor-faults-'));
  readonly dataDir = path.join(this.dir, 'data');
  readonly fleetFile = path.join(this.dir, 'fleet.json');
  port = 0;
  server!: Proc;
  readonly workers = new Map<string, Proc>();
  connection?: Connection;
  private readonly oldConnections: Connection[] = [];
  client!: Client;
  /**
   * Extra environment of the worker processes, set before they start. The reconciler's Schedule is off
   * unless a scenario asks for it (RECONCILE_PERIOD_SECONDS), so the other scenarios see only their faults.
   */
  workerExtraEnv: NodeJS.ProcessEnv = {};

  constructor(
    readonly hosts: HostSpec[],
    readonly spawnSeconds = 3
  ) {
    mkdirSync(this.dataDir, { recursive: true });
    writeFileSync(this.fleetFile, JSON.stringify({ hosts }));
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts the server (same db file on every start, tuned as `make start` runs it) and connects the client. */
  async startServer(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const uiPort = await freePort();
    const args = ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(this.port)];
    args.push('--ui-port', String(uiPort), '--db-filename', path.join(this.dir, 'temporal.db'), '--log-level', 'warn');
    args.push(...SEARCH_ATTRIBUTE_CLI_ARGS.flatMap((sa) => ['--search-attribute', sa]), ...DEV_SERVER_TUNING_ARGS);
    this.server = new Proc('temporal', inject('temporalCli'), args, process.env).start();
    // An earlier connection stays open until dispose: operations awaited through it resume on the same address.
    if (this.connection) this.oldConnections.push(this.connection);
    this.connection = await connectWhenServing(this.server, this.address);
    this.client = new Client({ connection: this.connection });
  }

  protected workerEnv(host?: string): NodeJS.ProcessEnv {
    return {
      ...process.env,
      DATA_DIR: this.dataDir,
      FLEET_FILE: this.fleetFile,
      TEMPORAL_ADDRESS: this.address,
      COMPUTE_SPAWN_SECONDS: String(this.spawnSeconds),
      LOG_LEVEL: 'INFO',
      RECONCILE_PERIOD_SECONDS: '0',
      // The bundle the global setup built from these sources: a conductor (re)start loads it, no webpack.
      WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
      ...this.workerExtraEnv,
      ...(host ? { COMPUTE_HOST: host } : {}),
    };
  }

  /** The worker process of a role (compute: `host`), created on first use. */
  worker(role: Role, host?: string): Proc {
    const name = host ?? role;
    let proc = this.workers.get(name);
    if (!proc) {
      const script = path.join(ROOT, 'src', 'workers', `${role}-worker.ts`);
      proc = new Proc(name, process.execPath, ['--import', 'tsx', script], this.workerEnv(host));
      this.workers.set(name, proc);
    }
    return proc;
  }

  /** Starts a worker and waits until it serves: a compute worker once registered with placement. */
  async startWorker(role: Role, host?: string): Promise<void> {
    const proc = this.worker(role, host).start();
    await proc.waitFor(role === 'compute' ? 'registered with placement' : '"state":"RUNNING"', 120_000);
  }

  /** Server, conductor, scheduler, then every compute host (registration goes through the scheduler). */
  async startAll(): Promise<void> {
    await this.startServer();
    await Promise.all([this.startWorker('conductor'), this.startWorker('scheduler')]);
    await Promise.all(this.hosts.map((h) => this.startWorker('compute', h.name)));
    await this.waitForPollers();
  }

  async waitForPollers(): Promise<void> {
    const T = temporal.api.enums.v1.TaskQueueType;
    const queues = [
      { name: CONDUCTOR_TASK_QUEUE, type: T.TASK_QUEUE_TYPE_WORKFLOW },
      { name: SCHEDULER_TASK_QUEUE, type: T.TASK_QUEUE_TYPE_ACTIVITY },
      ...this.hosts.map((h) => ({ name: computeTaskQueue(h.name), type: T.TASK_QUEUE_TYPE_ACTIVITY })),
    ];
    for (const q of queues)
      await until(`a poller on ${q.name}`, 60_000, async () => {
        const res = await this.client.workflowService.describeTaskQueue({
          namespace: 'default',
          taskQueue: { name: q.name },
          taskQueueType: q.type,
        });
        return (res.pollers ?? []).length > 0 ? true : undefined;
      });
  }

  /** Kills every process (workers first) with `sig`; SIGCONT first so a frozen one dies too. */
  async stopAll(sig: NodeJS.Signals = 'SIGKILL', serverSig: NodeJS.Signals = sig): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.signal(sig)));
    await this.server?.signal(serverSig);
  }

  /** afterAll: every process gone, the client closed, the data folder removed (kept with KEEP_FAULTS_DIR). */
  async dispose(): Promise<void> {
    await this.stopAll('SIGKILL').catch(() => undefined);
    for (const c of [...this.oldConnections, this.connection]) await c?.close().catch(() => undefined);
    if (!process.env.KEEP_FAULTS_DIR) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Where the conductor store is: the SQLite file in the data folder (a cluster: PostgreSQL). */
  storeOptions(): { sqlitePath?: string; databaseUrl?: string } {
    return { sqlitePath: path.join(this.dataDir, 'conductor.sqlite') };
  }

  /** Every process's output tail, for a failed assertion. */
  logs(lines = 40): string {
    return [this.server, ...this.workers.values()]
      .filter(Boolean)
      .map((p) => `===== ${p.name}\n${p.output.split('\n').slice(-lines).join('\n')}`)
      .join('\n');
  }

  writeFaults(host: string, faults: unknown): void {
    mkdirSync(path.join(this.dataDir, 'compute', host), { recursive: true });
    writeFileSync(path.join(this.dataDir, 'compute', host, 'faults.json'), JSON.stringify(faults));
  }

  /** The keys of a host's guests in its files (instance ids, and moved-aside copies); none when it has none. */
  guests(host: string): string[] {
    return Object.keys(readHostGuestsSync(path.join(this.dataDir, 'compute', host)));
  }

  /** Ids of the workflows visibility lists as running. */
  async runningWorkflows(): Promise<string[]> {
    const ids: string[] = [];
    for await (const w of this.client.workflow.list({ query: 'ExecutionStatus = "Running"' })) ids.push(w.workflowId);
    return ids;
  }

  /** Waits until no workflow runs (visibility); returns the seconds it took. */
  async waitAllTerminal(boundMs: number): Promise<void> {
    await until('every workflow terminal', boundMs, async () => {
      const running = await this.runningWorkflows();
      // Describe each: visibility lags behind the workflow's own state.
      const open: string[] = [];
      for (const id of running)
        if ((await this.client.workflow.getHandle(id).describe()).status.name === 'RUNNING') open.push(id);
      return open.length === 0 ? true : undefined;
    }).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${this.logs()}`);
    });
  }

  /** `npm run audit -- --live --json` against this stack: exit code and parsed report. */
  async audit(): Promise<{
    code: number;
    report: { clean: boolean; findings: Array<{ kind: string; subject: string }> };
  }> {
    const script = path.join(ROOT, 'src', 'cli', 'audit.ts');
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', script, '--live', '--json'],
        { cwd: ROOT, env: { ...this.workerEnv(), LOG_LEVEL: 'WARN' }, timeout: 90_000 },
        (err, stdout, stderr) => {
          const code = err ? ((err as { code?: number }).code ?? 1) : 0;
          try {
            resolve({ code, report: JSON.parse(stdout) as never });
          } catch {
            reject(new Error(`audit exited ${code}: ${stderr}${stdout}`));
          }
        }
      );
    });
  }
}

/** A fleet of `n` hosts named `<prefix>-1…n`, each `vcpus`/`memoryMb` (m1.small: 1 vCPU, 2048 MB, 20 GB). */
export function fleet(prefix: string, n: number, size: Partial<HostSpec> = {}): HostSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `${prefix}-${i + 1}`,
    availabilityZone: 'az1',
    vcpus: 16,
    memoryMb: 32768,
    diskGb: 1000,
    ...size,
  })) as HostSpec[];
}

/** Waits until one of these operations reports a task state (e.g. 'spawning') on a host; returns the host. */
export async function waitForTaskState(stack: Stack, workflowIds: string[], taskState: string, timeoutMs = 60_000) {
  return until(`one of ${workflowIds.length} operations in ${taskState}`, timeoutMs, async () => {
    for (const id of workflowIds) {
      const p = await stack.client.workflow
        .getHandle(id)
        .query<{ taskState: string | null; host: string | null }>('getProgress')
        .catch(() => undefined);
      if (p?.taskState === taskState && p.host) return { workflowId: id, host: p.host };
    }
    return undefined;
  });
}

// ---------------------------------------------------------------------------------------------
// Builds and figures
// ---------------------------------------------------------------------------------------------

export interface Outcome {
  workflowId: string;
  /** 'ok' or the failure type (ApplicationFailure type, 'Terminated', or the error's name). */
  result: string;
  instanceId?: string;
  host?: string | null;
  seconds: number;
}

/** The failure type of a workflow's failure. */
export function failureType(err: unknown): string {
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  if (cause instanceof ApplicationFailure) return cause.type ?? 'ApplicationFailure';
  if (cause instanceof TerminatedFailure) return 'Terminated';
  return cause instanceof Error ? cause.name : String(cause);
}

/** Starts a workflow on the conductor queue; its outcome never rejects. */
export async function startOperation(stack: Stack, type: string, workflowId: string, input: object): Promise<Started> {
  const t0 = Date.now();
  const handle = await stack.client.workflow.start(type, {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId,
    args: [input],
  });
  const done = handle.result().then(
    (r: { instanceId?: string; host?: string | null }) => ({
      workflowId,
      result: 'ok',
      instanceId: r.instanceId,
      host: r.host,
      seconds: (Date.now() - t0) / 1000,
    }),
    (err: unknown) => ({ workflowId, result: failureType(err), seconds: (Date.now() - t0) / 1000 })
  );
  return { workflowId, done };
}

/** A started operation: its workflow id, and its outcome when it ends. */
export interface Started {
  workflowId: string;
  done: Promise<Outcome>;
}

let buildSeq = 0;
/** Starts `count` builds of m1.small (short compute timeouts), named `<prefix>-<n>`. */
export async function startBuilds(stack: Stack, count: number, prefix: string, extra: object = {}): Promise<Started[]> {
  const started: Started[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}-${++buildSeq}`;
    const input = { name, flavor: 'm1.small', image: 'cirros', timeouts: FAST_TIMEOUTS, ...extra };
    const workflowId = `build-${name}`;
    started.push(await startOperation(stack, 'buildInstance', workflowId, input));
  }
  return started;
}

/** The same operations, their outcomes awaited afresh through the current client (after a server restart). */
export function reattach(stack: Stack, started: readonly Started[]): Started[] {
  return started.map(({ workflowId }) => ({
    workflowId,
    done: stack.client.workflow
      .getHandle(workflowId)
      .result()
      .then(
        (r: { instanceId?: string; host?: string | null }) => ({ workflowId, result: 'ok', ...r, seconds: 0 }),
        (err: unknown) => ({ workflowId, result: failureType(err), seconds: 0 })
      ),
  }));
}

/** Every outcome. */
export const outcomes = (started: readonly Started[]): Promise<Outcome[]> => Promise.all(started.map((s) => s.done));

/** Placement attempts beyond the first, from the store: compute_spawn events of each instance's create action. */
export async function reschedules(stack: Stack): Promise<number> {
  const store = await openStore(stack.storeOptions());
  try {
    const instances = createInstanceRepository(store);
    let total = 0;
    for (const i of await instances.list()) {
      const spawns = (await instances.listActions(i.instanceId))
        .filter((a) => a.action === 'create')
        .flatMap((a) => a.events)
        .filter((e) => e.event === 'compute_spawn').length;
      total += Math.max(0, spawns - 1);
    }
    return total;
  } finally {
    await store.close();
  }
}

/**
 * A scenario's summary line (operation, fault, outcome, seconds from the fault to stable), logged with the
 * `[scenario]` mark that test/faults/summary-reporter.ts collects and prints as the run's last table.
 */
export function reportScenario(s: { operation: string; fault: string; outcome: Outcome | string; seconds: number }) {
  const outcome = typeof s.outcome === 'string' ? s.outcome : s.outcome.result;
  const line = `${s.operation} | ${s.fault} | ${outcome} | ${s.seconds.toFixed(1)} s`;
  console.log(`${SCENARIO_MARK}${line}`);
  return line;
}
export const SCENARIO_MARK = '[scenario] ';

/** The scenario's one line of figures. */
export async function figures(stack: Stack, scenario: string, builds: Outcome[], t0: number): Promise<string> {
  const failed = new Map<string, number>();
  for (const b of builds) if (b.result !== 'ok') failed.set(b.result, (failed.get(b.result) ?? 0) + 1);
  const byType = [...failed].map(([t, n]) => `${t}=${n}`).join(' ') || 'none';
  const line =
    `[faults] ${scenario}: builds started ${builds.length}, succeeded ${builds.filter((b) => b.result === 'ok').length}, ` +
    `failed ${builds.length - builds.filter((b) => b.result === 'ok').length} (${byType}), ` +
    `reschedules ${await reschedules(stack)}, all terminal after ${((Date.now() - t0) / 1000).toFixed(1)} s`;
  console.log(line);
  return line;
}

/**
 * After a scenario: every workflow terminal within `boundMs`, then the independent checker and the
 * live audit both report exactly `expected` (nothing, unless told), the audit exiting 0 (or 3 with
 * findings). Problems of a kind in `tolerate` (a known bug, named by the caller) are allowed, but the
 * audit must report exactly the same ones; they are returned.
 */
export async function assertConsistent(
  stack: Stack,
  expected: Array<Pick<Problem, 'kind' | 'subject'>> = [],
  { boundMs = 60_000, tolerate = [] as Array<Problem['kind']> } = {}
): Promise<Problem[]> {
  await stack.waitAllTerminal(boundMs);
  const running = new Set(await stack.runningWorkflows());
  const problems = await checkInvariants({
    dataDir: stack.dataDir,
    hosts: stack.hosts,
    running,
    store: stack.storeOptions(),
  });
  const tolerated = problems.filter((p) => tolerate.includes(p.kind));
  const order = (a: { kind: string; subject: string }, b: { kind: string; subject: string }) =>
    a.kind.localeCompare(b.kind) || a.subject.localeCompare(b.subject);
  const want = [...expected, ...tolerated.map((p) => ({ kind: p.kind, subject: p.subject }))].sort(order);
  expect(
    problems.map((p) => ({ kind: p.kind, subject: p.subject })),
    JSON.stringify(problems)
  ).toEqual(want);
  const { code, report } = await stack.audit();
  const findings = report.findings.map((f) => ({ kind: f.kind, subject: f.subject })).sort(order);
  expect(findings, JSON.stringify(report)).toEqual(want);
  expect(code).toBe(want.length === 0 ? 0 : 3);
  if (tolerated.length > 0) console.log(`[faults] tolerated (known bug): ${JSON.stringify(tolerated)}`);
  return tolerated;
}
