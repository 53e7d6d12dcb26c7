/**
 * bench:e2e — what users feel, end to end: builds against baselines run in the same bench, on the same
 * server, by worker processes laid out the same way (bench/e2e/stack.ts, hollow-workflows.ts).
 *
 * - B-latency: p50 / p95 wall time of `buildInstance` over sequential builds (spawn time 0), each
 *   followed by one run of the hollow baseline (a build's shape with no-op bodies), so that a busy spell
 *   hits both alike. Target: build p50 / hollow p50 <= 1.3.
 * - B-throughput: completions per second with concurrent clients, each starting its next workflow when
 *   its last one ends: builds, the hollow baseline, the state-equivalent hollow (the hollow plus the
 *   local-activity writes, search-attribute upserts, spawning signal and compute heartbeats a build
 *   keeps, with empty bodies), and Temporal's own ceiling here (one no-op activity). Each kind runs in
 *   two half windows, in mirrored order (ceiling, hollow, state, build, then build, state, hollow,
 *   ceiling), and its two halves are pooled: the in-memory server slows as its histories pile up, and a
 *   kind measured last alone would pay for every window before it. Targets: builds >= 0.9 x
 *   state-equivalent hollow, >= 0.8 x hollow and >= 0.25 x ceiling.
 *   Each window also reports the CPU time per completion of every process of the stack by role (the
 *   server, the workflow worker, the scheduler, the compute processes, this client; from /proc), which
 *   on two shared cores is what decides the rates.
 * - B-history: history events of a plain build (parent and child), a build rescheduled once and twice,
 *   and a resize confirmed through its Update. Target: a plain build's parent <= 25 events.
 * - B-scale (npm run bench:scale, bench/scale.ts) is run separately: it needs its own 1,000-host fleet.
 *
 * The last line printed is one JSON object with every figure and ratio. Exits 0 unless it crashes.
 *
 *   npm run bench:e2e                 200 sequential builds, 60 s per kind (2 x 30 s) with 50 clients
 *   npm run bench:e2e -- --quick      20 builds, 10 s per kind (2 x 5 s) with 20 clients (a smoke run)
 *   npm run bench:e2e -- --builds-only  the build window alone, with its breakdown
 *   BENCH_CPU_PROF=conductor npm run bench:e2e …   V8 CPU profiles of one process (bench/e2e/stack.ts);
 *     bench/e2e/profile-window.ts summarises one window of one (a pair of the JSON line's windowsMonotonicUs)
 */
import { cpus, totalmem } from 'node:os';
import { randomUUID } from 'node:crypto';

import type { Client } from '@temporalio/client';

import type { HostSpec } from '../src/domain/fleet';
import { HostSpecSchema } from '../src/domain/fleet';
import { confirmResizeUpdate, getProgressQuery } from '../src/shared/messages';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../src/shared/task-queues';
import { breakdown, printBreakdown } from './e2e/breakdown';
import { BenchStack } from './e2e/stack';
import { HOLLOW_WORKFLOW_QUEUE } from './e2e/hollow-workflows';

const quick = process.argv.includes('--quick');
/** --builds-only: the build window alone, with its breakdown (to see where a build's time goes). */
const buildsOnly = process.argv.includes('--builds-only');
const SEQUENTIAL = quick ? 20 : 200;
const WINDOW_SECONDS = quick ? 10 : 60;
const CLIENTS = quick ? 20 : 50;
const TARGETS = { latencyRatio: 1.3, vsStateHollow: 0.9, vsHollow: 0.8, vsCeiling: 0.25, parentEvents: 25 };

const big = (name: string, availabilityZone: string, memoryMb = 100_000_000): HostSpec =>
  HostSpecSchema.parse({ name, availabilityZone, vcpus: 100_000, memoryMb, diskGb: 10_000_000, traits: [] });

/** Three large hosts for the figures; two small zones whose first hosts fail a spawn (reschedules). */
const HOSTS: HostSpec[] = [
  big('bench-1', 'bench'),
  big('bench-2', 'bench'),
  big('bench-3', 'bench'),
  // The scheduler spreads by free RAM: the largest host is tried first.
  big('once-a', 'resched-once', 40_000),
  big('once-b', 'resched-once', 20_000),
  big('twice-a', 'resched-twice', 40_000),
  big('twice-b', 'resched-twice', 30_000),
  big('twice-c', 'resched-twice', 20_000),
];

type Kind = 'build' | 'hollow' | 'state' | 'ceiling';

const BASELINE_TYPE = { hollow: 'hollowBuild', state: 'stateHollowBuild', ceiling: 'oneActivity' } as const;

