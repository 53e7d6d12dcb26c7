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
 * flood of connection errors on the way down. The supervision is src/workers/supervisor.ts, shared with
 * `make cluster` (cluster.ts).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { apiReadyLines, publicUrl, usersFile } from '../api/settings';
import { loadOrCreateUsers } from '../api/users';
import { FleetSchema } from '../domain/fleet';
import { SEARCH_ATTRIBUTE_CLI_ARGS } from '../shared/search-attributes';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../shared/task-queues';
import { loadCodecKeys } from './codec';
import { codecServerEnvironment, computeEnvironment } from './compute-env';
import { codecEndpointFor, loadEnv } from './config';
import { connectClient } from './connection';
import { DEV_SERVER_TUNING_ARGS } from './dev-server';
import {
  codecProbe,
  managedProcess,
  readyMessage,
  Supervisor,
  TaskQueueType,
  waitForHttp,
  waitForPollers,
  workerProcess,
} from './supervisor';
import { requireTemporalBinary, TemporalBinaryNotFound } from './temporal-binaries';
import { rabbitmqProcess, rabbitmqUrl } from './rabbitmq';

let supervisor: Supervisor | undefined;

async function main(): Promise<void> {
  const env = loadEnv();
  const cli = requireTemporalBinary('cli');
  const fleet = FleetSchema.parse(JSON.parse(readFileSync(env.FLEET_FILE, 'utf8')));
  mkdirSync(env.DATA_DIR, { recursive: true });
  // With a codec key the Web UI decodes through the codec server the launcher runs (a bad key file stops here).
  const codecKeys = env.CONDUCTOR_CODEC_KEY_FILE ? loadCodecKeys(env.CONDUCTOR_CODEC_KEY_FILE) : undefined;
  const codecEndpoint = codecEndpointFor(env) ?? '';
  // The OpenStack API's users: made on first start, with a generated admin password printed below.
  const apiUsers = loadOrCreateUsers(usersFile(env));

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
  const sup = new Supervisor(env, () => 'the Temporal dev server');
  supervisor = sup;
  const server = managedProcess('temporal', 'server', cli, serverArgs);
  sup.add(server);
  sup.stopOnSignals();
  sup.launch(server);

  const workerEnv = { TEMPORAL_ADDRESS: `127.0.0.1:${env.TEMPORAL_PORT}`, DATA_DIR: env.DATA_DIR };
  // The scheduler comes up before the computes: each compute registers its inventory through it.
  // With METRICS_PORT set, each process exports its metrics on its own port: conductor on the port,
  // scheduler on the next, then one per compute host.
  const metrics = (offset: number) => (env.METRICS_PORT ? { METRICS_PORT: String(env.METRICS_PORT + offset) } : {});
  // Compute and the codec server get only what they read: no store credential (compute-env.ts).
  if (codecKeys)
    sup.add(workerProcess('codec-server', 'core', 'codec-server.ts', {}, codecServerEnvironment(process.env)));
  sup.add(workerProcess('conductor', 'core', 'conductor-worker.ts', { ...workerEnv, ...metrics(0) }));
  sup.add(workerProcess('scheduler', 'core', 'scheduler-worker.ts', { ...workerEnv, ...metrics(1) }));
  sup.add(workerProcess('api', 'core', '../api/main.ts', workerEnv));
  // NOTIFICATION_URL set, or NOTIFICATION_RABBITMQ=1 (a broker of our own): the relay delivers the
  // notification outbox to it (docs/notifications.md).
  const ownBroker = env.NOTIFICATION_RABBITMQ === '1';
  const notificationUrl = ownBroker ? rabbitmqUrl(env.NOTIFICATION_RABBITMQ_PORT) : env.NOTIFICATION_URL;
  if (ownBroker) {
    // Launched with the workers below; the relay retries until the broker accepts it.
    sup.add(rabbitmqProcess(path.join(env.DATA_DIR, 'rabbitmq'), env.NOTIFICATION_RABBITMQ_PORT));
  }
  if (notificationUrl)
    sup.add(
      workerProcess('notification-relay', 'core', 'notification-relay.ts', {
        ...workerEnv,
        NOTIFICATION_URL: notificationUrl,
      })
    );
  fleet.hosts.forEach((host, i) => {
    const hostEnv = { ...workerEnv, ...metrics(2 + i), COMPUTE_HOST: host.name };
    sup.add(workerProcess(host.name, 'compute', 'compute-worker.ts', {}, computeEnvironment(process.env, hostEnv)));
  });
  const started = connectClient({ ...env, TEMPORAL_ADDRESS: workerEnv.TEMPORAL_ADDRESS }, 60_000);
  await (await started).close();
  for (const m of sup.managed) if (m !== server) sup.launch(m);

  await waitForPollers({ ...env, TEMPORAL_ADDRESS: workerEnv.TEMPORAL_ADDRESS }, [
    { name: CONDUCTOR_TASK_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW },
    { name: SCHEDULER_TASK_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY },
    ...fleet.hosts.map((h) => ({ name: computeTaskQueue(h.name), type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY })),
  ]);
  // The servers the message names answer before it is printed.
  await waitForHttp('the Temporal Web UI', `http://127.0.0.1:${env.TEMPORAL_UI_PORT}/`);
  if (codecKeys) await waitForHttp('the codec server', `${codecEndpoint}/encode`, codecProbe(env.CONDUCTOR_CODEC_AUTH));
  await waitForHttp('the OpenStack API', `${publicUrl(env)}/compute/`);
  const adminPassword = apiUsers.users.users.find((u) => u.name === 'admin')?.password;
  console.log(
    readyMessage({
      uiUrl: `http://localhost:${env.TEMPORAL_UI_PORT}`,
      frontend: `127.0.0.1:${env.TEMPORAL_PORT}`,
      namespace: env.TEMPORAL_NAMESPACE,
      workers: `conductor, scheduler, ${notificationUrl ? 'notification-relay, ' : ''}${fleet.hosts.map((h) => h.name).join(', ')}`,
      dataDir: env.DATA_DIR,
      taskQueue: CONDUCTOR_TASK_QUEUE,
      temporalCommand: 'npm run temporal --',
      again: 'npm start',
      extra:
        apiReadyLines(env, adminPassword) +
        (notificationUrl
          ? `  Notifications     ${notificationUrl.replace(/\/\/[^@/]*@/, '//')} (relay; \`npm run conductor -- notifications\`)\n`
          : '') +
        (codecKeys
          ? `  Codec server      ${codecEndpoint} (payloads encrypted with key "${codecKeys.currentKeyId}"; stock CLI: --codec-endpoint ${codecEndpoint})\n`
          : ''),
    })
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof TemporalBinaryNotFound ? err.message : `npm start: ${(err as Error).message}`);
  if (supervisor) void supervisor.shutdown(1);
  else process.exit(1);
});
