/**
 * bench:guests — the orchestration's overhead on real work (issue 22), in one run on this machine:
 *
 * - Build: `buildInstance` started on the system with COMPUTE_DRIVER=qemu (the launcher, two hosts)
 *   until the guest prints its boot line on its serial console, against a bare `qemu-system` launch of
 *   the same image (a qcow2 overlay on the same base, the driver's command line and memory) to the same
 *   line. Target: build / bare <= 1.25.
 * - Live migration: `liveMigrate` of a running guest, start to result, against a bare QMP migration of
 *   the same image between two QEMU processes (the destination launched with `-incoming defer`, its
 *   monitor tried every 10 ms as the driver's, then `migrate` with the whole 500 ms downtime limit at
 *   once, until QEMU's MIGRATION event says completed, as the driver wakes on it). Twice, each side with
 *   the same max-bandwidth: none (the driver's default, libvirt's: an idle 256 MiB guest's copy is about
 *   0.1 s on loopback, so the orchestration's fixed cost dominates), then a second stack with both capped
 *   at 128 MiB/s (QEMU's own default, about a 1 Gbit/s link: a copy of about 0.7 s).
 *   Target: workflow / bare <= 1.2, and the workflow's switch-over pause within its 500 ms limit.
 *
 * Runs alternate (build, bare, build, bare …) so a busy spell hits both alike; medians are compared.
 * After the table, the last build's and the last live migration's histories say where the time went
 * (guests-profile.ts: each activity's queue wait and run, each workflow task, child workflows inline).
 * The last line printed is one JSON object with every figure. Exits 0 unless it crashes.
 *
 *   npm run bench:guests              3 of each
 *   npm run bench:guests -- --quick   1 of each (a smoke run)
 *   npm run bench:guests -- --runs 5  5 of each
 *
 * Each live migration's line also splits its time (liveSplit): up to the destination's launch, the
 * launch, to the copy, the copy, after it, the client's calls; the JSON line has their medians.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client, Connection } from '@temporalio/client';

import { stopAllGuests } from '../src/cli/guests';
import { detectAccel } from '../src/compute/qemu/accel';
import { defaultImageDir } from '../src/compute/qemu';
import { UNCAPPED_BANDWIDTH_BYTES } from '../src/compute/qemu/live';
import { launchDetached, qemuArgv } from '../src/compute/qemu/process';
import { QmpClient } from '../src/compute/qemu/qmp';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../src/shared/task-queues';
import type { buildInstance } from '../src/workflows/build-instance';
import type { liveMigrate } from '../src/workflows/live-migrate';
import { freePort } from '../test/helpers/ports';
import { type Profile, profileOf, profileTable } from './guests-profile';

const quick = process.argv.includes('--quick');
const runsArg = process.argv.indexOf('--runs');
const RUNS = quick ? 1 : runsArg > 0 ? Math.max(1, Number(process.argv[runsArg + 1]) || 3) : 3;
const TARGETS = { build: 1.25, liveMigration: 1.2, downtimeMs: 500 };
/** The driver's memory for an m1.tiny guest (512 MB, capped at the driver's default 256 MiB). */
const GUEST_MEMORY_MB = 256;
const BOOT_LINE = /GUEST-BOOT boot=\d+ image=\S+/;
const ROOT = path.resolve(__dirname, '..');

const imageDir = defaultImageDir();
const work = mkdtempSync(path.join(tmpdir(), 'bench-guests-'));
/** QMP sockets of the bare QEMUs: a short path (UNIX sockets stop at 107 bytes). */
const sockets = mkdtempSync('/tmp/bg-');
const barePids: number[] = [];
/** The stack running now (one at a time): its launcher and data directory. */
let launcher: ChildProcess | undefined;
let dataDir = path.join(work, 'data');
const dataDirs: string[] = [];
let launcherOutput = '';
/** QEMU's own default max-bandwidth (about a 1 Gbit/s link): the capped live migrations, both sides. */
const CAPPED_MB = 128;

