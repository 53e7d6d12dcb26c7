/**
 * The process supervision `make start` (launcher.ts) and `make cluster` (cluster.ts) share: each child in
 * its own process group with its output prefixed by its name, restarted after a backoff when it exits
 * (LAUNCHER_BACKOFF_SECONDS, doubled for each crash in a row, at most 30 s; a run of a minute or more
 * resets the count), a compute host that crashed LAUNCHER_MAX_RESTARTS times in a row left down, and a
 * stop in order: workers first (they drain, the servers still up), then the Temporal services and the
 * Web UI, then the servers (the dev server, PostgreSQL) last.
 *
 * Kinds: `server` exiting stops everything (nothing works without it: the dev server of `make start`)
 * unless it is `restartable` (the cluster's PostgreSQL and RabbitMQ, whose clients reconnect); `service` (a
 * Temporal service or the Web UI of the cluster) and `core` (conductor, scheduler) are always restarted;
 * `compute` is left down after too many crashes in a row. A process may have its own first backoff
 * (`backoffSeconds`: the cluster's servers and services come back in a second whatever the workers' is).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

import { temporal } from '@temporalio/proto';

import type { Env } from './config';
import { connectClient } from './connection';
import { RUNNING_BUILT_CODE } from './temporal-binaries';
import { setTimeout as pause } from 'node:timers/promises';

export type ManagedKind = 'server' | 'service' | 'core' | 'compute';

export interface Managed {
  name: string;
  kind: ManagedKind;
  start: () => ChildProcess;
  child?: ChildProcess;
  /** Crashes in a row (exits within STABLE_RUN_MS of their start). */
  crashes: number;
  startedAt: number;
  /** A `server` restarted after an unexpected exit like a service, instead of stopping everything. */
  restartable?: boolean;
  /** The first restart's backoff (doubled per crash in a row); default LAUNCHER_BACKOFF_SECONDS. */
  backoffSeconds?: number;
}

/** A worker that ran this long before it exited was not crash-looping: its count starts again. */
const STABLE_RUN_MS = 60_000;
const MAX_BACKOFF_MS = 30_000;

export const TaskQueueType = temporal.api.enums.v1.TaskQueueType;

/** A process to supervise: `command args`, in its own process group, its output piped to the supervisor. */
export function managedProcess(
  name: string,
  kind: ManagedKind,
  command: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
  user?: { uid: number; gid: number }
): Managed {
  return {
    name,
    kind,
    crashes: 0,
    startedAt: 0,
    start: () => spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...user }),
  };
}

/** A worker process: `node --import tsx src/workers/X.ts` under tsx, `node dist/src/workers/X.js` from the build. */
export function workerProcess(
  name: string,
  kind: ManagedKind,
  script: string,
  env: NodeJS.ProcessEnv,
  /** What the process inherits (default: this one's environment); compute gets an allowlist (compute-env.ts). */
  base: NodeJS.ProcessEnv = process.env
): Managed {
  const file = path.join(__dirname, RUNNING_BUILT_CODE ? script.replace(/\.ts$/, '.js') : script);
  const loader = RUNNING_BUILT_CODE ? [] : ['--import', 'tsx'];
  return managedProcess(name, kind, process.execPath, [...loader, file], { ...base, ...env });
}

export class Supervisor {
  stopping = false;
  readonly managed: Managed[] = [];

  /** `serverName` names a server in the message of its exit ("the Temporal dev server exited …"). */
  constructor(
    private readonly env: Env,
    private readonly serverName = (m: Managed) => m.name
  ) {}

  add(...ms: Managed[]): void {
    this.managed.push(...ms);
  }

