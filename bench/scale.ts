/**
 * B-scale: the whole system at fleet size, on real processes.
 *
 * A dev server started here IN MEMORY (`temporal server start-dev` without --db-filename), the real
 * conductor and scheduler worker processes, and ONE compute process serving every host of a generated
 * fleet (COMPUTE_HOSTS=all, one Worker per host queue on one connection). It measures:
 *
 * - registration: from the compute process's start until it logs `registered all hosts` (every host's
 *   registerHost and reconcileHost workflow run, COMPUTE_REGISTER_CONCURRENCY at once);
 * - the compute process's memory (VmRSS once registered, VmHWM at the end), and the other processes';
 * - one liveness refresh over every host, on the bulk path (ListWorkers heartbeats) and on the per-host
 *   path (one DescribeTaskQueue per host), with the calls each made, and that every host reads up;
 * - as many builds as hosts (`buildInstance`, m1.small, cirros; COMPUTE_SPAWN_SECONDS=1), all started
 *   at once: seconds until every one is active, placement time per build (from its start call to the
 *   end of its `conductor_schedule_and_build_instances` event in the store: host chosen and claimed),
 *   the scheduler's claim conflicts (its `claim lost a race` log lines: a re-selection, or the next
 *   alternate claimed), hosts over capacity and the whole audit (`runAudit`, --live: store, Temporal,
 *   every host's guests), and the workflows still running once all are done (must be 0);
 * - then the selectDestinations activity with its claim against SQLite stores of 1,000 and 10,000
 *   registered hosts (bench/scheduler/activity.ts's measurement, fewer samples).
 *
 * Prints a table and, as the last line, one JSON object with every figure. Exit 0 even when a target is
 * missed (the JSON says so); 1 when the run itself fails.
 *
 *   npm run bench:scale                         1,000 hosts, 1,000 builds
 *   BENCH_SCALE_HOSTS=100 npm run bench:scale   a quicker look
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { WorkflowFailedError } from '@temporalio/client';

import { TaskQueuePollerLiveness } from '../src/activities/scheduler/liveness';
import { runAudit } from '../src/cli/audit';
import { workflowIds, CONDUCTOR_TASK_QUEUE } from '../src/shared/task-queues';
import { openStore } from '../src/store/db';
import { loadEnv } from '../src/workers/config';
import type { buildInstance } from '../src/workflows/build-instance';
import { measureSelectActivity } from './scheduler/activity';
import { printColumns } from './scheduler/pass';
import { memoryMiB, ScaleStack } from './scale/stack';

const HOSTS = Number(process.env.BENCH_SCALE_HOSTS ?? 1000);
const BUILDS = Number(process.env.BENCH_SCALE_BUILDS ?? HOSTS);
const SPAWN_SECONDS = 1;
const SELECT_SAMPLES = 200;
const PLACEMENT_EVENT = 'conductor_schedule_and_build_instances';

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Counts `text` in a process's output. */
function occurrences(output: string, text: string): number {
  let n = 0;
  for (let i = output.indexOf(text); i >= 0; i = output.indexOf(text, i + text.length)) n++;
  return n;
}

async function timeRefresh(liveness: TaskQueuePollerLiveness, hosts: readonly string[]) {
  const t0 = performance.now();
  await liveness.refresh();
  const ms = performance.now() - t0;
  const stats = liveness.lastRefresh!;
  return {
    path: stats.path,
    ms: round(ms),
    listWorkersCalls: stats.listWorkersCalls,
    describeCalls: stats.describeCalls,
    hostsUp: hosts.filter((h) => liveness.isUp(h)).length,
  };
}