/** Resolves with the time the file first holds `line` (polled every 20 ms), or throws after `timeoutMs`. */
async function waitForLine(file: string, line: RegExp, timeoutMs = 120_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // not written yet
    }
    if (line.test(text)) return performance.now();
    if (performance.now() > deadline) throw new Error(`no ${String(line)} in ${file} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** The system on QEMU hosts, its data in `work/<name>`; `env` on top of the bench's. */
async function startStack(name: string, env: Record<string, string> = {}): Promise<Client> {
  dataDir = path.join(work, name);
  dataDirs.push(dataDir);
  launcherOutput = '';
  const port = await freePort();
  const fleetFile = path.join(work, 'fleet.json');
  const host = (name: string) => ({ name, availabilityZone: 'bench', vcpus: 2, memoryMb: 3072, diskGb: 100 });
  writeFileSync(fleetFile, JSON.stringify({ hosts: [host('bench-q1'), host('bench-q2')] }));
  launcher = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'launcher.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      COMPUTE_DRIVER: 'qemu',
      GUEST_IMAGE_DIR: imageDir,
      DATA_DIR: dataDir,
      FLEET_FILE: fleetFile,
      TEMPORAL_PORT: String(port),
      TEMPORAL_UI_PORT: String(await freePort()),
      RECONCILE_PERIOD_SECONDS: '0',
      LOG_LEVEL: 'WARN',
      // The bare side's bandwidth is the phase's, never the caller's environment.
      QEMU_MAX_BANDWIDTH_MB: '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  launcher.stdout?.on('data', (c: Buffer) => (launcherOutput += c.toString()));
  launcher.stderr?.on('data', (c: Buffer) => (launcherOutput += c.toString()));
  const deadline = performance.now() + 180_000;
  while (!launcherOutput.includes('Conductor on Temporal is running')) {
    if (launcher.exitCode !== null || performance.now() > deadline)
      throw new Error(`the system did not start:\n${launcherOutput}`);
    await sleep(250);
  }
  return new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) });
}

/** The stack stopped (its launcher ends the workers and the dev server) and its guests gone. */
async function stopStack(client: Client): Promise<void> {
  await client.connection.close();
  const running = launcher;
  launcher = undefined;
  if (running && running.exitCode === null) {
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000)]);
  }
  await stopAllGuests(dataDir, 2000);
}

const consoleOf = (instanceId: string) => path.join(dataDir, 'instances', instanceId, 'console.log');

/** A build through the system, to the guest's boot line (ms); the instance is left running. */
async function timedBuild(
  client: Client,
  name: string
): Promise<{ ms: number; instanceId: string; profile: Profile; bootAtMs: number }> {
  const instanceId = randomUUID();
  const started = performance.now();
  const handle = await client.workflow.start<typeof buildInstance>('buildInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.buildInstance(instanceId),
    args: [{ instanceId, name, flavor: 'm1.tiny', image: 'cirros', availabilityZone: 'bench' }],
  });
  const booted = await waitForLine(consoleOf(instanceId), BOOT_LINE);
  await handle.result();
  return { ms: booted - started, instanceId, profile: await profileOf(handle, client), bootAtMs: booted - started };
}

async function deleteInstance(client: Client, instanceId: string): Promise<void> {
  await client.workflow.execute('deleteInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.deleteInstance(instanceId, randomUUID().slice(0, 8)),
    args: [{ instanceId }],
  });
}

interface Bare {
  pid: number;
  dir: string;
  qmp: string;
  console: string;
}

/** A bare QEMU of the cirros image (overlay on the same base, the driver's command line), launched now. */
function launchBare(name: string, options: { incoming?: boolean; disk?: string } = {}): Bare {
  const dir = path.join(work, 'bare', name);
  mkdirSync(dir, { recursive: true });
  const disk = options.disk ?? path.join(dir, 'disk.qcow2');
  if (!options.disk)
    execFileSync('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      path.join(imageDir, 'cirros.qcow2'),
      '-F',
      'qcow2',
      disk,
    ]);
  const bare: Bare = {
    pid: 0,
    dir,
    qmp: path.join(sockets, `${name}.qmp`),
    console: path.join(dir, 'console.log'),
  };
  const argv = qemuArgv({
    instanceId: `bench-bare-${name}`,
    accel: detectAccel().accel,
    memoryMb: GUEST_MEMORY_MB,
    vcpus: 1,
    kernel: path.join(imageDir, 'vmlinuz'),
    initrd: path.join(imageDir, 'initrd.gz'),
    disk,
    console: bare.console,
    qmp: bare.qmp,
    testQmp: path.join(sockets, `${name}.t.qmp`),
    pidFile: path.join(dir, 'qemu.pid'),
    ...(options.incoming ? { incoming: true } : {}),
  });
  bare.pid = launchDetached(argv, path.join(dir, 'qemu.log'));
  barePids.push(bare.pid);
  return bare;
}

function killBare(bare: Bare): void {
  try {
    process.kill(bare.pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Its monitor, tried every 10 ms as the driver's launch tries a starting QEMU's. */
async function qmpOf(bare: Bare): Promise<QmpClient> {
  for (let i = 0; ; i++) {
    try {
      return await QmpClient.connect(bare.qmp);
    } catch (err) {
      if (i > 500) throw err;
      await sleep(10);
    }
  }
}

/** A bare launch to the boot line (ms), the overlay's creation included as the driver's is. */
async function timedBareLaunch(n: number): Promise<number> {
  const started = performance.now();
  const bare = launchBare(`boot-${n}`);
  const booted = await waitForLine(bare.console, BOOT_LINE);
  killBare(bare);
  return booted - started;
}

const ENDS = new Set(['completed', 'failed', 'cancelled']);

interface MigrateInfo {
  status: string;
  downtime?: number;
  'socket-address'?: { port?: string }[];
}

/** Capabilities as the driver sets them: every one off but `events` (never auto-converge). */
async function setCapabilities(qmp: QmpClient): Promise<void> {
  const known = await qmp.execute<{ capability: string }[]>('query-migrate-capabilities');
  await qmp.execute('migrate-set-capabilities', {
    capabilities: known.map((c) => ({ capability: c.capability, state: c.capability === 'events' })),
  });
}

/** A bare QMP live migration of a booted guest (ms, the destination's launch included) and its pause. */
async function timedBareMigration(n: string, bandwidthBytes: number): Promise<{ ms: number; downtimeMs: number }> {
  const source = launchBare(`src-${n}`);
  await waitForLine(source.console, BOOT_LINE);
  const src = await qmpOf(source);
  const started = performance.now();
  const dest = launchBare(`dst-${n}`, { incoming: true, disk: path.join(source.dir, 'disk.qcow2') });
  const dst = await qmpOf(dest);
  try {
    await setCapabilities(dst);
    await dst.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const port = (await dst.execute<MigrateInfo>('query-migrate'))['socket-address']?.find((a) => a.port)?.port;
    await setCapabilities(src);
    // The driver's bandwidth in this phase, the whole downtime limit at once.
    await src.execute('migrate-set-parameters', {
      'downtime-limit': TARGETS.downtimeMs,
      'max-bandwidth': bandwidthBytes,
    });
    const ended = src.waitForEvent('MIGRATION', 60_000, (e) => ENDS.has(String(e.data?.status)));
    ended.catch(() => undefined);
    await src.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    // Woken by QEMU's MIGRATION event, as the driver is (no polling interval in either).
    let info = await src.execute<MigrateInfo>('query-migrate');
    if (!ENDS.has(info.status)) {
      await ended;
      info = await src.execute<MigrateInfo>('query-migrate');
    }
    if (info.status !== 'completed') throw new Error(`bare migration ${info.status}`);
    const ms = performance.now() - started;
    return { ms, downtimeMs: info.downtime ?? 0 };
  } finally {
    await src.close();
    await dst.close();
    killBare(source);
    killBare(dest);
  }
}

async function timedLiveMigration(
  client: Client,
  instanceId: string
): Promise<{ ms: number; downtimeMs: number; profile: Profile }> {
  const started = performance.now();
  const handle = await client.workflow.start<typeof liveMigrate>('liveMigrate', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.liveMigrate(instanceId, randomUUID().slice(0, 8)),
    args: [{ instanceId }],
  });
  const result = await handle.result();
  const ms = performance.now() - started;
  return { ms, downtimeMs: result.liveMigration.downtimeMs, profile: await profileOf(handle, client) };
}

/**
 * Where one live migration's time went, from its history: up to the destination's launch (the lock, the
 * scheduler's calls, the checks, their workflow tasks), the launch's run, from it to the copy's start,
 * the copy's run, from the copy's end to the workflow's close (the post steps, the end's writes), and the
 * client's start call and result around the history. The two runs are the QEMU work the bare side does.
 */
interface LiveSplit {
  beforeLaunch: number;
  launch: number;
  launchToCopy: number;
  copy: number;
  afterCopy: number;
  client: number;
}

function liveSplit(ms: number, profile: Profile): LiveSplit | undefined {
  const step = (name: string) => profile.steps.find((s) => s.step === name);
  const pre = step('preLiveMigration');
  const copy = step('liveMigration');
  if (!pre || !copy) return undefined;
  const preStart = pre.at + pre.waitMs;
  const copyStart = copy.at + copy.waitMs;
  return {
    beforeLaunch: preStart,
    launch: pre.runMs,
    launchToCopy: copyStart - (preStart + pre.runMs),
    copy: copy.runMs,
    afterCopy: profile.totalMs - (copyStart + copy.runMs),
    client: ms - profile.totalMs,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round = (x: number) => Math.round(x);

interface LivePhase {
  splits: LiveSplit[];
  lives: number[];
  liveDowntimes: number[];
  bareMigrations: number[];
  bareDowntimes: number[];
}

/** RUNS live migrations of fresh guests through the stack, each followed by a bare one at `bandwidthBytes`. */
async function livePhase(
  client: Client,
  key: string,
  phase: string,
  bandwidthBytes: number,
  profiles: string[]
): Promise<LivePhase> {
  const out: LivePhase = { splits: [], lives: [], liveDowntimes: [], bareMigrations: [], bareDowntimes: [] };
  for (let i = 0; i < RUNS; i++) {
    // A fresh guest each time: one that came in by live migration is not moved again here (see the report
    // of the QEMU driver: its query-migrate still says the incoming migration completed).
    const vm = await timedBuild(client, `bench-live-${key}-${i}`);
    const live = await timedLiveMigration(client, vm.instanceId);
    await deleteInstance(client, vm.instanceId);
    out.lives.push(live.ms);
    if (i === RUNS - 1)
      profiles.push(
        profileTable(`Live migration (${phase}), run ${i + 1} (${round(live.ms)} ms start to result)`, live.profile)
      );
    out.liveDowntimes.push(live.downtimeMs);
    const bare = await timedBareMigration(`${key}-${i}`, bandwidthBytes);
    out.bareMigrations.push(bare.ms);
    out.bareDowntimes.push(bare.downtimeMs);
    const split = liveSplit(live.ms, live.profile);
    if (split) out.splits.push(split);
    const splitText = split
      ? ` [to the launch ${round(split.beforeLaunch)}, launch ${round(split.launch)}, to the copy ${round(split.launchToCopy)}, copy ${round(split.copy)}, after ${round(split.afterCopy)}, client ${round(split.client)}]`
      : '';
    console.error(
      `  live migration (${phase}) ${round(live.ms)} ms (pause ${live.downtimeMs} ms)${splitText}, bare ${round(bare.ms)} ms`
    );
  }
  return out;
}

const splitMedians = (splits: LiveSplit[]) =>
  splits.length === 0
    ? undefined
    : (Object.fromEntries(
        (Object.keys(splits[0]!) as (keyof LiveSplit)[]).map((k) => [k, round(median(splits.map((x) => x[k])))])
      ) as unknown as LiveSplit);

async function main(): Promise<void> {
  if (!['vmlinuz', 'initrd.gz', 'cirros.qcow2'].every((f) => existsSync(path.join(imageDir, f))))
    execFileSync('bash', [path.join(ROOT, 'scripts', 'build-guest-images.sh')], { stdio: 'inherit' });
  let client = await startStack('data');
  console.error(`bench:guests: ${RUNS} run(s) of each, accelerator ${detectAccel().accel}`);

  const builds: number[] = [];
  const bares: number[] = [];
  const profiles: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    const built = await timedBuild(client, `bench-build-${i}`);
    builds.push(built.ms);
    if (i === RUNS - 1)
      profiles.push(
        profileTable(
          `Build, run ${i + 1} (${round(built.ms)} ms to the boot line, seen ${round(built.bootAtMs)} ms after the start call)`,
          built.profile
        )
      );
    await deleteInstance(client, built.instanceId);
    bares.push(await timedBareLaunch(i));
    console.error(`  build ${round(built.ms)} ms, bare launch ${round(bares.at(-1)!)} ms`);
  }

  // The driver's default: no bandwidth cap (libvirt's), the bare migration likewise.
  const uncapped = await livePhase(client, 'free', 'no cap', UNCAPPED_BANDWIDTH_BYTES, profiles);
  await stopStack(client);
  // Both sides capped at QEMU's own default, about a 1 Gbit/s link: a copy that takes time.
  client = await startStack('data-capped', { QEMU_MAX_BANDWIDTH_MB: String(CAPPED_MB) });
  const capped = await livePhase(client, 'capped', `${CAPPED_MB} MiB/s`, CAPPED_MB * 1024 * 1024, profiles);
  await stopStack(client);

  const ratio = (a: number[], b: number[]) => Number((median(a) / median(b)).toFixed(2));
  const all = (k: 'liveDowntimes' | 'bareDowntimes') => round(Math.max(...uncapped[k], ...capped[k]));
  const figures = {
    runs: RUNS,
    buildToBootMs: round(median(builds)),
    bareLaunchToBootMs: round(median(bares)),
    buildRatio: ratio(builds, bares),
    liveMigrationMs: round(median(uncapped.lives)),
    bareMigrationMs: round(median(uncapped.bareMigrations)),
    liveMigrationRatio: ratio(uncapped.lives, uncapped.bareMigrations),
    cappedMbPerSecond: CAPPED_MB,
    liveMigrationCappedMs: round(median(capped.lives)),
    bareMigrationCappedMs: round(median(capped.bareMigrations)),
    liveMigrationCappedRatio: ratio(capped.lives, capped.bareMigrations),
    /** Medians of each part of the live migrations (liveSplit), without and with the cap. */
    liveSplitMs: splitMedians(uncapped.splits),
    liveSplitCappedMs: splitMedians(capped.splits),
    liveDowntimeMs: all('liveDowntimes'),
    bareDowntimeMs: all('bareDowntimes'),
    targets: TARGETS,
  };
  const row = (what: string, ours: number, bare: number, ratio: number, target: number) =>
    `| ${what} | ${ours} ms | ${bare} ms | ${ratio}x | <= ${target}x ${ratio <= target ? 'met' : 'MISSED'} |`;
  console.log('| measure (median) | through the conductor | bare QEMU | ratio | target |');
  console.log('| --- | --- | --- | --- | --- |');
  console.log(
    row('build to the boot line', figures.buildToBootMs, figures.bareLaunchToBootMs, figures.buildRatio, TARGETS.build)
  );
  console.log(
    row(
      'live migration, no bandwidth cap',
      figures.liveMigrationMs,
      figures.bareMigrationMs,
      figures.liveMigrationRatio,
      TARGETS.liveMigration
    )
  );
  console.log(
    row(
      `live migration, both capped at ${CAPPED_MB} MiB/s`,
      figures.liveMigrationCappedMs,
      figures.bareMigrationCappedMs,
      figures.liveMigrationCappedRatio,
      TARGETS.liveMigration
    )
  );
  console.log(
    `| switch-over pause (worst) | ${figures.liveDowntimeMs} ms | ${figures.bareDowntimeMs} ms | | <= ${TARGETS.downtimeMs} ms ${figures.liveDowntimeMs <= TARGETS.downtimeMs ? 'met' : 'MISSED'} |`
  );
  for (const table of profiles) console.log(`\n${table}`);
  console.log(JSON.stringify(figures));
}

async function cleanup(): Promise<void> {
  for (const pid of barePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  launcher?.kill('SIGTERM');
  for (const dir of dataDirs) await stopAllGuests(dir, 2000);
  rmSync(work, { recursive: true, force: true });
  rmSync(sockets, { recursive: true, force: true });
}

main().then(
  () => cleanup().then(() => process.exit(0)),
  async (err: unknown) => {
    console.error(
      `bench:guests: ${(err as Error).stack ?? String(err)}\n${launcherOutput.split('\n').slice(-30).join('\n')}`
    );
    await cleanup();
    process.exit(1);
  }
);
