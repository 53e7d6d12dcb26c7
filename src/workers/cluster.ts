/**
 * `make cluster`: a Temporal cluster on one machine laid out as it would run on many. PostgreSQL holds
 * Temporal's persistence, its SQL visibility (the conductor's search attributes registered) and the
 * conductor store; the four Temporal services run as their own processes from deploy/cluster/temporal.yaml
 * (CLUSTER_HISTORY_SHARDS history shards, 4 by default), with mTLS on the frontend and between the
 * services; the Temporal Web UI server runs against the frontend; then the workers, scaled out:
 * CLUSTER_CONDUCTORS conductor processes and CLUSTER_SCHEDULERS scheduler processes (2 each, sharing
 * their task queues) and one compute process per host of the fleet file (its own queue).
 *
 * Everything lives in CLUSTER_DATA_DIR (data/cluster): certificates, the PostgreSQL data directory, the
 * compute hosts' files, and temporal.toml, the connection profile (`cluster`) the workers, both CLIs and
 * the stock `temporal` CLI use (TEMPORAL_CONFIG_FILE + TEMPORAL_PROFILE). Set-up is idempotent: a second
 * start resumes from that data. Supervision is the launcher's (supervisor.ts): Ctrl-C stops the workers,
 * then the Temporal services and the UI, then PostgreSQL.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { temporal } from '@temporalio/proto';
import { msToTs } from '@temporalio/common/lib/time';
import { z } from 'zod';

import { apiReadyLines, publicUrl, usersFile } from '../api/settings';
import { loadOrCreateUsers } from '../api/users';
import { FleetSchema } from '../domain/fleet';
import { CONDUCTOR_SEARCH_ATTRIBUTES } from '../shared/search-attributes';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../shared/task-queues';
import {
  CLUSTER_PROFILE,
  ensureCertificates,
  ensureCodecKey,
  ensurePostgresData,
  ensureRolesAndDatabases,
  ensureSecrets,
  ensureTemporalSchemas,
  postgresCommand,
  writeProfile,
} from './cluster-setup';
import { codecServerEnvironment, computeEnvironment } from './compute-env';
import { codecEndpointFor, type Env, loadEnv } from './config';
import { connectClient } from './connection';
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
import { PROJECT_ROOT } from './temporal-binaries';
import { setTimeout as sleep } from 'node:timers/promises';
import { rabbitmqProcess, rabbitmqUrl, waitForAmqp } from './rabbitmq';

const port = z.coerce.number().int().min(1).max(65535);

/** The cluster's own settings (ports of each service; the frontend is TEMPORAL_PORT, the UI TEMPORAL_UI_PORT). */
export const ClusterEnvSchema = z.object({
  CLUSTER_DATA_DIR: z
    .string()
    .min(1)
    .default(path.join(PROJECT_ROOT, 'data', 'cluster')),
  TEMPORAL_SERVER_DIR: z
    .string()
    .min(1)
    .default(path.join(PROJECT_ROOT, '.tools', 'temporal-server')),
  CLUSTER_PG_PORT: port.default(55433),
  /** The RabbitMQ broker the notification relay publishes to (docs/notifications.md). */
  CLUSTER_RABBITMQ_PORT: port.default(5673),
  CLUSTER_FRONTEND_HTTP_PORT: port.default(7243),
  CLUSTER_FRONTEND_MEMBERSHIP_PORT: port.default(6933),
  CLUSTER_HISTORY_PORT: port.default(7234),
  CLUSTER_HISTORY_MEMBERSHIP_PORT: port.default(6934),
  CLUSTER_MATCHING_PORT: port.default(7235),
  CLUSTER_MATCHING_MEMBERSHIP_PORT: port.default(6935),
  CLUSTER_WORKER_PORT: port.default(7239),
  CLUSTER_WORKER_MEMBERSHIP_PORT: port.default(6939),
  CLUSTER_HISTORY_SHARDS: z.coerce.number().int().positive().default(4),
  CLUSTER_CONDUCTORS: z.coerce.number().int().positive().max(16).default(2),
  CLUSTER_SCHEDULERS: z.coerce.number().int().positive().max(16).default(2),
  /** Temporal services' log level (their own config: debug, info, warn, error). */
  CLUSTER_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('warn'),
  /** The first restart's backoff of PostgreSQL and of a Temporal service that died (doubled per crash in a row). */
  CLUSTER_SERVICE_BACKOFF_SECONDS: z.coerce.number().positive().max(30).default(1),
  /**
   * The codec server the Web UI's browser asks to decode payloads (deploy/cluster/ui/cluster.yaml
   * `codec.endpoint`); default: the one the cluster runs (CONDUCTOR_CODEC_PORT on localhost).
   */
  CLUSTER_CODEC_ENDPOINT: z.string().optional(),
});

