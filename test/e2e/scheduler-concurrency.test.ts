/**
 * Claims under real concurrency: 200 selections at once, served by TWO scheduler worker processes
 * sharing one store, over 20 hosts with room for exactly 150 m1.tiny instances (10 hosts × 7 + 10 × 8,
 * sized by MEMORY_MB with 512 MB reserved and ratio 1). Exactly 150 succeed, 50 fail NoValidHost, no
 * host goes over capacity and the placement audit finds nothing.
 *
 * Everything goes through Temporal on a dev server: a fixture workflow per selection (bundled from
 * fixtures/concurrency-workflows.ts) creates the instance record with the real conductor activity
 * (in-process conductor worker over the same store) and calls scheduler.selectDestinations through
 * the project's proxies. The scheduler processes are `src/workers/scheduler-worker.ts` as
 * `npm run worker:scheduler` runs it; their TaskQueuePollerLiveness sees the hosts up because an
 * in-process worker polls each `compute-<host>` queue. Which process served each selection is read
 * from the workflow histories (the identity on ActivityTaskStarted, `<pid>@<hostname>` by default).
 *
 * Runs on SQLite always, and on PostgreSQL too when TEST_DATABASE_URL is set (a fresh database per run,
 * see test/unit/store/backends.ts); under CI=true a missing TEST_DATABASE_URL fails the PostgreSQL run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { createConductorActivities } from '../../src/activities/conductor';
import { timestampMs } from '../../src/activities/scheduler/liveness';
import { DEFAULT_CATALOGUE } from '../../src/domain/catalogue';
import { FailureType } from '../../src/domain/errors';
import { type HostSpec, HostSpecSchema } from '../../src/domain/fleet';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, SCHEDULER_TASK_QUEUE } from '../../src/shared/task-queues';
import { migrateToLatest, openStore, type Store } from '../../src/store/db';
import { createInstanceRepository, type InstanceRepository } from '../../src/store/instances';
import { createPlacementRepository, type PlacementRepository } from '../../src/store/placement';
import { activityInterceptors } from '../../src/workers/interceptors';
import { createDevServerEnv, withWorkers } from '../helpers/temporal';
import { BACKENDS, type TestDatabase } from '../unit/store/backends';
import { type createAndSelect, type CreateAndSelectResult, goSignal } from './fixtures/concurrency-workflows';

const ROOT = path.resolve(__dirname, '..', '..');
const SCHEDULER_WORKER = path.join(ROOT, 'src', 'workers', 'scheduler-worker.ts');
const NAMESPACE = 'default';

const SELECTIONS = 200;
const FLAVOR = 'm1.tiny'; // 1 VCPU, 512 MB, 1 GB
const IMAGE = 'cirros';
const TINY_MB = 512;

/** 10 hosts with room for exactly 7 m1.tiny and 10 with room for exactly 8 (by memory): 150 in all. */
const HOSTS: Array<{ spec: HostSpec; slots: number }> = Array.from({ length: 20 }, (_, i) => {
  const slots = i < 10 ? 7 : 8;
  const spec = HostSpecSchema.parse({
    name: `conc-${String(i + 1).padStart(2, '0')}`,
    vcpus: 64,
    memoryMb: 512 + slots * TINY_MB,
    diskGb: 1000,
    reserved: { vcpus: 0, memoryMb: 512, diskGb: 0 },
    allocationRatio: { vcpus: 4, memoryMb: 1, diskGb: 1 },
  });
  return { spec, slots };
});
const CAPACITY = HOSTS.reduce((n, h) => n + h.slots, 0);

interface SelectionRun {
  workflowId: string;
  server: string;
  /** The attempt that closed it (1 unless the activity was retried). */
  attempt: number;
  startedMs: number;
  closedMs: number;
}

