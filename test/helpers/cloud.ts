/**
 * A small cloud for workflow tests: a SQLite store, hosts registered in placement, a fake hypervisor per
 * host, and the real conductor, scheduler and compute activities on their real task queues, run by
 * in-process workers against a Temporal test environment.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Context } from '@temporalio/activity';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkerOptions } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, expect, vi } from 'vitest';

import { createComputeActivities, SELF_HEARTBEATING } from '../../src/activities/compute';
import { createConductorActivities } from '../../src/activities/conductor';
import type { SchedulerActivities } from '../../src/activities/scheduler';
import { createSchedulerActivities } from '../../src/activities/scheduler';
import { StaticLiveness } from '../../src/activities/scheduler/liveness';
import type { HostCpu } from '../../src/compute/driver';
import type { FakeDriverOptions } from '../../src/compute/fake';
import { FakeDriver } from '../../src/compute/fake';
import type { Catalogue } from '../../src/domain/catalogue';
import { DEFAULT_CATALOGUE, mergeCatalogues } from '../../src/domain/catalogue';
import type { HostSpec } from '../../src/domain/fleet';
import { HostSpecSchema } from '../../src/domain/fleet';
import type { InstanceRecord } from '../../src/domain/instance';
import type { BuildInstanceInput } from '../../src/domain/schemas';
import type { SchedulerConfig } from '../../src/scheduler/types';
import { DEFAULT_SCHEDULER_CONFIG } from '../../src/scheduler/types';
import {
  computeTaskQueue,
  CONDUCTOR_TASK_QUEUE,
  SCHEDULER_TASK_QUEUE,
  workflowIds,
} from '../../src/shared/task-queues';
import type { Store } from '../../src/store/db';
import { migrateToLatest, openStore } from '../../src/store/db';
import { createInstanceRepository } from '../../src/store/instances';
import { createPlacementRepository } from '../../src/store/placement';
import { instanceWrites } from '../../src/store/write-once';
import { activityInterceptors, computeWorkerOptions } from '../../src/workers/interceptors';
import type { buildInstance } from '../../src/workflows/build-instance';
import { createTimeSkippingEnv, reportStillRunning, withWorkers, workflowBundleOption } from './temporal';

/** Images the default catalogue lacks: one larger than m1.small's 20 GB root disk, one with its own shutdown timeout. */
export const TEST_CATALOGUE: Catalogue = mergeCatalogues(DEFAULT_CATALOGUE, {
  flavors: [],
  images: [
    { name: 'huge-image', sizeGb: 50, minDiskGb: 0, minRamMb: 0, properties: { traitsRequired: [] } },
    // A guest that needs longer than the default 60 s to shut down cleanly (Nova's os_shutdown_timeout).
    {
      name: 'slow-shutdown-image',
      sizeGb: 1,
      minDiskGb: 0,
      minRamMb: 0,
      properties: { hwArchitecture: 'x86_64', osShutdownTimeout: 30, traitsRequired: [] },
    },
  ],
});

/** How many hosts a test zone has (see TestCloud.zone). */
export type ZoneSize = 1 | 2 | 3 | 4 | 5 | 6;

/** The host names of a zone of N hosts: a tuple, so a test names hosts[1] of a zone of two without `!`. */
export type HostNames<N extends ZoneSize, Names extends string[] = []> = Names['length'] extends N
  ? Names
  : HostNames<N, [...Names, string]>;

/** A test zone's hosts (see TestCloud.zone). */
export interface ZoneOptions {
  /** The zone's and its hosts' name (`<tag>-az-<n>`, `<tag><n>-host-a`). */
  tag?: string;
  /** Each spawn's seconds on every host, or host by host (0.2 s for a host the list does not reach). */
  spawnSeconds?: number | readonly number[];
  /** The fake hypervisor's clean-shutdown seconds (its own default if absent). */
  shutdownSeconds?: number;
  /** Every host's memory; absent, 64 GiB for the first host and 8 GiB less for each next one. */
  memoryMb?: number;
  /** The hosts' CPUs, host by host (the driver's default for a host the list does not reach). */
  cpus?: readonly HostCpu[];
  /** The hypervisor's clock (a test's server time). */
  now?: () => number;
}