const GRPC_NOT_FOUND = 5;
const TEMPORAL_SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;

let supervisor: Supervisor | undefined;

/** The namespace (a real server has none until it is registered) and the conductor's search attributes. */
async function ensureNamespace(env: Env): Promise<void> {
  const connection = await connectClient(env, 120_000);
  try {
    const exists = await connection.workflowService
      .describeNamespace({ namespace: env.TEMPORAL_NAMESPACE })
      .then(() => true)
      .catch((err: { code?: number }) => {
        if (err.code === GRPC_NOT_FOUND) return false;
        throw err;
      });
    if (!exists) {
      await connection.workflowService.registerNamespace({
        namespace: env.TEMPORAL_NAMESPACE,
        workflowExecutionRetentionPeriod: msToTs('3 days'),
      });
      console.log(`cluster: namespace ${env.TEMPORAL_NAMESPACE} registered`);
    }
    // The services cache namespaces: wait until the frontend serves this one on a task-queue call.
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await connection.workflowService.describeTaskQueue({
          namespace: env.TEMPORAL_NAMESPACE,
          taskQueue: { name: CONDUCTOR_TASK_QUEUE },
        });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(500);
      }
    }
    const Keyword = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
    const listed = await connection.operatorService.listSearchAttributes({ namespace: env.TEMPORAL_NAMESPACE });
    const missing = CONDUCTOR_SEARCH_ATTRIBUTES.filter((k) => !(k.name in (listed.customAttributes ?? {})));
    if (missing.length > 0) {
      await connection.operatorService.addSearchAttributes({
        namespace: env.TEMPORAL_NAMESPACE,
        searchAttributes: Object.fromEntries(missing.map((k) => [k.name, Keyword])),
      });
      console.log(`cluster: search attributes ${missing.map((k) => k.name).join(', ')} registered`);
    }
  } finally {
    await connection.close();
  }
}

/**
 * Waits (at most two minutes) until the history service answers for the namespace on every shard: a
 * describe of workflows that do not exist (ids spread over the shards, eight per shard on average) is
 * NotFound for the workflow, not Unavailable (a shard not yet owned) nor NotFound for the namespace (a
 * history host that has not loaded it yet). The pollers only prove the frontend and matching.
 */
async function waitForHistory(env: Env, shards: number): Promise<void> {
  const connection = await connectClient(env);
  const deadline = Date.now() + 120_000;
  try {
    for (let i = 0; i < shards * 8; i++) {
      for (;;) {
        const why = await connection.workflowService
          .describeWorkflowExecution({
            namespace: env.TEMPORAL_NAMESPACE,
            execution: { workflowId: `cluster-readiness-probe-${i}` },
          })
          .then(
            () => undefined,
            (err: { code?: number; details?: string; message?: string }) =>
              err.code === GRPC_NOT_FOUND && !/namespace/i.test(err.details ?? err.message ?? '')
                ? undefined
                : (err.details ?? err.message ?? `gRPC code ${err.code ?? '?'}`)
          );
        if (why === undefined) break;
        if (Date.now() > deadline)
          throw new Error(`history does not serve namespace ${env.TEMPORAL_NAMESPACE}: ${why}`);
        await sleep(500);
      }
    }
  } finally {
    await connection.close();
  }
}

