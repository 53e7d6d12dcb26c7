/**
 * The fault suite's Stack on `make cluster` instead of the dev server: src/workers/cluster.ts itself
 * (PostgreSQL, the four Temporal services, the Web UI, two conductors, two schedulers, one compute
 * process per host), started by the test on free loopback ports with its own data folder. The test
 * talks to it as any client must: over mTLS with the profile the cluster wrote, and it kills the
 * cluster's children by the pids the supervisor logs.
 */
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { inject } from 'vitest';

import { dataConverterFor } from '../../src/workers/codec';
import { Stack } from '../faults/harness';
import { Proc } from '../faults/process';
import { isAlive } from '../faults/launcher-stack';
import { freePort } from '../helpers/ports';

const ROOT = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);

const PORTS = [
  'TEMPORAL_PORT',
  'TEMPORAL_UI_PORT',
  'CLUSTER_PG_PORT',
  'CLUSTER_RABBITMQ_PORT',
  'CLUSTER_FRONTEND_HTTP_PORT',
  'CLUSTER_FRONTEND_MEMBERSHIP_PORT',
  'CLUSTER_HISTORY_PORT',
  'CLUSTER_HISTORY_MEMBERSHIP_PORT',
  'CLUSTER_MATCHING_PORT',
  'CLUSTER_MATCHING_MEMBERSHIP_PORT',
  'CLUSTER_WORKER_PORT',
  'CLUSTER_WORKER_MEMBERSHIP_PORT',
  'CONDUCTOR_CODEC_PORT',
  'API_PORT',
] as const;

export class ClusterStack extends Stack {
  constructor(...args: ConstructorParameters<typeof Stack>) {
    super(...args);
    // PostgreSQL runs as `postgres` under root: its data folder's parents must let it through.
    chmodSync(this.dir, 0o755);
  }

  cluster?: Proc;
  ports: Record<(typeof PORTS)[number], number> = {} as never;
  /** Seconds `make cluster` took from its start to its ready message. */
  startSeconds = 0;

  get profileFile(): string {
    return path.join(this.dataDir, 'temporal.toml');
  }

  /** The environment of every client: the cluster's profile (address, namespace, mTLS files). */
  get profileEnv(): Record<string, string> {
    return { TEMPORAL_CONFIG_FILE: this.profileFile, TEMPORAL_PROFILE: 'cluster' };
  }

  get databaseUrl(): string {
    const { conductor } = JSON.parse(readFileSync(path.join(this.dataDir, 'secrets.json'), 'utf8')) as {
      conductor: string;
    };
    return `postgres://conductor:${encodeURIComponent(conductor)}@127.0.0.1:${this.ports.CLUSTER_PG_PORT}/conductor`;
  }

  /** Starts the cluster (again: on the same ports and data) and waits for its ready message, then connects with the profile. */
  async startCluster(env: Record<string, string> = {}): Promise<void> {
    if (this.port === 0) {
      // freePort gives ports below 32768: Temporal keeps cluster membership ports as smallint.
      for (const name of PORTS) this.ports[name] = await freePort();
    }
    this.port = this.ports.TEMPORAL_PORT;
    const t0 = Date.now();
    const cluster = new Proc(
      'cluster',
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'cluster.ts')],
      {
        ...process.env,
        ...Object.fromEntries(Object.entries(this.ports).map(([k, v]) => [k, String(v)])),
        CLUSTER_DATA_DIR: this.dataDir,
        FLEET_FILE: this.fleetFile,
        COMPUTE_SPAWN_SECONDS: String(this.spawnSeconds),
        RECONCILE_PERIOD_SECONDS: '0',
        LOG_LEVEL: 'INFO',
        ...env,
      }
    );
    this.cluster = cluster.start();
    await cluster.waitFor('Conductor on Temporal is running', 240_000);
    this.startSeconds = (Date.now() - t0) / 1000;
    const { connectionOptions, namespace } = loadClientConnectConfig({
      configSource: { path: this.profileFile },
      profile: 'cluster',
      disableEnv: true,
    });
    this.connection = await Connection.connect(connectionOptions);
    this.client = new Client({
      connection: this.connection,
      namespace: namespace ?? 'default',
      dataConverter: dataConverterFor(this.codecEnv),
    });
  }

  /** Ctrl-C (SIGINT), as in a terminal: the cluster stops everything and exits 0. Returns its exit code. */
  async stopCluster(): Promise<number | null> {
    const child = this.cluster?.child;
    await this.cluster?.signal('SIGINT');
    await this.connection?.close();
    this.connection = undefined;
    return child?.exitCode ?? null;
  }

  /** The payload codec's key file the cluster made, for this test's own clients and workers. */
  get codecEnv(): { CONDUCTOR_CODEC_KEY_FILE: string } {
    return { CONDUCTOR_CODEC_KEY_FILE: path.join(this.dataDir, 'codec.key') };
  }

  /** The codec server the cluster runs. */
  get codecEndpoint(): string {
    return `http://localhost:${this.ports.CONDUCTOR_CODEC_PORT}`;
  }

  /** The stock `temporal` CLI with the cluster's profile and its codec server, `-o json`: its parsed output. */
  async temporal(...args: string[]): Promise<unknown> {
    return this.temporalCli({ TEMPORAL_CODEC_ENDPOINT: this.codecEndpoint }, args);
  }

  /** The stock CLI with the profile (mTLS) but no codec: payloads as the cluster stores them. */
  async temporalWithoutCodec(...args: string[]): Promise<unknown> {
    return this.temporalCli({}, args);
  }

  private async temporalCli(extra: Record<string, string>, args: string[]): Promise<unknown> {
    const { TEMPORAL_CODEC_ENDPOINT: _inherited, ...parent } = process.env;
    const { stdout } = await run(inject('temporalCli'), [...args, '-o', 'json'], {
      env: { ...parent, ...this.profileEnv, ...extra },
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout.trim() === '' ? [] : (JSON.parse(stdout) as unknown);
  }

  /** The pid the supervisor last started `name` with. */
  pidOf(name: string): number | undefined {
    const pids = [...(this.cluster?.output ?? '').matchAll(/^launcher: started (\S+) \(pid (\d+)\)$/gm)]
      .filter((m) => m[1] === name)
      .map((m) => Number(m[2]));
    return pids.at(-1);
  }

  protected override workerEnv(host?: string): NodeJS.ProcessEnv {
    return { ...super.workerEnv(host), ...this.profileEnv, ...this.codecEnv, DATABASE_URL: this.databaseUrl };
  }

  override storeOptions(): { databaseUrl: string } {
    return { databaseUrl: this.databaseUrl };
  }

  override logs(lines = 120): string {
    return `===== cluster\n${(this.cluster?.output ?? '').split('\n').slice(-lines).join('\n')}`;
  }

  /** The cluster stopped as Ctrl-C stops it (SIGINT), then anything it left behind killed. */
  override async dispose(): Promise<void> {
    const pids = [...(this.cluster?.output ?? '').matchAll(/^launcher: started \S+ \(pid (\d+)\)$/gm)].map((m) =>
      Number(m[1])
    );
    await this.cluster?.signal('SIGINT').catch(() => undefined);
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await super.dispose();
  }
}
