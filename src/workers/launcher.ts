/**
 * `npm start`: the whole system on one machine. Starts `temporal server start-dev` (Web UI on 8233,
 * persisted to $DATA_DIR/temporal.db, the conductor's search attributes registered), then the conductor
 * worker, the scheduler worker and one compute worker process per host of the fleet file, each polling
 * its own queue. Waits until every queue has a poller, prints the UI address and a ready-to-paste
 * `temporal workflow start`. Ctrl-C stops every process; starting again resumes from $DATA_DIR.
 *
 * A worker that exits is restarted after a backoff (LAUNCHER_BACKOFF_SECONDS, doubled for each crash in a
 * row, at most 30 s; a run of a minute or more resets the count). A compute host that crashed
 * LAUNCHER_MAX_RESTARTS times in a row is left down (logged; `hosts` shows it down once its poller is
 * gone) while the server and every other worker keep running; the conductor and the scheduler are
 * always restarted (nothing works without them). The dev server exiting stops everything.
 *
 * Children run in their own process group, so a Ctrl-C in the terminal reaches only the launcher, which
 * stops the workers first (they drain, the server still up) and the server last: no worker logs a
 * flood of connection errors on the way down.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { temporal } from '@temporalio/proto';

import { FleetSchema } from '../domain/fleet';
import { SEARCH_ATTRIBUTE_CLI_ARGS } from '../shared/search-attributes';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../shared/task-queues';
import { loadCodecKeys } from './codec';
import { codecServerEnvironment, computeEnvironment } from './compute-env';
import { codecEndpointFor, type Env, loadEnv } from './config';
import { DEV_SERVER_TUNING_ARGS } from './dev-server';
import { connectClient } from './connection';
import { requireTemporalBinary, RUNNING_BUILT_CODE, TemporalBinaryNotFound } from './temporal-binaries';

interface Managed {
  name: string;
  /** Compute hosts are left down after too many crashes in a row; the conductor and scheduler never are. */
  kind: 'server' | 'core' | 'compute';
  start: () => ChildProcess;
  child?: ChildProcess;
  /** Crashes in a row (exits within STABLE_RUN_MS of their start). */
  crashes: number;
  startedAt: number;
}

/** A worker that ran this long before it exited was not crash-looping: its count starts again. */
const STABLE_RUN_MS = 60_000;
const MAX_BACKOFF_MS = 30_000;

const TaskQueueType = temporal.api.enums.v1.TaskQueueType;
let stopping = false;
const managed: Managed[] = [];

/**
 * Once stopping, the dev server's own warnings are dropped: its internal system workers warn about every
 * connection they lose while it shuts itself down (errors still show).
 */
const quietWhileStopping = (m: Managed, line: string) => stopping && m.kind === 'server' && /level=WARN/.test(line);

function prefixOutput(m: Managed, child: ChildProcess): void {
  const pad = m.name.padEnd(18);
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines)
        if (line.trim() && !quietWhileStopping(m, line)) process.stdout.write(`${pad}| ${line}\n`);
    });
  }
}