async function main(): Promise<void> {
  const cluster = ClusterEnvSchema.parse(process.env);
  const dataDir = cluster.CLUSTER_DATA_DIR;
  const tlsDir = path.join(dataDir, 'tls');
  const profileFile = path.join(dataDir, 'temporal.toml');
  const frontend = `127.0.0.1:${loadEnv().TEMPORAL_PORT}`;
  mkdirSync(dataDir, { recursive: true });
  const bin = path.join(cluster.TEMPORAL_SERVER_DIR, 'bin');
  for (const tool of ['temporal-server', 'temporal-sql-tool', 'ui-server'])
    if (!existsSync(path.join(bin, tool)))
      throw new Error(
        `${path.join(bin, tool)} not found: run \`make install-server\` (scripts/install-temporal-server.sh)`
      );

  // Set-up, idempotent: certificates, PostgreSQL, the profile.
  ensureCertificates(tlsDir);
  const secrets = ensureSecrets(path.join(dataDir, 'secrets.json'));
  const pgDir = path.join(dataDir, 'postgres');
  ensurePostgresData(pgDir, secrets);
  // Every payload the cluster's workers and clients write is encrypted with this key (codec.ts).
  const codecKeyFile = path.join(dataDir, 'codec.key');
  ensureCodecKey(codecKeyFile);
  const base = loadEnv();
  writeProfile(profileFile, { address: frontend, namespace: base.TEMPORAL_NAMESPACE, tlsDir });
  const profileEnv = {
    TEMPORAL_CONFIG_FILE: profileFile,
    TEMPORAL_PROFILE: CLUSTER_PROFILE,
    TEMPORAL_ADDRESS: frontend,
    TEMPORAL_NAMESPACE: base.TEMPORAL_NAMESPACE,
  };
  const codecEnv = { CONDUCTOR_CODEC_KEY_FILE: codecKeyFile, CONDUCTOR_CODEC_PORT: String(base.CONDUCTOR_CODEC_PORT) };
  const env = loadEnv({ ...process.env, ...profileEnv, ...codecEnv });
  const codecEndpoint = cluster.CLUSTER_CODEC_ENDPOINT ?? codecEndpointFor(env)!;
  const fleet = FleetSchema.parse(JSON.parse(readFileSync(env.FLEET_FILE, 'utf8')));

  const sup = new Supervisor(env);
  supervisor = sup;
  sup.stopOnSignals();
  // RabbitMQ for the notifications, starting while PostgreSQL and Temporal do.
  const rabbitmq = rabbitmqProcess(path.join(dataDir, 'rabbitmq'), cluster.CLUSTER_RABBITMQ_PORT);
  sup.add(rabbitmq);
  sup.launch(rabbitmq);
  const pgCmd = postgresCommand(pgDir, cluster.CLUSTER_PG_PORT);
  const postgres = managedProcess('postgres', 'server', pgCmd.command, pgCmd.args, undefined, pgCmd.user);
  // A PostgreSQL that died is started again (after a kill -9 of the postmaster it recovers from its WAL);
  // the Temporal services and the store's pool reconnect, activities that lost it are retried.
  postgres.restartable = true;
  postgres.backoffSeconds = cluster.CLUSTER_SERVICE_BACKOFF_SECONDS;
  sup.add(postgres);
  sup.launch(postgres);
  await ensureRolesAndDatabases(cluster.CLUSTER_PG_PORT, secrets);
  ensureTemporalSchemas({
    sqlTool: path.join(bin, 'temporal-sql-tool'),
    schemaDir: path.join(cluster.TEMPORAL_SERVER_DIR, 'schema', 'postgresql', 'v12'),
    port: cluster.CLUSTER_PG_PORT,
    secrets,
    stampDir: dataDir,
  });

  // The Temporal services, each its own process, from one config file.
  const serverEnv = {
    ...process.env,
    CLUSTER_PG_PORT: String(cluster.CLUSTER_PG_PORT),
    CLUSTER_PG_PASSWORD: secrets.temporal,
    CLUSTER_TLS_DIR: tlsDir,
    CLUSTER_HISTORY_SHARDS: String(cluster.CLUSTER_HISTORY_SHARDS),
    CLUSTER_LOG_LEVEL: cluster.CLUSTER_LOG_LEVEL,
    CLUSTER_DYNAMIC_CONFIG: path.join(PROJECT_ROOT, 'deploy', 'cluster', 'dynamicconfig.yaml'),
    CLUSTER_FRONTEND_PORT: String(env.TEMPORAL_PORT),
    CLUSTER_FRONTEND_HTTP_PORT: String(cluster.CLUSTER_FRONTEND_HTTP_PORT),
    CLUSTER_FRONTEND_MEMBERSHIP_PORT: String(cluster.CLUSTER_FRONTEND_MEMBERSHIP_PORT),
    CLUSTER_HISTORY_PORT: String(cluster.CLUSTER_HISTORY_PORT),
    CLUSTER_HISTORY_MEMBERSHIP_PORT: String(cluster.CLUSTER_HISTORY_MEMBERSHIP_PORT),
    CLUSTER_MATCHING_PORT: String(cluster.CLUSTER_MATCHING_PORT),
    CLUSTER_MATCHING_MEMBERSHIP_PORT: String(cluster.CLUSTER_MATCHING_MEMBERSHIP_PORT),
    CLUSTER_WORKER_PORT: String(cluster.CLUSTER_WORKER_PORT),
    CLUSTER_WORKER_MEMBERSHIP_PORT: String(cluster.CLUSTER_WORKER_MEMBERSHIP_PORT),
    CLUSTER_UI_PORT: String(env.TEMPORAL_UI_PORT),
    CLUSTER_NAMESPACE: env.TEMPORAL_NAMESPACE,
    CLUSTER_CODEC_ENDPOINT: codecEndpoint,
  };
  const configFile = path.join(PROJECT_ROOT, 'deploy', 'cluster', 'temporal.yaml');
  for (const service of TEMPORAL_SERVICES) {
    const args = ['--config-file', configFile, '--allow-no-auth', 'start', '--service', service];
    const m = managedProcess(`temporal-${service}`, 'service', path.join(bin, 'temporal-server'), args, serverEnv);
    m.backoffSeconds = cluster.CLUSTER_SERVICE_BACKOFF_SECONDS;
    sup.add(m);
    sup.launch(m);
  }
  await ensureNamespace(env);
  const uiArgs = ['--root', PROJECT_ROOT, '--config', 'deploy/cluster/ui', '--env', 'cluster', 'start'];
  const ui = managedProcess('temporal-ui', 'service', path.join(bin, 'ui-server'), uiArgs, serverEnv);
  sup.add(ui);
  sup.launch(ui);

  // The codec server, for the Web UI's browser and the stock CLI (--codec-endpoint): the key, nothing else.
  const codec = workerProcess(
    'codec-server',
    'service',
    'codec-server.ts',
    {},
    codecServerEnvironment({ ...process.env, ...codecEnv, TEMPORAL_UI_PORT: String(env.TEMPORAL_UI_PORT) })
  );
  sup.add(codec);
  sup.launch(codec);
  // The workers, scaled out. Only the conductors and schedulers get the store's credentials; compute
  // gets an allowlist (compute-env.ts): its queue, the profile, the codec key.
  const workerEnv = { ...profileEnv, ...codecEnv, DATA_DIR: dataDir };
  const storeEnv = {
    DATABASE_URL: `postgres://conductor:${encodeURIComponent(secrets.conductor)}@127.0.0.1:${cluster.CLUSTER_PG_PORT}/conductor`,
  };
  const workers = [
    ...Array.from({ length: cluster.CLUSTER_CONDUCTORS }, (_, i) =>
      workerProcess(`conductor-${i + 1}`, 'core', 'conductor-worker.ts', { ...workerEnv, ...storeEnv })
    ),
    ...Array.from({ length: cluster.CLUSTER_SCHEDULERS }, (_, i) =>
      workerProcess(`scheduler-${i + 1}`, 'core', 'scheduler-worker.ts', { ...workerEnv, ...storeEnv })
    ),
    ...fleet.hosts.map((host) =>
      workerProcess(
        host.name,
        'compute',
        'compute-worker.ts',
        {},
        computeEnvironment(process.env, { ...workerEnv, COMPUTE_HOST: host.name })
      )
    ),
  ];
  // The OpenStack API, with the store's credentials (it reads the store and writes its own tables); its
  // users file is made here on first start, so the ready message can print the admin password.
  const apiUsers = loadOrCreateUsers(usersFile({ ...env, DATA_DIR: dataDir }));
  workers.push(workerProcess('api', 'core', '../api/main.ts', { ...workerEnv, ...storeEnv }));
  // The notification relay: the outbox to RabbitMQ, durable (nothing lost across a broker restart).
  await waitForAmqp(cluster.CLUSTER_RABBITMQ_PORT);
  workers.push(
    workerProcess('notification-relay', 'core', 'notification-relay.ts', {
      ...workerEnv,
      ...storeEnv,
      NOTIFICATION_URL: rabbitmqUrl(cluster.CLUSTER_RABBITMQ_PORT),
      NOTIFICATION_DURABLE: 'true',
    })
  );
  for (const w of workers) {
    sup.add(w);
    sup.launch(w);
  }
  await waitForPollers(env, [
    { name: CONDUCTOR_TASK_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW },
    { name: SCHEDULER_TASK_QUEUE, type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY },
    ...fleet.hosts.map((h) => ({ name: computeTaskQueue(h.name), type: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY })),
  ]);
  // What the ready message promises answers before it is printed: a start reaches history on every
  // shard, the Web UI serves, the codec server the stock CLI is told to use encodes.
  await waitForHistory(env, cluster.CLUSTER_HISTORY_SHARDS);
  await waitForHttp('the Temporal Web UI', `http://127.0.0.1:${env.TEMPORAL_UI_PORT}/`);
  await waitForHttp('the codec server', `${codecEndpointFor(env)!}/encode`, codecProbe(env.CONDUCTOR_CODEC_AUTH));
  await waitForHttp('the OpenStack API', `${publicUrl(env)}/compute/`);
  // What a shell needs for both CLIs (the conductor CLI also reads the store): `set -a; . cli.env; set +a`.
  const cliEnv = {
    ...profileEnv,
    ...codecEnv,
    TEMPORAL_CODEC_ENDPOINT: codecEndpoint,
    DATA_DIR: dataDir,
    FLEET_FILE: env.FLEET_FILE,
    ...storeEnv,
  };
  writeFileSync(
    path.join(dataDir, 'cli.env'),
    Object.entries(cliEnv)
      .map(([k, v]) => `${k}='${v}'\n`)
      .join(''),
    { mode: 0o600 }
  );
  const profile = `TEMPORAL_CONFIG_FILE=${profileFile} TEMPORAL_PROFILE=${CLUSTER_PROFILE}`;
  console.log(
    readyMessage({
      uiUrl: `http://localhost:${env.TEMPORAL_UI_PORT}`,
      frontend: `${frontend} (mTLS)`,
      namespace: env.TEMPORAL_NAMESPACE,
      workers: workers.map((w) => w.name).join(', '),
      dataDir,
      taskQueue: CONDUCTOR_TASK_QUEUE,
      temporalCommand: `${profile} npm run temporal --`,
      again: 'make cluster',
      extra: `${apiReadyLines({ ...env, DATA_DIR: dataDir }, apiUsers.users.users.find((u) => u.name === 'admin')?.password)}  Profile           ${profile} (both CLIs: set -a; . ${path.join(dataDir, 'cli.env')}; set +a)\n  Temporal services ${TEMPORAL_SERVICES.join(', ')} (${cluster.CLUSTER_HISTORY_SHARDS} history shards), PostgreSQL 127.0.0.1:${cluster.CLUSTER_PG_PORT}\n  Notifications     ${rabbitmqUrl(cluster.CLUSTER_RABBITMQ_PORT)} (RabbitMQ; exchange nova, versioned_notifications.info|error, durable)\n  Codec server      ${codecEndpoint} (payloads encrypted; stock CLI: --codec-endpoint ${codecEndpoint})\n`,
    })
  );
}

main().catch((err: unknown) => {
  console.error(`make cluster: ${(err as Error).message}`);
  if (supervisor) void supervisor.shutdown(1);
  else process.exit(1);
});
