/**
 * The selectDestinations activity with its SQLite claim, measured with tinybench.
 *
 * The whole selectDestinations activity as the scheduler worker runs it: zod parse, listHostStates
 * through the placement cache, the pass, and the compare-and-swap claim in a SQLite transaction, in a
 * MockActivityEnvironment (the activity logs through its context). One store per size in a temp dir,
 * filled through the repository from makeFleet: inventories, traits, AZs and architectures
 * (upsertProviders), disabled / forced-down hosts and build failures, and makeFleet's allocations
 * (inserted in bulk). Every sample places a new instance (BENCH_REQUEST's flavor and image,
 * maxAttempts 3, ALL_HOSTS_UP); its claim is released after the sample, untimed, so that the fleet
 * never fills and every sample pays for the cache refresh a real scheduler pays after each claim.
 * Samples are taken in interleaved rounds across the sizes (as B3's are). `ratio` compares the median with the pure pass
 * over the very host states the store hands out. Target: p50 <= 10 ms at 10,000 hosts.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { Logger } from '@temporalio/common';
import type { MockActivityEnvironment } from '@temporalio/testing';

import { createSchedulerActivities, type SelectDestinationsResult } from '../../src/activities/scheduler';
import { ALL_HOSTS_UP } from '../../src/activities/scheduler/liveness';
import { DEFAULT_CATALOGUE } from '../../src/domain/catalogue';
import type { RequestSpecInput } from '../../src/domain/request-spec';
import type { HostState } from '../../src/scheduler';
import { SCHEDULER_TASK_QUEUE } from '../../src/shared/task-queues';
import { migrateToLatest, openStore, type Store, transaction } from '../../src/store/db';
import { createInstanceRepository } from '../../src/store/instances';
import { createPlacementRepository, type PlacementRepository } from '../../src/store/placement';
import { BENCH_CONFIG, BENCH_REQUEST, fleetSpecs, makeFleet, seededRng } from './fleet';
import { onePass, printColumns } from './pass';
import { type BenchTask, consume, interleave, sampleBatched, summarize } from './sampling';

export interface ActivityRow {
  name: string;
  hosts: number;
  medianNs: number;
  p95Ns: number;
  /** Optional comparison, e.g. against the pure pass at the same size. */
  ratio?: number;
  /** Optional target on the median, and whether this run met it. */
  targetMedianNs?: number;
  targetOk?: boolean;
}

export const ACTIVITY_SIZES = [1_000, 10_000] as const;
const ACTIVITY_SAMPLES = 500;
const ACTIVITY_WARMUP = 40;
const ACTIVITY_TARGET_MS = 10;
const ACTIVITY_TARGET_HOSTS = 10_000;

/** Writes a makeFleet fleet into an empty, migrated store. */
async function seedStore(store: Store, hosts: readonly HostState[]): Promise<void> {
  const placement = createPlacementRepository(store, { cacheHostStates: false });
  await placement.upsertProviders(fleetSpecs(hosts));
  for (const h of hosts) {
    if (!h.enabled) await placement.setDisabled(h.host, true, h.disabledReason);
    if (!h.up) await placement.setForcedDown(h.host, true);
    for (let n = 0; n < h.failedBuilds; n++) await placement.recordBuildResult(h.host, false);
  }
  // makeFleet keeps per-host sums only: split each host's usage evenly over its consumers.
  const now = new Date().toISOString();
  const rows = hosts.flatMap((h) => {
    const consumers = [...h.instances];
    return consumers.flatMap((consumer, i) =>
      (['VCPU', 'MEMORY_MB', 'DISK_GB'] as const).flatMap((rc) => {
        const share = Math.floor(h.used[rc] / consumers.length);
        const used = i === 0 ? h.used[rc] - share * (consumers.length - 1) : share;
        return used > 0 ? [{ consumer_id: consumer, provider: h.host, resource_class: rc, used, created_at: now }] : [];
      })
    );
  });
  // Bulk rows bypass the repository, so bump the placement version as its writes do (a repository
  // opened later loads everything anyway).
  await transaction(store, async (trx) => {
    for (let i = 0; i < rows.length; i += 500)
      await trx
        .insertInto('allocations')
        .values(rows.slice(i, i + 500))
        .execute();
    await trx
      .updateTable('placement_state')
      .set((eb) => ({ version: eb('version', '+', 1) }))
      .where('id', '=', 1)
      .execute();
  });
}

const QUIET: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/**
 * The SDK's testing package is loaded here, after B3 has run, not at the top of the file: with the
 * native worker runtime loaded from the start, B3's memory-bound loops measured slower on this box.
 */
