/**
 * The only place that reads `process.env` (workers, the launcher and CLIs import it; workflow code never does).
 * Parsed with zod once at start-up: a bad value stops the process with a message naming the variable.
 */
import path from 'node:path';

import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import { z } from 'zod';

import { DEFAULT_SPAWN_SECONDS } from '../compute/fake';
import { COMPUTE_DRIVER_KINDS } from '../domain/fleet';
import { PROJECT_ROOT } from './temporal-binaries';

const port = z.coerce.number().int().min(1).max(65535);

export const EnvSchema = z.object({
  /**
   * Temporal frontend the workers and clients connect to. Unset, the address of the connection profile
   * (TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE, the stock `temporal` CLI's TOML file), else 127.0.0.1:7233.
   */
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** Ports `npm start` gives the dev server it runs. */
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  /** Where the dev server's SQLite file, the conductor store and the compute hosts' guest files live. */
  DATA_DIR: z.string().min(1).default(path.join(PROJECT_ROOT, 'data')),
  /** PostgreSQL store (at scale); unset means the embedded SQLite file `$DATA_DIR/conductor.sqlite`. */
  DATABASE_URL: z.string().url().optional(),
  /** The fleet `npm start` runs: one compute worker per host (with COMPUTE_DRIVER=qemu: fleet/qemu.json). */
  FLEET_FILE: z
    .string()
    .min(1)
    .default(path.join(PROJECT_ROOT, 'fleet', 'default.json')),
  /** Extra flavors and images merged over the defaults (m1.tiny … m1.xlarge, cirros …). */
  CATALOGUE_FILE: z.string().min(1).optional(),
  /** The host a compute worker serves; it polls `compute-<host>`. */
  COMPUTE_HOST: z.string().optional(),
  /**
   * Several hosts served by one compute process (one Worker per host queue, one connection): a list and
   * ranges (`node-1..node-1000,edge-1`), or `all` for every host of FLEET_FILE. Unset: COMPUTE_HOST alone.
   */
  COMPUTE_HOSTS: z.string().min(1).optional(),
  /** Hosts of a multi-host compute process that share one connection to Temporal (its long polls, heartbeats). */
  COMPUTE_HOSTS_PER_CONNECTION: z.coerce.number().int().positive().max(10_000).default(100),
  /** Host registrations (registerHost, then reconcileHost) a multi-host compute process runs at once. */
  COMPUTE_REGISTER_CONCURRENCY: z.coerce.number().int().positive().max(1000).default(50),
  /** The virt driver of a compute host whose fleet entry names none: `fake` (default) or `qemu` (real guests). */
  COMPUTE_DRIVER: z.enum(COMPUTE_DRIVER_KINDS).default('fake'),
  /** Seconds the fake hypervisor takes to spawn a guest. */
  COMPUTE_SPAWN_SECONDS: z.coerce.number().nonnegative().default(DEFAULT_SPAWN_SECONDS),
  /**
   * Spawns of new guests one compute host runs at once (Nova's max_concurrent_builds; 0: no limit). Only
   * spawns wait for these slots; a fleet host's `maxConcurrentBuilds` overrides it.
   */
  COMPUTE_MAX_CONCURRENT_BUILDS: z.coerce.number().int().nonnegative().default(10),
  /** Live-migration copies out of one host at once (Nova's max_concurrent_live_migrations; 0: no limit). */
  COMPUTE_MAX_CONCURRENT_LIVE_MIGRATIONS: z.coerce.number().int().nonnegative().default(1),
  /** Compute steps of every kind one host runs at once (the worker's activity slots); above the two limits. */
  COMPUTE_MAX_CONCURRENT_TASKS: z.coerce.number().int().positive().max(10_000).default(100),
  /**
   * A compute host is down once no poll has been seen on its queue for this long (Nova's
   * service_down_time); a shorter gap, such as a server restart, does not take it down.
   */
  HOST_DOWN_AFTER_SECONDS: z.coerce.number().positive().max(3600).default(60),
  /** The launcher restarts a crashed worker after this, doubling per crash in a row (capped at 30 s). */
  LAUNCHER_BACKOFF_SECONDS: z.coerce.number().positive().max(60).default(1),
  /** A compute worker that crashed this many times in a row is left down (the rest keeps running). */
  LAUNCHER_MAX_RESTARTS: z.coerce.number().int().nonnegative().max(100).default(5),
  LOG_LEVEL: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  /** `json`: one JSON object per line with workflow and activity ids; `pretty`: the SDK's own format. */
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
  /** Prometheus metrics of the Temporal runtime at http://METRICS_HOST:METRICS_PORT/metrics; unset: off. */
  METRICS_PORT: port.optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /**
   * Seconds between runs of the reconciler's Temporal Schedule, created or updated by the conductor
   * worker at start-up; 0: the worker leaves the schedule alone.
   */
  RECONCILE_PERIOD_SECONDS: z.coerce.number().int().nonnegative().max(86_400).default(60),
  /**
   * Where the notification relay publishes the outbox (docs/notifications.md): `amqp://` or `amqps://`
   * (RabbitMQ, as oslo.messaging's notifier). Unset: notifications stay in the store, read with
   * `conductor notifications`.
   */
  NOTIFICATION_URL: z
    .string()
    .regex(/^amqps?:\/\//, 'must be an amqp:// or amqps:// URL')
    .optional(),
  /**
   * `true`: the relay declares the `nova` exchange and the notification queues durable and the broker
   * confirms a notification once it is on disk, so a broker restart loses none; the consumers must then
   * run with oslo.messaging's `amqp_durable_queues = True` too. Default `false`, oslo's default.
   */
  NOTIFICATION_DURABLE: z.enum(['true', 'false']).default('false'),
  /**
   * `1`: `npm start` also runs a private RabbitMQ broker (scripts/rabbitmq.sh; data in $DATA_DIR/rabbitmq)
   * on NOTIFICATION_RABBITMQ_PORT, and the relay publishes to it (NOTIFICATION_URL is then not needed).
   */
  NOTIFICATION_RABBITMQ: z.enum(['0', '1']).default('0'),
  NOTIFICATION_RABBITMQ_PORT: port.default(5673),
  /** Days notifications are kept (delivered ones with a relay; all of them without). */
  NOTIFICATION_RETENTION_DAYS: z.coerce.number().positive().max(3650).default(7),
  /** `production` (the Docker image): the conductor worker loads the prebuilt workflow bundle (npm run build). */
  NODE_ENV: z.string().optional(),
  /**
   * A workflow bundle already built from these sources (bundleWorkflows' code, written to a file) that the
   * conductor worker loads instead of bundling at start (seconds of webpack per start): the test harnesses
   * pass the one their global setup built, so the fault suite's many conductor restarts do not re-bundle.
   */
  WORKFLOW_BUNDLE_PATH: z.string().min(1).optional(),
  /**
   * The payload codec's key file (src/workers/codec.ts: JSON or `keyid:base64key` lines); set: every
   * payload the workers and CLIs send is AES-256-GCM encrypted and `npm start` runs the codec server.
   */
  CONDUCTOR_CODEC_KEY_FILE: z.string().min(1).optional(),
  /** The codec server (`npm run codec-server`): address, port, the Web UI origins it allows (CORS). */
  CONDUCTOR_CODEC_HOST: z.string().min(1).default('127.0.0.1'),
  CONDUCTOR_CODEC_PORT: port.default(8234),
  CONDUCTOR_CODEC_CORS_ORIGINS: z.string().optional(),
  /** When set, the codec server answers only requests whose Authorization header is exactly this. */
  CONDUCTOR_CODEC_AUTH: z.string().min(1).optional(),
  /** The OpenStack-compatible API (src/api): address and port it listens on (loopback by default). */
  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: port.default(8774),
  /** The API's address as clients reach it (catalog, links); default http://API_HOST:API_PORT. */
  API_PUBLIC_URL: z.string().url().optional(),
  /** The API's users, passwords, roles and token key (JSON); default $DATA_DIR/api-users.json, made on first start. */
  API_USERS_FILE: z.string().min(1).optional(),
  /** Lifetime of the API's tokens, seconds. */
  API_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .positive()
    .max(7 * 86_400)
    .default(3600),
});
/**
 * The environment, and what the connection profile adds to it: TLS (client certificate, CA, server
 * name) and an API key. Absent (as in `make start`) the connection is plain.
 */
/** The default fleet of real guests: three small hosts (COMPUTE_DRIVER=qemu without a FLEET_FILE). */
export const QEMU_FLEET_FILE = path.join(PROJECT_ROOT, 'fleet', 'qemu.json');

export type Env = z.infer<typeof EnvSchema> & { temporalTls?: TemporalTls; temporalApiKey?: string };
export type TemporalTls = NonNullable<ReturnType<typeof toClientOptions>['connectionOptions']['tls']>;

/**
 * Parses the environment; on error prints one line per bad variable and exits 2. The Temporal connection
 * comes from `@temporalio/envconfig`, as the stock `temporal` CLI takes it: the profile TEMPORAL_PROFILE
 * (default `default`) of TEMPORAL_CONFIG_FILE (default ~/.config/temporalio/temporal.toml, absent is
 * fine), overridden by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY.
 */
export function loadEnv(env: NodeJS.ProcessEnv = process.env): Env {
  let profile;
  try {
    const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
    profile = toClientOptions(loadClientConfigProfile({ overrideEnvVars: vars }));
  } catch (err) {
    console.error(`config: TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE: ${(err as Error).message}`);
    process.exit(2);
  }
  const parsed = EnvSchema.safeParse({
    ...env,
    ...(env.FLEET_FILE === undefined && env.COMPUTE_DRIVER === 'qemu' ? { FLEET_FILE: QEMU_FLEET_FILE } : {}),
    TEMPORAL_ADDRESS: profile.connectionOptions.address ?? env.TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE: profile.namespace ?? env.TEMPORAL_NAMESPACE,
  });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) console.error(`config: ${issue.path.join('.')}: ${issue.message}`);
    process.exit(2);
  }
  const { tls, apiKey } = profile.connectionOptions;
  return { ...parsed.data, ...(tls ? { temporalTls: tls } : {}), ...(apiKey ? { temporalApiKey: apiKey } : {}) };
}

/**
 * The connection options of the environment's profile (config.ts): address, TLS and API key; plain
 * 127.0.0.1:7233 without a profile (`make start`).
 */
export function temporalConnectionOptions(env: Env): { address: string; tls?: Env['temporalTls']; apiKey?: string } {
  return {
    address: env.TEMPORAL_ADDRESS,
    ...(env.temporalTls ? { tls: env.temporalTls } : {}),
    ...(env.temporalApiKey ? { apiKey: env.temporalApiKey } : {}),
  };
}

/** The codec server's address for clients on this machine, when a codec key is configured. */
export function codecEndpointFor(env: Env): string | undefined {
  return env.CONDUCTOR_CODEC_KEY_FILE ? `http://localhost:${env.CONDUCTOR_CODEC_PORT}` : undefined;
}

/** The SQLite file of the conductor store, when DATABASE_URL is not set. */
export function sqlitePath(env: Env): string {
  return path.join(env.DATA_DIR, 'conductor.sqlite');
}