export class TestCloud {
  readonly dataDir = mkdtempSync(path.join(tmpdir(), 'conductor-cloud-'));
  readonly liveness = new StaticLiveness();
  readonly drivers = new Map<string, FakeDriver>();
  /** Zones made by zone(): each gets the next number. */
  private zones = 0;
  store!: Store;
  placement!: ReturnType<typeof createPlacementRepository>;
  instances!: ReturnType<typeof createInstanceRepository>;
  schedulerConfig: SchedulerConfig = DEFAULT_SCHEDULER_CONFIG;
  /** Every compute activity call, in order: which host was asked to do what, for which instance. */
  readonly computeCalls: Array<{ host: string; activity: string; instanceId?: string }> = [];
  /** Conductor activities whose next answer is lost once: the write commits, then the call fails. */
  private readonly losing = new Set<string>();
  /** Hosts whose worker is frozen: each compute call there is taken and never answered, with no heartbeat. */
  private readonly frozen = new Map<string, () => void>();
  /** Compute activities whose next call waits at a gate until the test opens it. */
  private readonly gates = new Map<string, { reached: () => void; opened: Promise<void>; finished: () => void }>();

  constructor(
    readonly env: TestWorkflowEnvironment,
    /** What every zone() of this cloud (one test file's) has unless a call says otherwise: its tag … */
    private readonly zoneDefaults: ZoneOptions = {}
  ) {}

  async open(): Promise<this> {
    this.store = await openStore({ sqlitePath: path.join(this.dataDir, 'conductor.sqlite') });
    await migrateToLatest(this.store);
    this.placement = createPlacementRepository(this.store);
    this.instances = createInstanceRepository(this.store);
    return this;
  }

  async close(): Promise<void> {
    await this.store?.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Registers hosts in placement and gives each a fake hypervisor (spawns take `spawnSeconds`). */
  async addHosts(specs: Array<Partial<HostSpec> & { name: string }>, spawnSeconds = 0.2): Promise<string[]> {
    for (const partial of specs) {
      const spec = HostSpecSchema.parse({ vcpus: 16, memoryMb: 32768, diskGb: 500, ...partial });
      await this.placement.upsertProvider(spec);
      this.drivers.set(
        spec.name,
        new FakeDriver({ host: spec.name, stateDir: path.join(this.dataDir, 'compute'), spawnSeconds })
      );
    }
    return specs.map((s) => s.name);
  }

  /**
   * A new availability zone of `count` hosts, named after the file's zones (`defaults.tag`): its first
   * host has the most memory (64 GiB, 8 GiB less for each next one, unless `memoryMb` gives every host
   * the same), so it is the scheduler's choice and the others its alternates, in order. Each host gets a
   * fake hypervisor with the zone's spawn and shutdown seconds, and its CPU if `cpus` names one.
   */
  async zone<N extends ZoneSize>(count: N, options: ZoneOptions = {}): Promise<{ az: string; hosts: HostNames<N> }> {
    const {
      tag = 'z',
      spawnSeconds = 0.2,
      shutdownSeconds,
      memoryMb,
      cpus = [],
      now,
    } = {
      ...this.zoneDefaults,
      ...options,
    };
    const n = ++this.zones;
    const az = `${tag}-az-${n}`;
    const hosts: string[] = [];
    for (let i = 0; i < count; i++) {
      const host = `${tag}${n}-host-${String.fromCharCode(97 + i)}`;
      const seconds = typeof spawnSeconds === 'number' ? spawnSeconds : (spawnSeconds[i] ?? 0.2);
      await this.addHosts([{ name: host, availabilityZone: az, memoryMb: memoryMb ?? 65536 - i * 8192 }], seconds);
      const driver: FakeDriverOptions = { host, stateDir: path.join(this.dataDir, 'compute'), spawnSeconds: seconds };
      if (shutdownSeconds !== undefined) driver.shutdownSeconds = shutdownSeconds;
      if (cpus[i]) driver.cpu = cpus[i];
      if (now) driver.now = now;
      this.drivers.set(host, new FakeDriver(driver));
      hosts.push(host);
    }
    return { az, hosts: hosts as HostNames<N> };
  }

  /**
   * Starts the build of one server in `az`: m1.small from cirros, named after its id, its workflow id
   * the instance's (unless `workflowId` names another); `input` adds to or changes that (a flavor,
   * scheduler hints, a requested host …).
   */
  startBuild(
    az: string,
    input: Partial<BuildInstanceInput> = {},
    workflowId?: string
  ): Promise<WorkflowHandle<typeof buildInstance>> {
    const instanceId = input.instanceId ?? randomUUID();
    return this.env.client.workflow.start<typeof buildInstance>('buildInstance', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: workflowId ?? workflowIds.buildInstance(instanceId),
      args: [
        {
          name: `vm-${instanceId.slice(0, 8)}`,
          flavor: 'm1.small',
          image: 'cirros',
          availabilityZone: az,
          ...input,
          instanceId,
        },
      ],
    });
  }