async function mockActivityEnvironment(): Promise<MockActivityEnvironment> {
  const testing = await import('@temporalio/testing');
  return new testing.MockActivityEnvironment({ taskQueue: SCHEDULER_TASK_QUEUE }, { logger: QUIET });
}

interface ActivitySubject {
  hosts: number;
  placement: PlacementRepository;
  /** One selection, as a tinybench task: a new instance before each call, its claim released after (untimed). */
  task: BenchTask;
  close(): Promise<void>;
}

async function openSubject(dir: string, size: number): Promise<ActivitySubject> {
  const store = await openStore({ sqlitePath: path.join(dir, `placement-${size}.sqlite`) });
  await migrateToLatest(store);
  await seedStore(store, makeFleet(size));
  const placement = createPlacementRepository(store);
  const activities = createSchedulerActivities({
    placement,
    instances: createInstanceRepository(store),
    catalogue: DEFAULT_CATALOGUE,
    liveness: ALL_HOSTS_UP,
    config: BENCH_CONFIG,
    rng: seededRng(size),
  });
  const env = await mockActivityEnvironment();
  const { flavor, image, maxAttempts } = BENCH_REQUEST;
  const select = (input: RequestSpecInput): Promise<SelectDestinationsResult> => activities.selectDestinations(input);
  let instanceId = '';
  return {
    hosts: size,
    placement,
    task: {
      name: `selectDestinations ${size}`,
      fn: async () => {
        const input = { instanceIds: [instanceId], flavor, image, maxAttempts };
        const { selections } = await env.run<[RequestSpecInput], SelectDestinationsResult, typeof select>(
          select,
          input
        );
        consume(selections.length);
      },
      options: {
        beforeEach: () => {
          instanceId = randomUUID();
        },
        afterEach: () => placement.releaseConsumer(instanceId).then(() => undefined),
      },
    },
    close: () => store.close(),
  };
}

/** The full activity at each size, samples interleaved across sizes. */
export async function measureSelectActivity(
  sizes: readonly number[] = ACTIVITY_SIZES,
  samples = ACTIVITY_SAMPLES
): Promise<ActivityRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-scheduler-'));
  const subjects: ActivitySubject[] = [];
  try {
    for (const size of sizes) subjects.push(await openSubject(dir, size));
    const tasks = subjects.map((s) => s.task);
    await interleave(tasks, ACTIVITY_WARMUP);
    const perCall = await interleave(tasks, samples);
    const rows: ActivityRow[] = [];
    for (let s = 0; s < subjects.length; s++) {
      const subject = subjects[s]!;
      const summary = summarize(perCall[s]!);
      // The pure pass over the host states this store hands out, for the ratio.
      const states: HostState[] = await subject.placement.listHostStates(() => true);
      const rng = seededRng(3);
      const [pass] = await sampleBatched([{ name: 'pass', fn: () => onePass(states, rng) }], 100);
      const targeted = subject.hosts === ACTIVITY_TARGET_HOSTS;
      rows.push({
        name: 'selectDestinations activity + SQLite claim',
        hosts: subject.hosts,
        medianNs: summary.median,
        p95Ns: summary.p95,
        ratio: Math.round((summary.median / pass!.median) * 100) / 100,
        ...(targeted
          ? { targetMedianNs: ACTIVITY_TARGET_MS * 1e6, targetOk: summary.median <= ACTIVITY_TARGET_MS * 1e6 }
          : {}),
      });
    }
    printActivityTable(rows, samples);
    return rows;
  } finally {
    for (const s of subjects) await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function printActivityTable(rows: readonly ActivityRow[], samples: number): void {
  const ms = (ns: number) => (ns / 1e6).toFixed(2);
  console.log(
    `selectDestinations activity with its claim, SQLite store (temp dir), ALL_HOSTS_UP, ${samples} samples per size, ` +
      `claim released after each sample (untimed); ratio = activity p50 / pure pass p50 on the same hosts`
  );
  printColumns(
    ['hosts', 'p50 ms', 'p95 ms', 'ratio', 'target'],
    rows.map((r) => [
      r.hosts.toLocaleString('en-US'),
      ms(r.medianNs),
      ms(r.p95Ns),
      r.ratio === undefined ? '' : `${r.ratio.toFixed(1)}x`,
      r.targetMedianNs === undefined
        ? ''
        : `p50 <= ${ms(r.targetMedianNs)} ms: ${r.targetOk === true ? 'met' : 'MISSED'}`,
    ]),
    true
  );
}
