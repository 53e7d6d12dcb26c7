/**
 * `npm start`: the whole system on one machine. Starts `temporal server start-dev` (Web UI on 8233,
 * persisted to $DATA_DIR/temporal.db, the conductor's search attributes registered), then the conductor
 * worker, the scheduler worker and one compute worker process per host of the fleet file, each polling
 * its own queue. Waits until every queue has a poller, prints the UI address and a ready-to-paste
 * `temporal workflow start`. Ctrl-C stops every process; starting again resumes from $DATA_DIR.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { temporal } from '@temporalio/proto';

import { FleetSchema } from '../domain/fleet';
import { SEARCH_ATTRIBUTE_CLI_ARGS } from '../shared/search-attributes';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../shared/task-queues';
import { type Env, loadEnv } from './config';
import { connectClient } from './connection';
import { requireTemporalBinary, RUNNING_BUILT_CODE, TemporalBinaryNotFound } from './temporal-binaries';

interface Managed {
  name: string;
  start: () => ChildProcess;
  child?: ChildProcess;
  restarts: number[];
}

const TaskQueueType = temporal.api.enums.v1.TaskQueueType;
let stopping = false;
const managed: Managed[] = [];

function prefixOutput(name: string, child: ChildProcess): void {
  const pad = name.padEnd(18);
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) process.stdout.write(`${pad}| ${line}\n`);
    });
  }
}

function launch(m: Managed): void {
  const child = m.start();
  m.child = child;
  prefixOutput(m.name, child);
  child.on('exit', (code, signal) => {
    if (stopping) return;
    const now = Date.now();
    m.restarts = m.restarts.filter((t) => now - t < 60_000);
    if (m.name === 'temporal' || m.restarts.length >= 5) {
      console.error(`${m.name} exited (${signal ?? code}); stopping everything.`);
      void shutdown(1);
      return;
    }
    m.restarts.push(now);
    console.error(`${m.name} exited (${signal ?? code}); restarting in 2 s.`);
    setTimeout(() => !stopping && launch(m), 2_000);
  });
}

/** A worker process: `node --import tsx src/workers/X.ts` under tsx, `node dist/src/workers/X.js` from the build. */
function workerProcess(name: string, script: string, env: NodeJS.ProcessEnv): Managed {
  const file = path.join(__dirname, RUNNING_BUILT_CODE ? script.replace(/\.ts$/, '.js') : script);
  const loader = RUNNING_BUILT_CODE ? [] : ['--import', 'tsx'];
  return {
    name,
    restarts: [],
    start: () =>
      spawn(process.execPath, [...loader, file], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
  };
}

async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (managed.some((m) => m.child)) console.log('\nstopping workers…');
  const exited = (m: Managed) =>
    new Promise<void>((resolve) => {
      if (!m.child || m.child.exitCode !== null || m.child.signalCode !== null) return resolve();
      m.child.once('exit', () => resolve());
      m.child.kill('SIGTERM');
      setTimeout(() => m.child?.kill('SIGKILL'), 15_000).unref();
    });
  // Workers first (they drain in-flight tasks), then the server.
  await Promise.all(managed.filter((m) => m.name !== 'temporal').map(exited));
  const server = managed.find((m) => m.name === 'temporal');
  if (server) await exited(server);
  process.exit(code);
}

async function waitForPollers(env: Env, queues: Array<{ name: string; type: number }>): Promise<void> {
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
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  } finally {
    await connection.close();
  }
}

async function main(): Promise<void> {
  const env = loadEnv();
  const cli = requireTemporalBinary('cli');
  const fleet = FleetSchema.parse(JSON.parse(readFileSync(env.FLEET_FILE, 'utf8')));
  mkdirSync(env.DATA_DIR, { recursive: true });

  const serverArgs = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(env.TEMPORAL_PORT),
    '--ui-port',
    String(env.TEMPORAL_UI_PORT),
    '--db-filename',
    path.join(env.DATA_DIR, 'temporal.db'),
    '--namespace',
    env.TEMPORAL_NAMESPACE,
    '--ui-disable-news-fetch',
    '--log-level',
    'warn',
    ...SEARCH_ATTRIBUTE_CLI_ARGS.flatMap((sa) => ['--search-attribute', sa]),
  ];
  const server: Managed = {
    name: 'temporal',
    restarts: [],
    start: () => spawn(cli, serverArgs, { stdio: ['ignore', 'pipe', 'pipe'] }),
  };
  managed.push(server);
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  launch(server);

  const workerEnv = { TEMPORAL_ADDRESS: `127.0.0.1:${env.TEMPORAL_PORT}`, DATA_DIR: env.DATA_DIR };
  // The scheduler comes up before the computes: each compute registers its inventory through it.
  // With METRICS_PORT set, each process exports its metrics on its own port: conductor on the port,
  // scheduler on the next, then one per compute host.
  const metrics = (offset: number) => (env.METRICS_PORT ? { METRICS_PORT: String(env.METRICS_PORT + offset) } : {});
  managed.push(workerProcess('conductor', 'conductor-worker.ts', { ...workerEnv, ...metrics(0) }));
  managed.push(workerProcess('scheduler', 'scheduler-worker.ts', { ...workerEnv, ...metrics(1) }));
  fleet.hosts.forEach((host, i) => {
    managed.push(
      workerProcess(host.name, 'compute-worker.ts', { ...workerEnv, ...metrics(2 + i), COMPUTE_HOST: host.name })
    );
  });
  const started = connectClient({ ...env, TEMPORAL_ADDRESS: workerEnv.TEMPORAL_ADDRESS }, 60_000);
  await (await started).close();
  for (const m of managed) if (m !== server) launch(m);

  await waitForPollers({ ...env, TEMPORAL_ADDRESS: workerEnv.TEMPORAL_ADDRESS }, [
    { name: CONDUCTOR_TASK_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW },
    { name: SCHEDULER_TASK_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY },
    ...fleet.hosts.map((h) => ({ name: computeTaskQueue(h.name), type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY })),
  ]);
  const input = JSON.stringify({ name: 'vm1', flavor: 'm1.small', image: 'cirros' });
  console.log(`
Conductor on Temporal is running.
  Temporal Web UI   http://localhost:${env.TEMPORAL_UI_PORT}
  Temporal frontend 127.0.0.1:${env.TEMPORAL_PORT} (namespace ${env.TEMPORAL_NAMESPACE})
  Workers           conductor, scheduler, ${fleet.hosts.map((h) => h.name).join(', ')}
  Data              ${env.DATA_DIR}

Boot an instance:
  npm run temporal -- workflow execute --type buildInstance --task-queue ${CONDUCTOR_TASK_QUEUE} --workflow-id build-vm1 --input '${input}'

Ctrl-C stops everything; npm start again resumes from ${env.DATA_DIR}.
`);
}

main().catch((err: unknown) => {
  console.error(err instanceof TemporalBinaryNotFound ? err.message : `npm start: ${(err as Error).message}`);
  void shutdown(1);
});
