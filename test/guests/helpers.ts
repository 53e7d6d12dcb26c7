/**
 * Real-guest test helpers: drivers on a fresh data directory, the test images and flavors, reading a
 * guest's serial console, and the check that a test left no QEMU process or file behind (only processes
 * whose command line names this test's data directory are ever killed); and the whole system on real
 * guests (`startGuestStack`: the launcher, driven by the stock `temporal` CLI and the `conductor` CLI).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { expect, inject, vi } from 'vitest';

import { stopAllGuests } from '../../src/cli/guests';
import type { GuestFlavor, GuestImage } from '../../src/compute/driver';
import type { QemuDriverOptions } from '../../src/compute/qemu';
import { QemuDriver } from '../../src/compute/qemu';
import { runCli } from '../helpers/cli';
import { freePort } from '../helpers/ports';

const exec = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');

export const CIRROS: GuestImage = { name: 'cirros', sizeGb: 0.02 };
export const STUBBORN: GuestImage = { name: 'stubborn', sizeGb: 0.02 };
export const DIRTY: GuestImage = { name: 'dirty', sizeGb: 0.02 };
export const SMALL: GuestFlavor = { name: 'g.small', vcpus: 1, memoryMb: 128, diskGb: 1 };
export const MEDIUM: GuestFlavor = { name: 'g.medium', vcpus: 1, memoryMb: 192, diskGb: 2 };

export class GuestLab {
  readonly dataDir: string;
  readonly drivers: QemuDriver[] = [];

  /** A fresh data directory, or `dataDir` (whose QEMU processes it then watches and, on dispose, kills). */
  constructor(dataDir?: string) {
    this.dataDir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'guests-'));
  }

  driver(host: string, options: Partial<QemuDriverOptions> = {}): QemuDriver {
    const d = new QemuDriver({
      host,
      dataDir: this.dataDir,
      imageDir: inject('guestImageDir'),
      bootTimeoutMs: 60_000,
      ...options,
    });
    this.drivers.push(d);
    return d;
  }

  instanceDir(instanceId: string): string {
    return path.join(this.dataDir, 'instances', instanceId);
  }

  console(instanceId: string): string {
    try {
      return readFileSync(path.join(this.instanceDir(instanceId), 'console.log'), 'utf8').replace(/\r/g, '');
    } catch {
      return '';
    }
  }

  /** The boot lines printed so far. */
  boots(instanceId: string): string[] {
    return this.console(instanceId).match(/GUEST-BOOT .*/g) ?? [];
  }

  lastHeartbeat(instanceId: string): number {
    const all = [...this.console(instanceId).matchAll(/HEARTBEAT (\d+)/g)];
    return Number(all.at(-1)?.[1] ?? 0);
  }

  /** Waits until the console holds `count` boot lines; returns the last. */
  async waitForBoot(instanceId: string, count: number, timeout = 60_000): Promise<string> {
    return vi.waitFor(
      () => {
        const boots = this.boots(instanceId);
        if (boots.length < count) throw new Error(`${boots.length} boot line(s) of ${count}`);
        return boots[count - 1] ?? '';
      },
      { timeout, interval: 100 }
    );
  }

  async waitForHeartbeat(instanceId: string, atLeast: number, timeout = 30_000): Promise<number> {
    return vi.waitFor(
      () => {
        const n = this.lastHeartbeat(instanceId);
        if (n < atLeast) throw new Error(`heartbeat ${n} < ${atLeast}`);
        return n;
      },
      { timeout, interval: 100 }
    );
  }

  /** Pids of QEMU processes started on this lab's data directory (none of anyone else's). */
  qemuPids(): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid)) continue;
      try {
        const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (state.slice(state.lastIndexOf(')') + 2).startsWith('Z')) continue;
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmdline.includes('qemu-system') && cmdline.includes(`${this.dataDir}/`)) pids.push(pid);
      } catch {
        // gone
      }
    }
    return pids;
  }

  /** Instance directories left (each test cleans its own guests with the driver). */
  leftovers(): string[] {
    try {
      return readdirSync(path.join(this.dataDir, 'instances'));
    } catch {
      return [];
    }
  }

  /** Kills (by pid) anything a failed test left, closes the drivers, removes the data directory. */
  async dispose(): Promise<void> {
    for (const pid of this.qemuPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await Promise.all(this.drivers.map((d) => d.close()));
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** An instance as the workflows return it. */
export interface StackInstance {
  instanceId: string;
  name: string;
  host: string;
  vmState: string;
  taskState: string | null;
  powerState: string;
  flavor: string;
  image: string;
}

/**
 * The whole system on real guests, as `COMPUTE_DRIVER=qemu make start` runs it: the launcher (dev server,
 * conductor, scheduler, one compute worker per host, every host on the QEMU driver) on a fresh data
 * directory, driven by the stock `temporal` CLI. `env` is added to the launcher's environment; each host
 * offers 2 vCPUs, `memoryMb` and 100 GB of disk.
 */
export async function startGuestStack(hosts: readonly string[], env: Record<string, string> = {}, memoryMb = 3072) {
  const dir = mkdtempSync(path.join(tmpdir(), 'qemu-e2e-'));
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  let output = '';
  let serial = 0;
  const fleetFile = path.join(dir, 'fleet.json');
  writeFileSync(
    fleetFile,
    JSON.stringify({
      hosts: hosts.map((name) => ({ name, availabilityZone: 'az1', vcpus: 2, memoryMb, diskGb: 100 })),
    })
  );
  const launcher = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'launcher.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      COMPUTE_DRIVER: 'qemu',
      GUEST_IMAGE_DIR: inject('guestImageDir'),
      DATA_DIR: dataDir,
      FLEET_FILE: fleetFile,
      TEMPORAL_PORT: String(port),
      TEMPORAL_UI_PORT: String(await freePort()),
      API_PORT: String(await freePort()),
      TEMPORAL_CLI_PATH: inject('temporalCli'),
      RECONCILE_PERIOD_SECONDS: '0',
      LOG_LEVEL: 'WARN',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  launcher.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  launcher.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

  /** The stock `temporal` CLI against the system, JSON out. */
  async function temporal<T>(...args: string[]): Promise<T> {
    const command = [...args, '--address', `127.0.0.1:${port}`, '-o', 'json'];
    const { stdout } = await exec(inject('temporalCli'), command, {
      maxBuffer: 16 * 1024 * 1024,
      // A call that hangs fails naming its command, not as the test's timeout.
      timeout: 240_000,
    }).catch((err: unknown) => {
      // A failed workflow's CLI prints its failure (type, message) on stdout: the error says why, not
      // only "workflow failed".
      const { stdout: out = '', stderr = '' } = err as { stdout?: string; stderr?: string };
      throw new Error(`temporal ${args.slice(0, 2).join(' ')} failed: ${stderr.trim()}\n${out.slice(-4000)}`, {
        cause: err,
      });
    });
    return JSON.parse(stdout) as T;
  }
  /** `temporal workflow execute|start` of `type` on the conductor's queue. */
  const run = <T>(verb: 'execute' | 'start', type: string, id: string, input: unknown) =>
    temporal<T>(
      'workflow',
      verb,
      '--type',
      type,
      '--task-queue',
      'conductor',
      '--workflow-id',
      id,
      '--input',
      JSON.stringify(input)
    );
  /** `temporal workflow execute`: the workflow's result (the CLI fails when the workflow does). */
  async function execute<T>(type: string, input: unknown, id = `${type}-${++serial}`): Promise<T> {
    const out = await run<{ status: string; result: T }>('execute', type, id, input);
    expect(out.status, `${type} ${JSON.stringify(input)}`).toBe('COMPLETED');
    return out.result;
  }
  const consoleOf = async (instanceId: string) =>
    (await execute<{ output: string }>('consoleOutput', { instanceId })).output;
  const boots = (console: string) =>
    [...console.matchAll(/GUEST-BOOT boot=(\d+) image=(\S+)/g)].map((m) => `${m[1]} ${m[2]}`);
  const result = <T>(id: string) =>
    temporal<{ status: string; result: T }>('workflow', 'result', '--workflow-id', id).then((r) => r.result);

  const stack = {
    dir,
    dataDir,
    port,
    /** The launcher's output so far (every process's, prefixed). */
    output: () => output,
    /**
     * What a failed test prints: the launcher's last lines, then every QEMU's own log (a guest that died
     * says why there).
     */
    tail: (lines = 60) => {
      const logs: string[] = [];
      const instances = path.join(dataDir, 'instances');
      for (const id of existsSync(instances) ? readdirSync(instances) : [])
        for (const log of readdirSync(path.join(instances, id)).filter((f) => /^qemu\..+\.log$/.test(f)))
          logs.push(`${id}/${log}:\n${readFileSync(path.join(instances, id, log), 'utf8').slice(-2000)}`);
      return [output.split('\n').slice(-lines).join('\n'), ...logs].join('\n');
    },
    nextSerial: () => ++serial,
    temporal,
    execute,
    result,
    start: (type: string, id: string, input: unknown) => run('start', type, id, input),
    update: <T>(id: string, name: string) =>
      temporal<{ result: T }>('workflow', 'update', 'execute', '--workflow-id', id, '--name', name).then(
        (r) => r.result
      ),
    /** The workflow's end: completed (its result) or failed (the CLI's error, naming the failure's type). */
    async ending<T>(
      id: string,
      withinMs = 120_000
    ): Promise<{ completed: true; result: T } | { completed: false; error: string }> {
      // Closed within the bound, or a failure naming what it still waits on (not the test's timeout).
      await vi.waitFor(
        async () => {
          const d = await temporal<{ workflowExecutionInfo?: { status?: string }; pendingActivities?: unknown[] }>(
            'workflow',
            'describe',
            '--workflow-id',
            id
          );
          expect(d.workflowExecutionInfo?.status, JSON.stringify(d.pendingActivities)).not.toMatch(/RUNNING/);
        },
        { timeout: withinMs, interval: 500 }
      );
      try {
        return { completed: true, result: await result<T>(id) };
      } catch (err) {
        // `temporal workflow result -o json` prints the failure (its type, its message): in the error's text.
        return { completed: false, error: String(err) };
      }
    },
    /** The operation's `getProgress` query (undefined before it answers). */
    progress: (id: string) =>
      temporal<{ queryResult: Array<{ taskState: string | null; host: string | null; step: string }> }>(
        'workflow',
        'query',
        '--workflow-id',
        id,
        '--name',
        'getProgress'
      ).then(
        (q) => q.queryResult[0],
        () => undefined
      ),
    consoleOf,
    boots,
    /** The guest's heartbeat counter now: the last HEARTBEAT line (it restarts at every boot). */
    lastHeartbeat: (console: string) => Number([...console.matchAll(/HEARTBEAT (\d+)/g)].at(-1)?.[1] ?? 0),
    /** Waits until the guest's console shows its `n`th boot line (of `image`). */
    waitForBoot: (instanceId: string, n: number, image = 'cirros') =>
      vi.waitFor(async () => expect(boots(await consoleOf(instanceId)).at(-1)).toBe(`${n} ${image}`), {
        timeout: 90_000,
        interval: 1000,
      }),
    /** The pid of the launcher's worker `name` (a host's compute worker, `conductor`, `scheduler`) now. */
    workerPid: (name: string) =>
      Number(
        [...output.matchAll(/^launcher: started (\S+) \(pid (\d+)\)$/gm)].filter((m) => m[1] === name).at(-1)?.[2]
      ),
    /** `conductor audit` against the system: its exit code and output. */
    audit: () =>
      runCli(path.join(ROOT, 'src', 'cli', 'conductor.ts'), ['audit'], {
        DATA_DIR: dataDir,
        DATABASE_URL: undefined,
        TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
      }),
    /** `conductor <args>` against the system. */
    conductor: (...args: string[]) =>
      runCli(path.join(ROOT, 'src', 'cli', 'conductor.ts'), args, {
        DATA_DIR: dataDir,
        DATABASE_URL: undefined,
        TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
      }),
    /** The workflows running now. */
    running: () => temporal<unknown[]>('workflow', 'list', '--query', 'ExecutionStatus="Running"'),
    /** Waits for the launcher's "running" line. */
    ready: () =>
      vi.waitFor(
        () => {
          if (launcher.exitCode !== null) throw new Error(`launcher exited:\n${output}`);
          expect(output).toContain('Conductor on Temporal is running');
        },
        { timeout: 170_000, interval: 250 }
      ),
    /** Stops the launcher, then (whatever a failure left) every guest of this data directory by its pid file. */
    async stop(): Promise<void> {
      // The launcher gone first: its store and dev server write under the directory until they exit.
      if (launcher.exitCode === null && launcher.signalCode === null) {
        const exited = new Promise((resolve) => launcher.once('exit', resolve));
        launcher.kill('SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
      }
      await stopAllGuests(dataDir, 2000);
      // KEEP_GUEST_DATA=1 keeps the directory (the dev server's data, the guests' logs) to look at.
      if (!process.env.KEEP_GUEST_DATA) rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
    },
  };
  return stack;
}

export type GuestStack = Awaited<ReturnType<typeof startGuestStack>>;