  /** Builds one server (see startBuild) and returns its record once the build succeeded. */
  async boot(az: string, input: Partial<BuildInstanceInput> = {}): Promise<InstanceRecord> {
    return (await this.startBuild(az, input)).result();
  }

  driver(host: string): FakeDriver {
    const driver = this.drivers.get(host);
    if (!driver) throw new Error(`no driver for ${host}`);
    return driver;
  }

  /**
   * The next call of the conductor activity `name` commits and then loses its answer (fails retryably, as
   * a worker that died after the write would): Temporal retries it, and the retry must succeed.
   */
  loseNextAnswer(name: keyof ReturnType<typeof createConductorActivities>): void {
    this.losing.add(name);
  }

  private conductorActivities() {
    const activities = createConductorActivities({
      instances: this.instances,
      catalogue: TEST_CATALOGUE,
      writes: instanceWrites(this.store),
      temporal: this.env.client,
      placement: this.placement,
    });
    return Object.fromEntries(
      Object.entries(activities).map(([name, fn]) => [
        name,
        async (...args: unknown[]) => {
          const result: unknown = await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
          if (this.losing.delete(name)) throw new Error(`the answer of ${name} was lost (test)`);
          return result;
        },
      ])
    );
  }

  /**
   * The next call of the compute activity (on any host) or scheduler activity `name` stops at a gate:
   * `reached` resolves once a call is there, and the call goes on when `open()` is called. For
   * cancelling an operation at one step.
   */
  holdNext(name: keyof ReturnType<typeof createComputeActivities> | keyof SchedulerActivities): {
    reached: Promise<void>;
    open: () => void;
    /** Settles once the held call has run to its end (whatever its outcome). */
    done: Promise<void>;
  } {
    let open = () => undefined as void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    let reached = () => undefined as void;
    const arrived = new Promise<void>((resolve) => (reached = resolve));
    let finished = () => undefined as void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    this.gates.set(name, { reached, opened, finished });
    return { reached: arrived, open, done };
  }

  /**
   * Freezes the compute worker of `host` from now on, as SIGSTOP would once its open long polls have taken
   * tasks: every compute call there is taken and never answered, and the worker's automatic heartbeat is
   * withheld for it. `reached` resolves once a call is held; held calls end only when cancelled (the
   * worker shutting down). The calls still show in `computeCalls`.
   */
  freezeHost(host: string): { reached: Promise<void> } {
    let reached = () => undefined as void;
    const arrived = new Promise<void>((resolve) => (reached = resolve));
    this.frozen.set(host, reached);
    return { reached: arrived };
  }

  private computeActivities(host: string) {
    const activities = createComputeActivities({ host, driver: this.driver(host) });
    return Object.fromEntries(
      Object.entries(activities).map(([activity, fn]) => [
        activity,
        (...args: unknown[]) => {
          const instanceId = (args[0] as { instanceId?: string } | undefined)?.instanceId;
          this.computeCalls.push({ host, activity, instanceId });
          const frozen = this.frozen.get(host);
          if (frozen) {
            frozen();
            const signal = Context.current().cancellationSignal;
            return new Promise((_, reject) =>
              signal.addEventListener('abort', () => reject(new Error(`${activity} on frozen ${host} cancelled`)))
            );
          }
          return this.throughGate(activity, () => (fn as (...a: unknown[]) => unknown)(...args));
        },
      ])
    );
  }