  /** Ctrl-C, SIGTERM and SIGHUP stop everything in order. */
  stopOnSignals(): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void this.shutdown(0));
  }

  /**
   * Once stopping, the servers' own warnings are dropped: their internal system workers warn about every
   * connection they lose while they shut themselves down (errors still show).
   */
  private quietWhileStopping(m: Managed, line: string): boolean {
    return this.stopping && (m.kind === 'server' || m.kind === 'service') && /level=WARN|"level":"warn"/.test(line);
  }

  private prefixOutput(m: Managed, child: ChildProcess): void {
    const pad = m.name.padEnd(18);
    for (const stream of [child.stdout, child.stderr]) {
      let buffered = '';
      stream?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines)
          if (line.trim() && !this.quietWhileStopping(m, line)) process.stdout.write(`${pad}| ${line}\n`);
      });
    }
  }

  launch(m: Managed): void {
    const env = this.env;
    const child = m.start();
    m.child = child;
    m.startedAt = Date.now();
    this.prefixOutput(m, child);
    console.log(`launcher: started ${m.name} (pid ${child.pid ?? '?'})`);
    child.on('exit', (code, signal) => {
      if (this.stopping) return;
      const how = signal ?? `code ${code ?? '?'}`;
      if (m.kind === 'server' && !m.restartable) {
        console.error(`launcher: ${this.serverName(m)} exited (${how}); stopping everything.`);
        void this.shutdown(1);
        return;
      }
      m.crashes = Date.now() - m.startedAt >= STABLE_RUN_MS ? 1 : m.crashes + 1;
      if (m.kind === 'compute' && m.crashes > env.LAUNCHER_MAX_RESTARTS) {
        console.error(
          `launcher: ${m.name} exited (${how}) after ${m.crashes} crashes in a row; left down (the rest keeps running). ` +
            `Its instances can be evacuated; start it again with: COMPUTE_HOST=${m.name} npm run worker:compute`
        );
        m.child = undefined;
        return;
      }
      const backoffSeconds = m.backoffSeconds ?? env.LAUNCHER_BACKOFF_SECONDS;
      const delayMs = Math.min(backoffSeconds * 1000 * 2 ** (m.crashes - 1), MAX_BACKOFF_MS);
      console.error(
        `launcher: ${m.name} exited (${how}); restarting in ${(delayMs / 1000).toFixed(1)} s (crash ${m.crashes} in a row).`
      );
      setTimeout(() => !this.stopping && this.launch(m), delayMs);
    });
  }

  async shutdown(code: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.managed.some((m) => m.child)) console.log('\nstopping workers…');
    const exited = (m: Managed) =>
      new Promise<void>((resolve) => {
        if (!m.child || m.child.exitCode !== null || m.child.signalCode !== null) return resolve();
        m.child.once('exit', () => resolve());
        m.child.kill('SIGTERM');
        setTimeout(() => m.child?.kill('SIGKILL'), 15_000).unref();
      });
    // Workers first (they drain in-flight tasks), then the Temporal services and the UI, then the servers.
    for (const kinds of [['core', 'compute'], ['service'], ['server']])
      await Promise.all(this.managed.filter((m) => kinds.includes(m.kind)).map(exited));
    process.exit(code);
  }
}

/** The message `make start` and `make cluster` print once every queue has a poller. */
export function readyMessage(o: {
  uiUrl: string;
  frontend: string;
  namespace: string;
  workers: string;
  dataDir: string;
  taskQueue: string;
  temporalCommand: string;
  again: string;
  extra?: string;
}): string {
  const input = JSON.stringify({ name: 'vm1', flavor: 'm1.small', image: 'cirros' });
  return `
Conductor on Temporal is running.
  Temporal Web UI   ${o.uiUrl}
  Temporal frontend ${o.frontend} (namespace ${o.namespace})
  Workers           ${o.workers}
  Data              ${o.dataDir}
${o.extra ?? ''}
Boot an instance:
  ${o.temporalCommand} workflow execute --type buildInstance --task-queue ${o.taskQueue} --workflow-id build-vm1 --input '${input}'

Ctrl-C stops everything; ${o.again} again resumes from ${o.dataDir}.
`;
}

/**
 * Waits (at most two minutes) until `url` answers `init` with a 2xx: a server the ready message names
 * (the Web UI, the codec server the stock CLI is told to use) is serving, not just started.
 */
export async function waitForHttp(name: string, url: string, init: RequestInit = {}): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    let why: string;
    try {
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      if (res.ok) return;
      why = `HTTP ${res.status}`;
    } catch (err) {
      why = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${name} does not answer at ${url}: ${why}`);
    await pause(500);
  }
}

/** The request that proves a codec server serves: an empty encode (with its Authorization, when it wants one). */
export function codecProbe(auth: string | undefined): RequestInit {
  return {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(auth === undefined ? {} : { Authorization: auth }) },
    body: JSON.stringify({ payloads: [] }),
  };
}

/** Waits (at most two minutes) until every queue has a poller. */
export async function waitForPollers(env: Env, queues: Array<{ name: string; type: number }>): Promise<void> {
  const connection = await connectClient(env);
  const deadline = Date.now() + 120_000;
  try {
    for (const queue of queues) {
      for (;;) {
        const res = await connection.workflowService.describeTaskQueue({
          namespace: env.TEMPORAL_NAMESPACE,
          taskQueue: { name: queue.name },
          taskQueueType: queue.type,
        });
        if ((res.pollers ?? []).length > 0) break;
        if (Date.now() > deadline) throw new Error(`no worker is polling task queue ${queue.name}`);
        await pause(500);
      }
    }
  } finally {
    await connection.close();
  }
}