async function main(): Promise<void> {
  if (!Number.isInteger(HOSTS) || HOSTS < 1) throw new Error(`BENCH_SCALE_HOSTS must be a positive integer`);
  const stack = new ScaleStack(HOSTS, SPAWN_SECONDS);
  const hostNames = Array.from({ length: HOSTS }, (_, i) => `node-${i + 1}`);
  console.log(
    `B-scale: ${HOSTS} hosts in ONE compute process, ${BUILDS} builds (m1.small, spawn ${SPAWN_SECONDS} s); ` +
      `dev server IN MEMORY (temporal server start-dev, no --db-filename); ${os.cpus().length} cores, node ${process.version}`
  );
  try {
    await stack.startServer();
    await Promise.all([
      stack.startWorker('conductor', '"state":"RUNNING"'),
      stack.startWorker('scheduler', '"state":"RUNNING"'),
    ]);

    // Registration of every host by the one compute process.
    const computeStart = performance.now();
    const progress = setInterval(() => {
      const out = stack.worker('compute').output;
      console.log(
        `  registering: ${occurrences(out, '"registered with placement"')} registered, ${occurrences(out, '"reconciled evacuated instances"')} reconciled, ${occurrences(out, 'start-up reconciliation failed')} reconciliations failed after ${round((performance.now() - computeStart) / 1000)} s`
      );
    }, 15_000);
    await stack.startWorker('compute', 'registered all hosts', 900_000).finally(() => clearInterval(progress));
    const registrationWallMs = performance.now() - computeStart;
    const computeOut = stack.worker('compute').output;
    const registrationMs = Number(/"registered all hosts".*?"ms":(\d+)/.exec(computeOut)?.[1] ?? NaN);
    const computeIdle = memoryMiB(stack.pid('compute'));
    console.log(
      `registered ${HOSTS} hosts in ${round(registrationMs / 1000, 2)} s (process start to done ${round(registrationWallMs / 1000, 2)} s); compute RSS ${round(computeIdle.rssMiB)} MiB`
    );

    // One liveness refresh on each path, once every host has heartbeated.
    const hostsOf = () => Promise.resolve(hostNames);
    const bulk = new TaskQueuePollerLiveness(stack.connection, 'default', hostsOf);
    const perHostConnection = {
      workflowService: {
        describeTaskQueue: stack.connection.workflowService.describeTaskQueue.bind(stack.connection.workflowService),
      },
    };
    const perHost = new TaskQueuePollerLiveness(
      perHostConnection as unknown as typeof stack.connection,
      'default',
      hostsOf
    );
    await new Promise((r) => setTimeout(r, 3_000));
    const livenessBulk = await timeRefresh(bulk, hostNames);
    const livenessPerHost = await timeRefresh(perHost, hostNames);
    console.log(`liveness refresh: bulk ${JSON.stringify(livenessBulk)}; per-host ${JSON.stringify(livenessPerHost)}`);

    // The builds, all started at once.
    const startedAt = new Map<string, number>();
    const failures = new Map<string, number>();
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: BUILDS }, async (_, i) => {
        const instanceId = randomUUID();
        startedAt.set(instanceId, Date.now());
        const handle = await stack.client.workflow.start<typeof buildInstance>('buildInstance', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds.buildInstance(instanceId),
          args: [{ name: `scale-${i + 1}`, flavor: 'm1.small', image: 'cirros', instanceId }],
        });
        try {
          const record = await handle.result();
          return { instanceId, ok: record.vmState === 'active', host: record.host, at: Date.now() };
        } catch (err) {
          const type =
            err instanceof WorkflowFailedError
              ? ((err.cause as { type?: string })?.type ?? err.cause?.name ?? 'failed')
              : String(err);
          failures.set(type, (failures.get(type) ?? 0) + 1);
          return { instanceId, ok: false, host: null, at: Date.now() };
        }
      })
    );
    const allStartedMs = Math.max(...startedAt.values()) - t0;
    const allDoneMs = Math.max(...results.map((r) => r.at)) - t0;
    const active = results.filter((r) => r.ok).length;
    const hostsUsed = new Set(results.map((r) => r.host).filter((h) => h !== null)).size;
    const computeEnd = memoryMiB(stack.pid('compute'));
    const otherMemory = {
      conductorMiB: round(memoryMiB(stack.pid('conductor')).peakMiB),
      schedulerMiB: round(memoryMiB(stack.pid('scheduler')).peakMiB),
      serverMiB: round(memoryMiB(stack.pid('server')).peakMiB),
    };

    // Placement time per build, from the store's events.
    const store = await openStore({ sqlitePath: path.join(stack.dataDir, 'conductor.sqlite') });
    const rows = await store.db
      .selectFrom('instance_action_events as e')
      .innerJoin('instance_actions as a', 'a.id', 'e.action_id')
      .select(['a.instance_id', 'e.finished_at'])
      .where('e.event', '=', PLACEMENT_EVENT)
      .execute();
    await store.close();
    const placementMs = rows
      .filter((r) => r.finished_at !== null && startedAt.has(r.instance_id))
      .map((r) => Date.parse(r.finished_at!) - startedAt.get(r.instance_id)!)
      .sort((a, b) => a - b);

    const schedulerOut = stack.worker('scheduler').output;
    const claimConflicts = {
      reselections: occurrences(schedulerOut, 'claim lost a race; selecting again'),
      nextAlternate: occurrences(schedulerOut, 'claim lost a race; claiming the next alternate'),
    };
    // Visibility lags the closes a little: give it a few seconds, then name what still runs.
    let running = NaN;
    const runningTypes = new Map<string, number>();
    for (let tries = 0; tries < 20; tries++) {
      running = (await stack.client.workflow.count('ExecutionStatus="Running"')).count;
      if (running === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (running > 0)
      for await (const wf of stack.client.workflow.list({ query: 'ExecutionStatus="Running"' }))
        runningTypes.set(wf.type, (runningTypes.get(wf.type) ?? 0) + 1);

    // The audit, as `npm run audit -- --live` runs it.
    const auditStart = performance.now();
    const env = loadEnv({
      ...process.env,
      DATA_DIR: stack.dataDir,
      TEMPORAL_ADDRESS: stack.address,
      FLEET_FILE: stack.fleetFile,
    });
    const report = await runAudit(env, true);
    const auditMs = performance.now() - auditStart;
    const audit = {
      clean: report.clean,
      findings: report.findings.length,
      kinds: [...new Set(report.findings.map((f) => f.kind))],
      hostsOverCapacity: report.overCapacity.length,
      hostsReporting: report.checked.hostsReporting.length,
      hostsNotAnswering: report.checked.hostsNotAnswering.length,
      seconds: round(auditMs / 1000, 2),
    };
    await stack.stop();

    // selectDestinations against SQLite stores of registered hosts.
    const select = await measureSelectActivity([1_000, 10_000], SELECT_SAMPLES);

    const builds = {
      started: BUILDS,
      active,
      failed: Object.fromEntries(failures),
      hostsUsed,
      allStartedSeconds: round(allStartedMs / 1000, 2),
      allActiveSeconds: round(allDoneMs / 1000, 2),
      placementP50Ms: round(percentile(placementMs, 50)),
      placementP95Ms: round(percentile(placementMs, 95)),
      placementMaxMs: round(percentile(placementMs, 100)),
      placementsMeasured: placementMs.length,
    };
    const figures = {
      benchmark: 'B-scale',
      server: 'temporal server start-dev, in memory (no --db-filename), longPollExpirationInterval 10s',
      machine: { cores: os.cpus().length, memGiB: round(os.totalmem() / 2 ** 30), node: process.version },
      hosts: HOSTS,
      registration: {
        seconds: round(registrationMs / 1000, 2),
        processStartToDoneSeconds: round(registrationWallMs / 1000, 2),
      },
      computeMemory: {
        idleRssMiB: round(computeIdle.rssMiB),
        endRssMiB: round(computeEnd.rssMiB),
        peakRssMiB: round(computeEnd.peakMiB),
      },
      otherPeakMemory: otherMemory,
      liveness: { bulk: livenessBulk, perHost: livenessPerHost },
      builds,
      claimConflicts,
      hostsOverCapacity: audit.hostsOverCapacity,
      audit,
      workflowsRunning: running,
      workflowsRunningByType: Object.fromEntries(runningTypes),
      selectDestinations: select.map((r) => ({
        hosts: r.hosts,
        p50Ms: round(r.medianNs / 1e6, 2),
        p95Ms: round(r.p95Ns / 1e6, 2),
      })),
      ok: active === BUILDS && audit.clean && audit.hostsOverCapacity === 0 && running === 0,
    };

    console.log(`\nB-scale, ${HOSTS} hosts in one compute process, ${BUILDS} builds:`);
    printColumns(
      ['figure', 'value'],
      [
        ['registration (all hosts)', `${figures.registration.seconds} s`],
        ['compute RSS idle / peak', `${figures.computeMemory.idleRssMiB} / ${figures.computeMemory.peakRssMiB} MiB`],
        [
          'liveness refresh, bulk',
          `${livenessBulk.ms} ms, ${livenessBulk.listWorkersCalls} ListWorkers + ${livenessBulk.describeCalls} DescribeTaskQueue, ${livenessBulk.hostsUp} up`,
        ],
        [
          'liveness refresh, per host',
          `${livenessPerHost.ms} ms, ${livenessPerHost.describeCalls} DescribeTaskQueue, ${livenessPerHost.hostsUp} up`,
        ],
        ['builds active', `${active} / ${BUILDS} on ${hostsUsed} hosts`],
        ['all started / all active', `${builds.allStartedSeconds} s / ${builds.allActiveSeconds} s`],
        [
          'placement p50 / p95 / max',
          `${builds.placementP50Ms} / ${builds.placementP95Ms} / ${builds.placementMaxMs} ms`,
        ],
        [
          'claim conflicts retried',
          `${claimConflicts.reselections} re-selections, ${claimConflicts.nextAlternate} next alternate`,
        ],
        ['hosts over capacity', String(audit.hostsOverCapacity)],
        [
          'audit --live',
          `${audit.clean ? 'clean' : `${audit.findings} findings: ${audit.kinds.join(', ')}`} (${audit.seconds} s)`,
        ],
        [
          'workflows running at the end',
          `${running}${running > 0 ? ` ${JSON.stringify(Object.fromEntries(runningTypes))}` : ''}`,
        ],
        ...select.map((r): [string, string] => [
          `selectDestinations @ ${r.hosts.toLocaleString('en-US')} (SQLite)`,
          `p50 ${round(r.medianNs / 1e6, 2)} ms, p95 ${round(r.p95Ns / 1e6, 2)} ms`,
        ]),
      ],
      true
    );
    console.log(JSON.stringify(figures));
  } catch (err) {
    for (const proc of [...stack.workers.values(), stack.server]) {
      const file = path.join(os.tmpdir(), `bench-scale-${proc.name}.log`);
      writeFileSync(file, proc.output);
      console.error(`${proc.name} (${proc.alive ? 'running' : 'exited'}): output in ${file}`);
    }
    await stack.stop().catch(() => undefined);
    throw err;
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