/** The most selections running at one moment. */
function peakOverlap(runs: readonly SelectionRun[]): number {
  const edges = runs.flatMap((r) => [
    { at: r.startedMs, d: 1 },
    { at: r.closedMs, d: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.d - b.d);
  let now = 0;
  let peak = 0;
  for (const e of edges) peak = Math.max(peak, (now += e.d));
  return peak;
}

interface WorkerProcess {
  child: ChildProcess;
  /** The worker's default identity starts with this (`<pid>@<hostname>`). */
  identityPrefix: string;
  output: () => string;
}

function spawnScheduler(env: NodeJS.ProcessEnv): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', SCHEDULER_WORKER], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, identityPrefix: `${child.pid}@`, output: () => output };
}

/** SIGTERM (the worker shuts down gracefully), SIGKILL after 5 s. */
async function stopProcess(p: WorkerProcess): Promise<void> {
  const { child } = p;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

describe('scheduler concurrency: 200 selections from two scheduler processes sharing the store', () => {
  let env: TestWorkflowEnvironment;
  let code: string;

  beforeAll(async () => {
    [env, { code }] = await Promise.all([
      createDevServerEnv(),
      bundleWorkflowCode({
        workflowsPath: path.join(__dirname, 'fixtures', 'concurrency-workflows.ts'),
        logger: new DefaultLogger('WARN'),
      }),
    ]);
  });
  afterAll(async () => env?.teardown());

  /** Identities of the activity pollers the server has seen on `queue`. */
  async function pollerIdentities(queue: string): Promise<string[]> {
    const res = await env.connection.workflowService.describeTaskQueue({
      namespace: NAMESPACE,
      taskQueue: { name: queue },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    return (res.pollers ?? []).map((p) => p.identity ?? '');
  }

  /** Waits until every prefix has a poller on `queue`; fails early when a watched process exits. */
  async function waitForPollers(
    queue: string,
    prefixes: readonly string[],
    processes: readonly WorkerProcess[] = [],
    timeoutMs = 60_000
  ): Promise<void> {
    const exited = await vi.waitFor(
      async () => {
        const gone = processes.find((p) => p.child.exitCode !== null);
        if (gone) return gone;
        const seen = await pollerIdentities(queue);
        if (!prefixes.every((prefix) => seen.some((id) => id.startsWith(prefix))))
          throw new Error(
            `no pollers ${prefixes.join(', ')} on ${queue} after ${timeoutMs} ms (seen: ${seen.join(', ')})`
          );
        return undefined;
      },
      { timeout: timeoutMs, interval: 100 }
    );
    if (exited) throw new Error(`scheduler worker exited ${exited.child.exitCode}:\n${exited.output()}`);
  }

  /**
   * Who ran each workflow's selectDestinations (the identity on its last ActivityTaskStarted) and when
   * it started and closed (server event times, ms).
   */
  async function selectionRuns(workflowIds: readonly string[]): Promise<SelectionRun[]> {
    // p-limit is ESM only: imported as such from this CommonJS module.
    const { default: pLimit } = await import('p-limit');
    const limit = pLimit(16);
    return Promise.all(
      workflowIds.map((workflowId) =>
        limit(async () => {
          const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
          const events = history.events ?? [];
          const scheduled = events.find(
            (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'selectDestinations'
          );
          if (scheduled?.eventId == null) throw new Error(`${workflowId}: no selectDestinations in its history`);
          const of = (attrs: { scheduledEventId?: unknown } | null | undefined) =>
            attrs != null && String(attrs.scheduledEventId) === String(scheduled.eventId);
          const started = events.find((e) => of(e.activityTaskStartedEventAttributes));
          const closed = events.find(
            (e) => of(e.activityTaskCompletedEventAttributes) || of(e.activityTaskFailedEventAttributes)
          );
          return {
            workflowId,
            server: started?.activityTaskStartedEventAttributes?.identity ?? '(not started)',
            attempt: started?.activityTaskStartedEventAttributes?.attempt ?? 0,
            startedMs: timestampMs(started?.eventTime),
            closedMs: timestampMs(closed?.eventTime),
          };
        })
      )
    );
  }

  describe.each(BACKENDS)('on $name', (backend) => {
    const dataDir = mkdtempSync(path.join(tmpdir(), `conductor-concurrency-${backend.name}-`));
    const schedulers: WorkerProcess[] = [];
    let database: TestDatabase | undefined;
    let store: Store | undefined;
    let placement: PlacementRepository;
    let instances: InstanceRepository;
    let workerEnv: NodeJS.ProcessEnv;

    beforeAll(async () => {
      database = await backend.create(); // under CI=true without TEST_DATABASE_URL: fails with the hint
      store = await openStore(database.options);
      await migrateToLatest(store);
      placement = createPlacementRepository(store);
      instances = createInstanceRepository(store);
      await placement.upsertProviders(HOSTS.map((h) => h.spec));

      workerEnv = { ...process.env, TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: NAMESPACE, LOG_LEVEL: 'WARN' };
      delete workerEnv.CATALOGUE_FILE;
      delete workerEnv.DATABASE_URL;
      if (database.options.databaseUrl !== undefined) {
        workerEnv.DATA_DIR = dataDir;
        workerEnv.DATABASE_URL = database.options.databaseUrl;
      } else {
        // The scheduler worker opens $DATA_DIR/conductor.sqlite: the very file this test writes.
        const file = database.options.sqlitePath!;
        expect(path.basename(file)).toBe('conductor.sqlite');
        workerEnv.DATA_DIR = path.dirname(file);
      }
    });

    afterAll(async () => {
      await Promise.all(schedulers.map(stopProcess));
      await store?.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it(`places exactly ${CAPACITY} of ${SELECTIONS}, fails the rest with NoValidHost, over-commits nothing`, async () => {
      const t0 = Date.now();
      const runTag = randomUUID().slice(0, 8);
      const conductorActivities = createConductorActivities({ instances, catalogue: DEFAULT_CATALOGUE });
      const computeSpecs = HOSTS.map(({ spec }) => ({
        taskQueue: computeTaskQueue(spec.name),
        identity: `compute-${spec.name}-${runTag}`,
        activities: { ping: () => Promise.resolve('pong') },
        maxConcurrentActivityTaskPolls: 2,
      }));

      let timings = '';
      const results = await withWorkers(
        env,
        [
          {
            taskQueue: CONDUCTOR_TASK_QUEUE,
            identity: `conductor-${runTag}`,
            maxConcurrentWorkflowTaskPolls: 10,
            maxConcurrentActivityTaskPolls: 10,
            workflowBundle: { code },
            activities: conductorActivities,
            interceptors: activityInterceptors,
          },
          ...computeSpecs,
        ],
        async () => {
          // Live compute pollers first, so the schedulers' first liveness refresh sees every host up.
          await Promise.all(computeSpecs.map((s) => waitForPollers(s.taskQueue, [s.identity])));
          schedulers.push(spawnScheduler(workerEnv), spawnScheduler(workerEnv));
          await waitForPollers(
            SCHEDULER_TASK_QUEUE,
            schedulers.map((s) => s.identityPrefix),
            schedulers
          );
          const tReady = Date.now();

          const ids = Array.from({ length: SELECTIONS }, () => randomUUID());
          const handles = await Promise.all(
            ids.map((instanceId, i) =>
              env.client.workflow.start<typeof createAndSelect>('createAndSelect', {
                taskQueue: CONDUCTOR_TASK_QUEUE,
                workflowId: `concurrency-${backend.name}-${runTag}-${i}`,
                args: [{ instanceId, flavor: FLAVOR, image: IMAGE }],
              })
            )
          );
          // Every instance record first, then release all the selections at once.
          await vi.waitFor(
            async () =>
              expect((await instances.list()).length, 'instance records created').toBeGreaterThanOrEqual(SELECTIONS),
            { timeout: 60_000, interval: 100 }
          );
          const tCreated = Date.now();
          await Promise.all(handles.map((h) => h.signal(goSignal)));
          const tSignalled = Date.now();
          const out = await Promise.all(handles.map((h) => h.result()));
          const tDone = Date.now();
          const runs = await selectionRuns(handles.map((h) => h.workflowId));
          const first = Math.min(...runs.map((r) => r.startedMs));
          const last = Math.max(...runs.map((r) => r.closedMs));
          timings =
            `setup ${secs(tReady - t0)}, ${SELECTIONS} instance records ${secs(tCreated - tReady)}, ` +
            `${SELECTIONS} selections ${secs(tDone - tCreated)} (signal ${secs(tSignalled - tCreated)}; ` +
            `selectDestinations ran over ${secs(last - first)}, at most ${peakOverlap(runs)} at once, ` +
            `${runs.filter((r) => r.attempt > 1).length} retried)`;
          // A retried selection means an attempt timed out: show what the workers said about it.
          for (const r of runs.filter((run) => run.attempt > 1)) {
            const said = schedulers.flatMap((p) => p.output().split('\n')).filter((l) => l.includes(r.workflowId));
            console.warn(`selection ${r.workflowId} ran ${r.attempt} attempts:\n${said.join('\n')}`);
          }
          return out.map((r, i) => ({ ...r, server: runs[i]!.server }));
        }
      );
      for (const s of schedulers) expect(s.child.exitCode, `a scheduler worker died:\n${s.output()}`).toBeNull();

      // Exactly the capacity succeeds; every other selection fails NoValidHost.
      const placed = results.filter((r): r is CreateAndSelectResult & { host: string; server: string } =>
        Boolean(r.host)
      );
      const failed = results.filter((r) => r.host === undefined);
      const reasons = new Map<string, number>();
      for (const r of failed) {
        const reason = (r.message ?? r.failure ?? '?').replace(/[0-9a-f-]{36}/g, '<id>').replace(/conc-\d+/g, '<host>');
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      }
      expect(placed, `failures: ${JSON.stringify([...reasons])}`).toHaveLength(CAPACITY);
      expect(failed).toHaveLength(SELECTIONS - CAPACITY);
      expect(new Set(failed.map((r) => r.failure))).toEqual(new Set([FailureType.NoValidHost]));

      // Both scheduler processes served selections, and both made claims that stuck.
      const byServer = new Map<string, { placed: number; failed: number }>();
      for (const r of results) {
        const entry = byServer.get(r.server) ?? { placed: 0, failed: 0 };
        if (r.host) entry.placed += 1;
        else entry.failed += 1;
        byServer.set(r.server, entry);
      }
      for (const s of schedulers) {
        const served = [...byServer].filter(([id]) => id.startsWith(s.identityPrefix)).map(([, n]) => n);
        expect(served, `selections per worker: ${JSON.stringify([...byServer])}`).toHaveLength(1);
        expect(served[0]!.placed, `selections per worker: ${JSON.stringify([...byServer])}`).toBeGreaterThan(0);
      }
      expect([...byServer.keys()].every((id) => schedulers.some((s) => id.startsWith(s.identityPrefix)))).toBe(true);

      // No host over capacity: per-host allocation sums, and the placement audit.
      for (const { spec, slots } of HOSTS) {
        const allocations = await placement.allocationsByHost(spec.name);
        const memory = allocations.reduce((sum, a) => sum + a.resources.MEMORY_MB, 0);
        expect(memory, spec.name).toBeLessThanOrEqual(spec.memoryMb - spec.reserved.memoryMb);
        expect(allocations.length, spec.name).toBeLessThanOrEqual(slots);
        expect(allocations.map((a) => a.consumerId).sort(), spec.name).toEqual(
          placed
            .filter((r) => r.host === spec.name)
            .map((r) => r.instanceId)
            .sort()
        );
      }
      for (const r of failed) expect(await placement.getAllocations(r.instanceId)).toEqual([]);
      const audit = await placement.audit();
      expect(audit.overCapacity).toEqual([]);
      expect(audit.orphans).toEqual([]);
      // Every selection had its instance record written by the conductor activity.
      expect((await instances.list()).length).toBe(SELECTIONS);

      const split = [...byServer].map(([id, n]) => `${id.split('@')[0]}: ${n.placed} placed / ${n.failed} failed`);
      console.log(
        `scheduler concurrency on ${backend.name}: ${timings}, total ${secs(Date.now() - t0)}; ${split.join('; ')}`
      );
    }, 150_000);
  });
});
