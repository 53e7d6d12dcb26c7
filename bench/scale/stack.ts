/**
 * B-scale's system: a dev server started here in memory (`temporal server start-dev` without
 * --db-filename, tuned as `make start` runs it), and the real worker processes (conductor, scheduler,
 * and ONE compute process serving every host of a generated fleet: COMPUTE_HOSTS=all), each started as
 * `node --import tsx src/workers/<role>-worker.ts` on its own data folder under a temp dir.
 */
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { Connection } from '@temporalio/client';
import { Client } from '@temporalio/client';

import { generateFleet } from '../../src/domain/fleet';
import { SEARCH_ATTRIBUTE_CLI_ARGS } from '../../src/shared/search-attributes';
import { DEV_SERVER_TUNING_ARGS } from '../../src/workers/dev-server';
import { requireTemporalBinary } from '../../src/workers/temporal-binaries';
import { freePort } from '../../test/helpers/ports';
import { connectWhenServing, Proc } from '../../test/faults/process';

const ROOT = path.resolve(__dirname, '..', '..');

export type Role = 'conductor' | 'scheduler' | 'compute';

/** The memory a process holds now and at its peak (VmRSS, VmHWM of /proc/<pid>/status), in MiB. */
export function memoryMiB(pid: number | undefined): { rssMiB: number; peakMiB: number } {
  if (pid === undefined) return { rssMiB: NaN, peakMiB: NaN };
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
}

export class ScaleStack {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'bench-scale-'));
  readonly dataDir = path.join(this.dir, 'data');
  readonly fleetFile = path.join(this.dir, 'fleet.json');
  port = 0;
  server!: Proc;
  readonly workers = new Map<Role, Proc>();
  connection!: Connection;
  client!: Client;

  constructor(
    readonly hosts: number,
    readonly spawnSeconds: number
  ) {
    mkdirSync(this.dataDir, { recursive: true });
    writeFileSync(this.fleetFile, JSON.stringify(generateFleet(hosts)));
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The dev server, in memory (no --db-filename): its history is gone when it stops. */
  async startServer(): Promise<void> {
    this.port = await freePort();
    const args = ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(this.port)];
    args.push('--ui-port', String(await freePort()), '--log-level', 'error');
    args.push(...SEARCH_ATTRIBUTE_CLI_ARGS.flatMap((sa) => ['--search-attribute', sa]), ...DEV_SERVER_TUNING_ARGS);
    this.server = new Proc('temporal', requireTemporalBinary('cli'), args, process.env).start();
    this.connection = await connectWhenServing(this.server, this.address);
    this.client = new Client({ connection: this.connection });
  }

  worker(role: Role): Proc {
    let proc = this.workers.get(role);
    if (!proc) {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        DATA_DIR: this.dataDir,
        FLEET_FILE: this.fleetFile,
        TEMPORAL_ADDRESS: this.address,
        COMPUTE_SPAWN_SECONDS: String(this.spawnSeconds),
        LOG_LEVEL: 'INFO',
        RECONCILE_PERIOD_SECONDS: '0',
        ...(role === 'compute' ? { COMPUTE_HOSTS: 'all' } : {}),
      };
      const script = path.join(ROOT, 'src', 'workers', `${role}-worker.ts`);
      proc = new Proc(role, process.execPath, ['--import', 'tsx', script], env);
      this.workers.set(role, proc);
    }
    return proc;
  }

  /** Starts a worker and waits for `ready` in its output. */
  async startWorker(role: Role, ready: string, timeoutMs = 300_000): Promise<void> {
    const proc = this.worker(role).start();
    // Its output also goes to a file as it comes (KEEP_BENCH_DIR=1 keeps it), and a process that exits
    // while awaited fails the wait at once.
    const log = createWriteStream(path.join(this.dir, `${role}.log`));
    proc.child?.stdout?.on('data', (c: Buffer) => log.write(c));
    proc.child?.stderr?.on('data', (c: Buffer) => log.write(c));
    const exited = new Promise<never>((_, reject) =>
      proc.child?.once('exit', (code, signal) =>
        reject(new Error(`${role} exited (${code ?? signal}) before printing ${ready}:\n${proc.output.slice(-3000)}`))
      )
    );
    exited.catch(() => undefined);
    await Promise.race([proc.waitFor(ready, timeoutMs), exited]);
  }

  pid(role: Role | 'server'): number | undefined {
    return role === 'server' ? this.server.child?.pid : this.workers.get(role)?.child?.pid;
  }

  /** Workers first (they drain while the server is up), then the server; the temp dir is removed. */
  async stop(): Promise<void> {
    for (const proc of this.workers.values()) await proc.signal('SIGTERM');
    await this.connection?.close();
    await this.server?.signal('SIGTERM');
    if (process.env.KEEP_BENCH_DIR !== '1') rmSync(this.dir, { recursive: true, force: true });
  }
}