function startOf(client: Client, kind: Kind, extra: object = {}, ids?: string[]) {
  const id = `bench-${kind}-${randomUUID()}`;
  ids?.push(id);
  if (kind === 'build')
    return client.workflow.execute('buildInstance', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: id,
      args: [{ name: id.slice(0, 40), flavor: 'm1.tiny', image: 'cirros', availabilityZone: 'bench', ...extra }],
    });
  return client.workflow.execute(BASELINE_TYPE[kind], {
    taskQueue: HOLLOW_WORKFLOW_QUEUE,
    workflowId: id,
    args: [{ id }],
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function stats(samples: number[]): { p50: number; p95: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95) };
}

/** The roles of a window's processes: a build's and a baseline's laid out alike (bench/e2e/stack.ts). */
const ROLES = ['server', 'workflows', 'scheduler', 'compute', 'bench client'] as const;
type Role = (typeof ROLES)[number];

function roleOf(process: string): Role {
  if (process === 'temporal') return 'server';
  if (process === 'conductor' || process === 'hollow-workflows') return 'workflows';
  if (process === 'scheduler' || process === 'hollow-scheduler') return 'scheduler';
  return 'compute';
}

/** What a kind's windows add up to: completions, seconds, and CPU ms by role. */
interface Tally {
  done: number;
  seconds: number;
  cpu: Record<Role, number>;
}
const tallies = new Map<Kind, Tally>();
/** Each kind's windows, start and end on the monotonic clock in µs (V8 CPU profiles' timestamps, to cut a window out of them). */
const windowsUs: Partial<Record<Kind, Array<[number, number]>>> = {};
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** One window of `seconds` with `clients` each running one workflow of `kind` after another, added to its tally. */
async function runWindow(stack: BenchStack, kind: Kind, seconds: number, clients: number, ids?: string[]) {
  const before = stack.cpuTimes();
  const clientBefore = process.cpuUsage();
  const startUs = monotonicUs();
  const end = Date.now() + seconds * 1000;
  let done = 0;
  const loop = async () => {
    while (Date.now() < end) {
      await startOf(stack.client, kind, {}, ids);
      if (Date.now() <= end) done++;
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  const after = stack.cpuTimes();
  (windowsUs[kind] ??= []).push([startUs, monotonicUs()]);
  const clientCpu = process.cpuUsage(clientBefore);
  const tally = tallies.get(kind) ?? {
    done: 0,
    seconds: 0,
    cpu: Object.fromEntries(ROLES.map((r) => [r, 0])) as Record<Role, number>,
  };
  for (const [name, ms] of after) tally.cpu[roleOf(name)] += ms - (before.get(name) ?? ms);
  tally.cpu['bench client'] += (clientCpu.user + clientCpu.system) / 1000;
  tally.done += done;
  tally.seconds += seconds;
  tallies.set(kind, tally);
}

/**
 * Completions per second of each kind, its `seconds` run as two half windows in mirrored order (the
 * kinds in `order`, then in reverse), each kind's halves pooled: a drift of the server over the run
 * (the in-memory server's histories piling up) falls alike on every kind.
 */
async function throughputs(
  stack: BenchStack,
  order: readonly Kind[],
  seconds: number,
  clients: number,
  ids: Partial<Record<Kind, string[]>>
): Promise<Record<Kind, number>> {
  for (const kind of [...order, ...[...order].reverse()]) await runWindow(stack, kind, seconds / 2, clients, ids[kind]);
  const rate = (kind: Kind) => {
    const t = tallies.get(kind);
    return t ? t.done / t.seconds : NaN;
  };
  return { build: rate('build'), hollow: rate('hollow'), state: rate('state'), ceiling: rate('ceiling') };
}

/** CPU ms per completion of each kind, by role (every process of the stack, whichever it serves). */
function cpuPerCompletion(): Map<Kind, Record<Role, number>> {
  const out = new Map<Kind, Record<Role, number>>();
  for (const [kind, t] of tallies)
    out.set(kind, Object.fromEntries(ROLES.map((r) => [r, t.cpu[r] / Math.max(t.done, 1)])) as Record<Role, number>);
  return out;
}

function printCpu(): void {
  console.log('\nCPU per completion of each kind (ms; every process of the stack by role, the idle ones too):');
  console.log(`| workflow | ${ROLES.join(' | ')} | total |\n| --- |${' --- |'.repeat(ROLES.length + 1)}`);
  for (const [kind, cpu] of cpuPerCompletion()) {
    const total = ROLES.reduce((sum, r) => sum + cpu[r], 0);
    console.log(`| ${kind} | ${ROLES.map((r) => f(cpu[r], 1)).join(' | ')} | ${f(total, 1)} |`);
  }
}

/** Events in a workflow's history, every run of its id counted (a placement attempt's reschedules are runs). */
async function events(client: Client, workflowId: string): Promise<number> {
  let total = 0;
  for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
    const history = await client.workflow.getHandle(workflowId, run.runId).fetchHistory();
    total += history.events?.length ?? 0;
  }
  return total;
}

async function buildHistory(
  client: Client,
  zone: string,
  expectedRuns: number
): Promise<{ parent: number; child: number; runs: number }> {
  const workflowId = `bench-history-${randomUUID()}`;
  const record = (await client.workflow.execute('buildInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId,
    args: [{ name: `history-${zone}`, flavor: 'm1.tiny', image: 'cirros', availabilityZone: zone }],
  })) as { instanceId: string };
  const childId = workflowIds.placementAttempt(record.instanceId, 'build');
  // Visibility lists every run once it has caught up.
  let runs = 0;
  for (let i = 0; i < 100 && runs < expectedRuns; i++) {
    runs = 0;
    for await (const _ of client.workflow.list({ query: `WorkflowId = '${childId}'` })) runs++;
    if (runs < expectedRuns) await new Promise((r) => setTimeout(r, 100));
  }
  return { parent: await events(client, workflowId), child: await events(client, childId), runs };
}