function launch(m: Managed, env: Env): void {
  const child = m.start();
  m.child = child;
  m.startedAt = Date.now();
  prefixOutput(m, child);
  console.log(`launcher: started ${m.name} (pid ${child.pid ?? '?'})`);
  child.on('exit', (code, signal) => {
    if (stopping) return;
    const how = signal ?? `code ${code ?? '?'}`;
    if (m.kind === 'server') {
      console.error(`launcher: the Temporal dev server exited (${how}); stopping everything.`);
      void shutdown(1);
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
    const delayMs = Math.min(env.LAUNCHER_BACKOFF_SECONDS * 1000 * 2 ** (m.crashes - 1), MAX_BACKOFF_MS);
    console.error(
      `launcher: ${m.name} exited (${how}); restarting in ${(delayMs / 1000).toFixed(1)} s (crash ${m.crashes} in a row).`
    );
    setTimeout(() => !stopping && launch(m, env), delayMs);
  });
}

/** A worker process: `node --import tsx src/workers/X.ts` under tsx, `node dist/src/workers/X.js` from the build. */
function workerProcess(name: string, kind: Managed['kind'], script: string, env: NodeJS.ProcessEnv): Managed {
  const file = path.join(__dirname, RUNNING_BUILT_CODE ? script.replace(/\.ts$/, '.js') : script);
  const loader = RUNNING_BUILT_CODE ? [] : ['--import', 'tsx'];
  return {
    name,
    kind,
    crashes: 0,
    startedAt: 0,
    start: () =>
      spawn(process.execPath, [...loader, file], {
        // Compute and the codec server get only what they read: no store credential (compute-env.ts).
        env:
          kind === 'compute'
            ? computeEnvironment(process.env, env)
            : name === 'codec-server'
              ? codecServerEnvironment(process.env)
              : { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
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
  await Promise.all(managed.filter((m) => m.kind !== 'server').map(exited));
  const server = managed.find((m) => m.kind === 'server');
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
  // With a codec key the Web UI decodes through the codec server the launcher runs (a bad key file stops here).
  const codecKeys = env.CONDUCTOR_CODEC_KEY_FILE ? loadCodecKeys(env.CONDUCTOR_CODEC_KEY_FILE) : undefined;
  const codecEndpoint = codecEndpointFor(env) ?? '';

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
    ...DEV_SERVER_TUNING_ARGS,
    ...(codecKeys ? ['--ui-codec-endpoint', codecEndpoint] : []),
    ...SEARCH_ATTRIBUTE_CLI_ARGS.flatMap((sa) => ['--search-attribute', sa]),
  ];
  const server: Managed = {
    name: 'temporal',
    kind: 'server',
    crashes: 0,
    startedAt: 0,
    start: () => spawn(cli, serverArgs, { stdio: ['ignore', 'pipe', 'pipe'], detached: true }),
  };
  managed.push(server);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(0));
  launch(server, env);

  const workerEnv = { TEMPORAL_ADDRESS: `127.0.0.1:${env.TEMPORAL_PORT}`, DATA_DIR: env.DATA_DIR };
  // The scheduler comes up before the computes: each compute registers its inventory through it.
  // With METRICS_PORT set, each process exports its metrics on its own port: conductor on the port,
  // scheduler on the next, then one per compute host.
  const metrics = (offset: number) => (env.METRICS_PORT ? { METRICS_PORT: String(env.METRICS_PORT + offset) } : {});
  if (codecKeys) managed.push(workerProcess('codec-server', 'core', 'codec-server.ts', {}));
  managed.push(workerProcess('conductor', 'core', 'conductor-worker.ts', { ...workerEnv, ...metrics(0) }));
  managed.push(workerProcess('scheduler', 'core', 'scheduler-worker.ts', { ...workerEnv, ...metrics(1) }));
  fleet.hosts.forEach((host, i) => {
    const hostEnv = { ...workerEnv, ...metrics(2 + i), COMPUTE_HOST: host.name };
    managed.push(workerProcess(host.name, 'compute', 'compute-worker.ts', hostEnv));
  });
  const started = connectClient({ ...env, TEMPORAL_ADDRESS: workerEnv.TEMPORAL_ADDRESS }, 60_000);
  await (await started).close();
  for (const m of managed) if (m !== server) launch(m, env);

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
  Data              ${env.DATA_DIR}${codecKeys ? `\n  Codec server      ${codecEndpoint} (payloads encrypted with key "${codecKeys.currentKeyId}"; stock CLI: --codec-endpoint ${codecEndpoint})` : ''}

Boot an instance:
  npm run temporal -- workflow execute --type buildInstance --task-queue ${CONDUCTOR_TASK_QUEUE} --workflow-id build-vm1 --input '${input}'

Ctrl-C stops everything; npm start again resumes from ${env.DATA_DIR}.
`);
}

main().catch((err: unknown) => {
  console.error(err instanceof TemporalBinaryNotFound ? err.message : `npm start: ${(err as Error).message}`);
  void shutdown(1);
});