  /**
   * Waits until the workflow `workflowId` has its cancellation request in its history (a parent's
   * cancellation reaches its child a workflow task later), so a held call is let go only once it knows.
   */
  async cancelRequestSeen(workflowId: string): Promise<void> {
    const handle = this.env.client.workflow.getHandle(workflowId);
    await vi.waitFor(
      async () => {
        const { events } = await handle.fetchHistory();
        expect(events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes)).toBe(true);
      },
      { timeout: 10_000 }
    );
  }

  /** Runs `call`, first waiting at the gate of `activity` when a test set one (holdNext). */
  private throughGate(activity: string, call: () => unknown): unknown {
    const gate = this.gates.get(activity);
    if (!gate) return call();
    this.gates.delete(activity);
    gate.reached();
    return gate.opened.then(call).finally(() => gate.finished());
  }

  private schedulerActivities() {
    const activities = createSchedulerActivities({
      placement: this.placement,
      instances: this.instances,
      catalogue: TEST_CATALOGUE,
      liveness: this.liveness,
      config: this.schedulerConfig,
      rng: () => 0,
    });
    return Object.fromEntries(
      Object.entries(activities).map(([activity, fn]) => [
        activity,
        (...args: unknown[]) => this.throughGate(activity, () => (fn as (...a: unknown[]) => unknown)(...args)),
      ])
    );
  }

  /** Worker options: the conductor, the scheduler, and one compute worker for each host listed. */
  workerSpecs(computeHosts: readonly string[]): Array<Omit<WorkerOptions, 'connection'>> {
    return [
      {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        ...workflowBundleOption(),
        activities: this.conductorActivities(),
        interceptors: activityInterceptors,
      },
      {
        taskQueue: SCHEDULER_TASK_QUEUE,
        activities: this.schedulerActivities(),
        interceptors: activityInterceptors,
      },
      ...computeHosts.map((host) => ({
        taskQueue: computeTaskQueue(host),
        activities: this.computeActivities(host),
        maxConcurrentActivityTaskExecutions: 10,
        // A frozen host's worker heartbeats nothing.
        ...computeWorkerOptions((type) => SELF_HEARTBEATING.has(type) || this.frozen.has(host)),
      })),
    ];
  }

  /** Runs `fn` while the conductor, the scheduler and compute workers for `computeHosts` poll. */
  run<T>(computeHosts: readonly string[], fn: () => Promise<T>): Promise<T> {
    return withWorkers(this.env, this.workerSpecs(computeHosts), fn);
  }
}

/**
 * The set-up of a workflow test file: one time-skipping environment and one TestCloud for the whole
 * file (skipping is global to a server, so files never share one), torn down after it, and after every
 * test the placement audit: no orphaned allocation, no host over capacity, whatever the test did.
 * `ready` receives them once created; `zoneDefaults` are the file's zones' (TestCloud.zone): its tag at least.
 */
export function useTimeSkippingCloud(
  ready: (env: TestWorkflowEnvironment, cloud: TestCloud) => void,
  zoneDefaults: ZoneOptions = {}
): void {
  let env: TestWorkflowEnvironment | undefined;
  let cloud: TestCloud | undefined;
  beforeAll(async () => {
    env = await createTimeSkippingEnv();
    cloud = await new TestCloud(env, zoneDefaults).open();
    ready(env, cloud);
  });
  afterAll(async () => {
    await cloud?.close();
    await env?.teardown();
  });
  afterEach(async ({ task }) => {
    // A failed test (one that timed out waiting on a workflow too) says what it left running.
    if (env) await reportStillRunning(env, task.result?.state === 'fail');
    if (cloud) expect(await cloud.placement.audit()).toEqual({ orphans: [], overCapacity: [] });
  });
}