async function resizeHistory(client: Client): Promise<{ parent: number; child: number }> {
  const built = (await startOf(client, 'build')) as { instanceId: string };
  const workflowId = `bench-resize-${randomUUID()}`;
  const handle = await client.workflow.start('resizeMigrate', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId,
    args: [{ instanceId: built.instanceId, flavor: 'm1.small' }],
  });
  for (let i = 0; i < 600; i++) {
    const progress = await handle.query(getProgressQuery).catch(() => undefined);
    if (progress?.vmState === 'resized') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await handle.executeUpdate(confirmResizeUpdate);
  await handle.result();
  return {
    parent: await events(client, workflowId),
    child: await events(client, workflowIds.placementAttempt(built.instanceId, 'resize')),
  };
}

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

async function main(): Promise<void> {
  const stack = new BenchStack({ hosts: HOSTS, spawnSeconds: 0 });
  console.log(
    `bench:e2e on ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  );
  console.log(
    'server: temporal server start-dev, in memory (no database file), one history shard; workers: conductor, scheduler, ' +
      `${HOSTS.length} compute processes, 3 baseline processes; spawn time 0; store: SQLite`
  );
  const t0 = Date.now();
  await stack.start();
  console.log(`stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  try {
    const { client } = stack;
    // Warm up every path (bundles loaded, caches filled) before anything is measured.
    for (let i = 0; i < 5; i++)
      for (const kind of ['build', 'hollow', 'state', 'ceiling'] as const) await startOf(client, kind);

    const build: number[] = [];
    const hollow: number[] = [];
    for (let i = 0; i < (buildsOnly ? 0 : SEQUENTIAL); i++) {
      build.push(await timed(() => startOf(client, 'build')));
      hollow.push(await timed(() => startOf(client, 'hollow')));
    }
    const lb = stats(build);
    const lh = stats(hollow);
    const latencyRatio = lb.p50 / lh.p50;
    console.log(`\nB-latency, ${SEQUENTIAL} sequential each, interleaved (ms):`);
    console.log('| workflow | p50 | p95 |\n| --- | --- | --- |');
    console.log(`| buildInstance | ${f(lb.p50, 0)} | ${f(lb.p95, 0)} |`);
    console.log(`| hollow build | ${f(lh.p50, 0)} | ${f(lh.p95, 0)} |`);
    console.log(`ratio p50 ${f(latencyRatio)} (target <= ${TARGETS.latencyRatio}), p95 ${f(lb.p95 / lh.p95)}`);

    const buildIds: string[] = [];
    const hollowIds: string[] = [];
    const stateIds: string[] = [];
    const rates = await throughputs(
      stack,
      buildsOnly ? ['build'] : ['ceiling', 'hollow', 'state', 'build'],
      WINDOW_SECONDS,
      CLIENTS,
      { build: buildIds, hollow: hollowIds, state: stateIds }
    );
    const { ceiling, build: buildRate, hollow: hollowRate, state: stateRate } = rates;
    console.log(`\nB-throughput, ${CLIENTS} clients, ${WINDOW_SECONDS} s each in two mirrored halves (workflows/s):`);
    console.log('| workflow | per second |\n| --- | --- |');
    console.log(`| one no-op activity (ceiling) | ${f(ceiling, 1)} |`);
    console.log(`| hollow build | ${f(hollowRate, 1)} |`);
    console.log(`| state-equivalent hollow build | ${f(stateRate, 1)} |`);
    console.log(`| buildInstance | ${f(buildRate, 1)} |`);
    console.log(
      `builds / state-equivalent hollow ${f(buildRate / stateRate)} (target >= ${TARGETS.vsStateHollow}), ` +
        `builds / hollow ${f(buildRate / hollowRate)} (target >= ${TARGETS.vsHollow}), ` +
        `builds / ceiling ${f(buildRate / ceiling)} (target >= ${TARGETS.vsCeiling})`
    );

    printCpu();

    // Where the time of builds under load went: 20 of the last window's, parent and child.
    const sample = buildIds.slice(-25, -5);
    const children = await Promise.all(
      sample.map(async (id) => {
        const r = (await client.workflow.getHandle(id).result()) as { instanceId: string };
        return workflowIds.placementAttempt(r.instanceId, 'build');
      })
    );
    printBreakdown(
      `Where the time went, ${sample.length} builds of the window`,
      await breakdown(client, [...sample, ...children])
    );
    // The same for the hollow builds of their window, to compare task by task.
    const hollowSample = hollowIds.slice(-25, -5);
    if (hollowSample.length > 0)
      printBreakdown(
        `The same for ${hollowSample.length} hollow builds of their window`,
        await breakdown(client, [...hollowSample, ...hollowSample.map((id) => `${id}-attempt`)])
      );
    const stateSample = stateIds.slice(-25, -5);
    if (stateSample.length > 0)
      printBreakdown(
        `The same for ${stateSample.length} state-equivalent hollow builds of their window`,
        await breakdown(client, [...stateSample, ...stateSample.map((id) => `${id}-attempt`)])
      );

    const plain = await buildHistory(client, 'bench', 1);
    stack.setFaults('once-a', { spawn: { failNext: 1, kind: 'reschedule' } });
    const once = await buildHistory(client, 'resched-once', 2);
    stack.setFaults('twice-a', { spawn: { failNext: 1, kind: 'reschedule' } });
    stack.setFaults('twice-b', { spawn: { failNext: 1, kind: 'reschedule' } });
    const twice = await buildHistory(client, 'resched-twice', 3);
    const resize = await resizeHistory(client);
    console.log('\nB-history (events; child: every run of the placement attempt):');
    console.log('| operation | parent | child | total |\n| --- | --- | --- | --- |');
    const row = (name: string, h: { parent: number; child: number }) =>
      console.log(`| ${name} | ${h.parent} | ${h.child} | ${h.parent + h.child} |`);
    row('plain build', plain);
    row(`build rescheduled once (${once.runs} runs)`, once);
    row(`build rescheduled twice (${twice.runs} runs)`, twice);
    row('resize, confirmed by Update', resize);
    console.log(`plain build parent events ${plain.parent} (target <= ${TARGETS.parentEvents})`);

    const met = {
      latency: latencyRatio <= TARGETS.latencyRatio,
      throughputVsStateHollow: buildRate / stateRate >= TARGETS.vsStateHollow,
      throughputVsHollow: buildRate / hollowRate >= TARGETS.vsHollow,
      throughputVsCeiling: buildRate / ceiling >= TARGETS.vsCeiling,
      parentEvents: plain.parent <= TARGETS.parentEvents,
    };
    console.log(
      `\ntargets: ${Object.entries(met)
        .map(([k, v]) => `${k} ${v ? 'met' : 'MISSED'}`)
        .join(', ')}`
    );
    console.log(
      JSON.stringify({
        bench: 'e2e',
        server: 'start-dev in memory',
        cores: cpus().length,
        sequential: SEQUENTIAL,
        windowSeconds: WINDOW_SECONDS,
        clients: CLIENTS,
        latencyMs: { build: lb, hollow: lh, ratioP50: latencyRatio, ratioP95: lb.p95 / lh.p95 },
        throughputPerSecond: {
          build: buildRate,
          hollow: hollowRate,
          stateHollow: stateRate,
          ceiling,
          buildVsStateHollow: buildRate / stateRate,
          buildVsHollow: buildRate / hollowRate,
          buildVsCeiling: buildRate / ceiling,
        },
        cpuMsPerCompletion: Object.fromEntries(cpuPerCompletion()),
        windowsMonotonicUs: windowsUs,
        historyEvents: { plain, rescheduledOnce: once, rescheduledTwice: twice, resizeConfirmed: resize },
        targets: TARGETS,
        met,
      })
    );
  } finally {
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench:e2e: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
