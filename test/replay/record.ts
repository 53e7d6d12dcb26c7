/**
 * Records the committed replay histories under test/replay/<workflowType>/<case>.json from the current
 * workflow code, on the time-skipping server with the real conductor, scheduler and compute workers of
 * TestCloud (as the workflow tests run them). Not part of `npm test`: `npm run replay:record` runs it
 * (scripts/record-replay-histories.ts: vitest's `replay-record` project, present only with
 * REPLAY_RECORD=1). Every history is checked to end in the closed state its case expects, with no failed
 * workflow task, before it is written; test/replay/README.md, the index, is rewritten with them.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, describe, expect, it, vi } from 'vitest';

import type { Faults } from '../../src/compute/fake';
import type { RebootInput } from '../../src/domain/reboot';
import type { BuildInstanceInput, RebuildInput, ResizeMigrateInput, StopInput } from '../../src/domain/schemas';
import {
  abortLiveMigrationUpdate,
  forceCompleteUpdate,
  confirmResizeUpdate,
  getProgressQuery,
  revertResizeUpdate,
} from '../../src/shared/messages';
import { computeTaskQueue, CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import type { TestCloud, ZoneOptions, ZoneSize } from '../helpers/cloud';
import { useTimeSkippingCloud } from '../helpers/cloud';
import type { consoleOutput } from '../../src/workflows/console-output';
import { historyToJSON } from '../helpers/history-json';
import { liveCopyRunning, withWorkers } from '../helpers/temporal';
import { progressReached } from '../helpers/progress';

const REPLAY_DIR = __dirname;
const INDEX = path.join(REPLAY_DIR, 'README.md');
/**
 * REPLAY_OVERWRITE=1 (`npm run replay:record -- --overwrite`) clears and re-records every history.
 * Without it a history already committed is kept as it is (it is what a running workflow of that
 * version looks like; its case still runs, so the current code must still take that path) and only
 * cases with no file yet are written: the way to add the histories of a new, versioned path.
 */
const OVERWRITE = process.env.REPLAY_OVERWRITE === '1';
const EventType = temporal.api.enums.v1.EventType;
type Close = 'COMPLETED' | 'FAILED' | 'CANCELED';

let env: TestWorkflowEnvironment;
let cloud: TestCloud;
useTimeSkippingCloud((e, c) => {
  env = e;
  cloud = c;
});

/** The index rows of the histories committed before this run, by file. */
const previousRows = new Map(
  (existsSync(INDEX) ? readFileSync(INDEX, 'utf8') : '').split('\n').flatMap((line) => {
    const match = /^\| `([^`]+\.json)` +\|/.exec(line);
    // A history removed by hand (a retired patch's, docs/versioning.md) loses its row.
    return match && existsSync(path.join(REPLAY_DIR, match[1]!))
      ? [[match[1]!, line.replace(/ +\|/g, ' |').replace(/\| +/g, '| ')] as const]
      : [];
  })
);

interface Entry {
  file: string;
  workflowType: string;
  workflowId: string;
  close: Close;
  events: number;
  covers: string;
}
const recorded: Entry[] = [];

/** The test server's clock (skipped time included), read at the start of every compute activity. */
let serverNowMs = Date.now();

let vmCounter = 0;
/**
 * Hosts in a zone of their own (see TestCloud.zone): free RAM orders them (the first is chosen, the
 * next are alternates). `serverClock`: guests live on workflow time (stop tests: a 5 s shutdown is 5
 * skipped seconds).
 */
function zone<N extends ZoneSize>(
  count: N,
  { serverClock = false, ...options }: ZoneOptions & { serverClock?: boolean } = {}
) {
  return cloud.zone(count, {
    tag: 'rp',
    shutdownSeconds: 0.1,
    ...(serverClock ? { now: () => serverNowMs } : {}),
    ...options,
  });
}

type ActivityFn = (...args: unknown[]) => Promise<unknown>;

/** Runs `fn` while the conductor, the scheduler and compute workers for `hosts` poll. */
function run<T>(hosts: readonly string[], fn: () => Promise<T>): Promise<T> {
  const computeQueues = new Set(hosts.map(computeTaskQueue));
  const specs = cloud.workerSpecs(hosts).map((spec) => {
    if (!computeQueues.has(spec.taskQueue)) return spec;
    const activities = Object.fromEntries(
      Object.entries((spec.activities ?? {}) as Record<string, ActivityFn>).map(([name, activity]) => [
        name,
        async (...args: unknown[]) => {
          serverNowMs = await env.currentTimeMs();
          return activity(...args);
        },
      ])
    );
    return { ...spec, activities };
  });
  return withWorkers(env, specs, fn);
}

const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error })
  );

function startBuild(input: Omit<BuildInstanceInput, 'flavor' | 'image'> & { flavor?: string; image?: string }) {
  const instanceId = randomUUID();
  return env.client.workflow.start('buildInstance', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.buildInstance(instanceId),
    args: [{ flavor: 'm1.small', image: 'cirros', ...input, instanceId }],
  });
}

/** A build that must succeed (workers must be running); its instance id and host. */
async function boot(az: string): Promise<{ instanceId: string; host: string }> {
  const handle = await startBuild({ name: `vm-${++vmCounter}`, availabilityZone: az });
  const record = (await handle.result()) as { instanceId: string; host: string; vmState: string };
  expect(record.vmState).toBe('active');
  return record;
}

const startStop = (input: StopInput) =>
  env.client.workflow.start('stop', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.stop(input.instanceId, randomUUID().slice(0, 8)),
    args: [input],
  });
const startReboot = (input: RebootInput) =>
  env.client.workflow.start('reboot', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.reboot(input.instanceId, randomUUID().slice(0, 8)),
    args: [input],
  });
const startPowerAction = (type: 'pause' | 'unpause' | 'suspend' | 'resume', instanceId: string) =>
  env.client.workflow.start(type, {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds[type](instanceId, randomUUID().slice(0, 8)),
    args: [{ instanceId }],
  });
const startRebuild = (input: RebuildInput) =>
  env.client.workflow.start('rebuild', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.rebuild(input.instanceId, randomUUID().slice(0, 8)),
    args: [input],
  });
const startResize = (input: ResizeMigrateInput) =>
  env.client.workflow.start('resizeMigrate', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.resizeMigrate(input.instanceId, randomUUID().slice(0, 8)),
    args: [input],
  });
const startLive = (input: { instanceId: string; completionTimeoutSecondsPerGb?: number }) =>
  env.client.workflow.start('liveMigrate', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.liveMigrate(input.instanceId, randomUUID().slice(0, 8)),
    args: [input],
  });
const startServerGroup = (input: Record<string, unknown>) =>
  env.client.workflow.start('serverGroup', {
    taskQueue: CONDUCTOR_TASK_QUEUE,
    workflowId: workflowIds.serverGroup(String(input.action), randomUUID().slice(0, 8)),
    args: [input],
  });

function closeOf(history: temporal.api.history.v1.IHistory): string {
  const last = history.events?.at(-1)?.eventType;
  return last == null ? 'none' : String(EventType[last]);
}

/**
 * Checks how a run closed and writes its history to <workflowType>/<name>.json (fetched unless given).
 */
async function save(
  workflowId: string,
  runId: string | undefined,
  name: string,
  close: Close,
  covers: string,
  given?: temporal.api.history.v1.IHistory
) {
  const history = given ?? (await env.client.workflow.getHandle(workflowId, runId).fetchHistory());
  const events = history.events ?? [];
  const workflowType = events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
  if (!workflowType) throw new Error(`${workflowId}: no start event`);
  expect(closeOf(history), `${workflowType}/${name}`).toBe(`EVENT_TYPE_WORKFLOW_EXECUTION_${close}`);
  expect(events.filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);
  const file = `${workflowType}/${name}.json`;
  if (existsSync(path.join(REPLAY_DIR, file))) return history; // committed: kept (see OVERWRITE)
  mkdirSync(path.join(REPLAY_DIR, workflowType), { recursive: true });
  writeFileSync(path.join(REPLAY_DIR, file), historyToJSON(history) + '\n');
  recorded.push({ file, workflowType, workflowId, close, events: events.length, covers });
  return history;
}

/**
 * The runs of a parent's placement child (placementAttempt, resizeAttempt): the first run started by the
 * parent, then each retry (a retried run names the run that replaces it).
 *
 * A retried run (a reschedule) is closed differently by the two servers: a real server records
 * WorkflowExecutionFailed with the failure and the next run's id; the time-skipping server records
 * WorkflowExecutionContinuedAsNew (no failure) and puts the failure in the next run's start event
 * (continuedFailure). The workflow code fails the run, so the test server's form does not replay; the
 * closing event is rewritten into the real server's form, with that failure.
 */
async function childRuns(parentId: string) {
  const parent = await env.client.workflow.getHandle(parentId).fetchHistory();
  const started = (parent.events ?? []).flatMap((e) => {
    const exec = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
    return exec?.workflowId && exec.runId ? [{ workflowId: exec.workflowId, runId: exec.runId }] : [];
  });
  const runs: Array<{ workflowId: string; runId: string; history: temporal.api.history.v1.IHistory }> = [];
  for (const first of started) {
    let runId: string | null | undefined = first.runId;
    while (runId) {
      const history = await env.client.workflow.getHandle(first.workflowId, runId).fetchHistory();
      const previous = runs.at(-1)?.history.events?.at(-1);
      const continued = previous?.workflowExecutionContinuedAsNewEventAttributes;
      if (previous && continued) {
        const failure = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedFailure;
        expect(failure, `${first.workflowId} run ${runs.length + 1}: continuedFailure`).toBeTruthy();
        previous.eventType = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED;
        previous.workflowExecutionContinuedAsNewEventAttributes = null;
        previous.workflowExecutionFailedEventAttributes = {
          failure,
          retryState: temporal.api.enums.v1.RetryState.RETRY_STATE_IN_PROGRESS,
          workflowTaskCompletedEventId: continued.workflowTaskCompletedEventId,
          newExecutionRunId: runId,
        };
      }
      runs.push({ workflowId: first.workflowId, runId, history });
      const last = history.events?.at(-1);
      runId =
        last?.workflowExecutionFailedEventAttributes?.newExecutionRunId ??
        last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
    }
  }
  return runs;
}

/** Saves every run of the parent's placement child as <childType>/<prefix>-run<N>.json. */
async function saveChildRuns(parentId: string, prefix: string, closes: Close[], covers: string[]) {
  const runs = await childRuns(parentId);
  expect(runs.map((r) => closeOf(r.history))).toEqual(closes.map((c) => `EVENT_TYPE_WORKFLOW_EXECUTION_${c}`));
  for (const [i, r] of runs.entries())
    await save(r.workflowId, r.runId, `${prefix}-run${i + 1}`, closes[i]!, covers[i]!, r.history);
}

const setFaults = (host: string, faults: Faults) => cloud.driver(host).setFaults(faults);

describe.sequential('record replay histories', () => {
  it.runIf(OVERWRITE)('clears the previous recording', () => {
    previousRows.clear();
    for (const entry of readdirSync(REPLAY_DIR)) {
      const full = path.join(REPLAY_DIR, entry);
      if (statSync(full).isDirectory() && entry !== 'fixtures') rmSync(full, { recursive: true, force: true });
    }
  });

  it('buildInstance: batched, an alternate found full is skipped', async () => {
    const { az, hosts } = await zone(3, { spawnSeconds: 1 });
    const [first, second] = hosts;
    await setFaults(first, { spawn: { failNext: 1, kind: 'reschedule' } });
    await run(hosts, async () => {
      const handle = await startBuild({ name: 'vm-full-alt', availabilityZone: az });
      await progressReached(handle, (p) => p.taskState === 'spawning', 'the first spawn');
      // Another tenant fills the first alternate once the alternates are chosen (released after).
      const tenant = randomUUID();
      await cloud.placement.claim(tenant, second, { VCPU: 1, MEMORY_MB: 65536 - 8192 - 512, DISK_GB: 1 });
      await handle.result();
      await cloud.placement.releaseConsumer(tenant);
      await save(
        handle.workflowId,
        undefined,
        'batched-alternate-full',
        'COMPLETED',
        'batched: spawn fails on the first host, the first alternate is full (skipped, no destroy), the second builds it'
      );
      await saveChildRuns(
        handle.workflowId,
        'batched-alternate-full',
        ['FAILED', 'FAILED', 'COMPLETED'],
        [
          'run 1: spawn fails, Rescheduled',
          'run 2: the alternate is full: its claim fails, released, no destroy, no failed build counted',
          'run 3: claims the next alternate and spawns there',
        ]
      );
    });
  });

  it('hostGuests: a serving host and one that does not answer', async () => {
    const { az, hosts } = await zone(2);
    const [serving, silent] = hosts;
    await run([serving], async () => {
      const vm = await startBuild({ name: 'vm-guest', availabilityZone: az, host: serving });
      await vm.result();
      const handle = await env.client.workflow.start('hostGuests', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: `host-guests-${randomUUID()}`,
        args: [
          {
            hosts: [serving, silent],
            timeouts: { scheduleToStartSeconds: 2, heartbeatSeconds: 2, longStepSeconds: 60 },
          },
        ],
      });
      await handle.result();
      await save(
        handle.workflowId,
        undefined,
        'serving-and-silent',
        'COMPLETED',
        'one host lists its guest, the other does not answer (null)'
      );
    });
    // The placement audit after this case: the guest's instance is a live consumer.
  });

  it('stop: graceful, forced after the timeout, and cancelled', async () => {
    const quick = await zone(1, { shutdownSeconds: 5, serverClock: true });
    const stubborn = await zone(1, { shutdownSeconds: 5, serverClock: true });
    await setFaults(stubborn.hosts[0], { ignoreShutdown: true });
    const hosts = [...quick.hosts, ...stubborn.hosts];
    await run(hosts, async () => {
      const a = await boot(quick.az);
      const b = await boot(stubborn.az);
      const c = await boot(stubborn.az);

      const graceful = await startStop({ instanceId: a.instanceId });
      await graceful.result();
      await save(
        graceful.workflowId,
        undefined,
        'graceful-acpi',
        'COMPLETED',
        'the guest powers off 5 s after one ACPI request, seen by the read each second'
      );

      const forced = await startStop({ instanceId: b.instanceId, shutdownTimeoutSeconds: 20 });
      await forced.result();
      await save(
        forced.workflowId,
        undefined,
        'forced-after-timeout',
        'COMPLETED',
        'the guest ignores ACPI: requests every 10 s, the state read each second, until the 20 s timeout, then forced off'
      );

      const cancelled = await startStop({ instanceId: c.instanceId });
      await progressReached(cancelled, (p) => p.step.startsWith('graceful shutdown'), 'the graceful shutdown');
      await cancelled.cancel();
      expect((await settle(cancelled.result())).error).toBeDefined();
      await save(
        cancelled.workflowId,
        undefined,
        'cancelled-waiting',
        'CANCELED',
        'cancelled while waiting on the guest: lock released, instance as it was'
      );

      const started = await env.client.workflow.start('start', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.start(a.instanceId, randomUUID().slice(0, 8)),
        args: [{ instanceId: a.instanceId }],
      });
      await started.result();
      await save(started.workflowId, undefined, 'happy', 'COMPLETED', 'starts a stopped instance');
    });
  });

  it('reboot: soft, soft falling back to hard, and hard', async () => {
    const quick = await zone(1, { shutdownSeconds: 5, serverClock: true });
    const stubborn = await zone(1, { shutdownSeconds: 5, serverClock: true });
    await setFaults(stubborn.hosts[0], { ignoreShutdown: true });
    await run([...quick.hosts, ...stubborn.hosts], async () => {
      const a = await boot(quick.az);
      const b = await boot(stubborn.az);
      const soft = await startReboot({ instanceId: a.instanceId, type: 'SOFT' });
      await soft.result();
      await save(
        soft.workflowId,
        undefined,
        'soft',
        'COMPLETED',
        'the guest shuts down on ACPI within 5 s, then started'
      );
      const fallback = await startReboot({ instanceId: b.instanceId, type: 'SOFT', softRebootSeconds: 20 });
      await fallback.result();
      await save(
        fallback.workflowId,
        undefined,
        'soft-fell-back-to-hard',
        'COMPLETED',
        'the guest ignores ACPI for the 20 s soft-reboot timeout: powered off by force, then started'
      );
      const hard = await startReboot({ instanceId: a.instanceId, type: 'HARD' });
      await hard.result();
      await save(hard.workflowId, undefined, 'hard', 'COMPLETED', 'powered off by force, then started');
    });
  });

  it('pause, unpause, suspend, resume; a pause cancelled while the guest paused (rolled back)', async () => {
    const { az, hosts } = await zone(1);
    await run(hosts, async () => {
      const { instanceId } = await boot(az);
      const cases: Array<['pause' | 'unpause' | 'suspend' | 'resume', string]> = [
        ['pause', 'active to paused: the guest frozen in memory'],
        ['unpause', 'paused to active: the guest runs on'],
        ['suspend', "active to suspended: the guest's memory saved on its host"],
        ['resume', 'suspended to active: restored from the saved memory'],
      ];
      for (const [type, covers] of cases) {
        const handle = await startPowerAction(type, instanceId);
        await handle.result();
        await save(handle.workflowId, undefined, 'completed', 'COMPLETED', covers);
      }
      const gate = cloud.holdNext('pauseInstance');
      const cancelled = await startPowerAction('pause', instanceId);
      await gate.reached;
      await cancelled.cancel();
      await cloud.cancelRequestSeen(cancelled.workflowId);
      gate.open();
      expect((await settle(cancelled.result())).error).toBeDefined();
      await save(
        cancelled.workflowId,
        undefined,
        'cancelled-rolled-back',
        'CANCELED',
        'cancelled while the guest paused: unpaused again (the undo), the instance active'
      );
    });
  });

  it('snapshot; shelve (offloaded at once); shelve kept, then shelveOffload', async () => {
    const { az, hosts } = await zone(1);
    await run(hosts, async () => {
      const { instanceId } = await boot(az);
      const start = (type: 'snapshot' | 'shelve' | 'shelveOffload', input: object) =>
        env.client.workflow.start(type, {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds[type](instanceId, randomUUID().slice(0, 8)),
          args: [{ instanceId, ...input }],
        });
      const snap = await start('snapshot', { name: `replay-snap-${instanceId.slice(0, 8)}` });
      await snap.result();
      await save(
        snap.workflowId,
        undefined,
        'completed',
        'COMPLETED',
        'the disk saved as an image, the instance active'
      );
      const kept = await start('shelve', { shelvedOffloadTimeSeconds: -1, shutdownTimeoutSeconds: 0 });
      await kept.result();
      await save(kept.workflowId, undefined, 'kept', 'COMPLETED', 'powered off, image saved: shelved on its host');
      const offload = await start('shelveOffload', {});
      await offload.result();
      await save(offload.workflowId, undefined, 'completed', 'COMPLETED', 'guest destroyed, claim released');
      const other = await boot(az);
      const at = await env.client.workflow.start('shelve', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.shelve(other.instanceId, randomUUID().slice(0, 8)),
        args: [{ instanceId: other.instanceId, shutdownTimeoutSeconds: 0 }],
      });
      await at.result();
      await save(at.workflowId, undefined, 'offloaded-at-once', 'COMPLETED', 'shelved, then offloaded in the same run');
    });
  });

  it('unshelve: shelved (offloaded at once), then unshelved onto the other host', async () => {
    const { az, hosts } = await zone(2);
    await run(hosts, async () => {
      const { instanceId } = await boot(az);
      const start = (type: 'shelve' | 'unshelve', input: object) =>
        env.client.workflow.start(type, {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds[type](instanceId, randomUUID().slice(0, 8)),
          args: [{ instanceId, ...input }],
        });
      await (await start('shelve', { shutdownTimeoutSeconds: 0 })).result();
      const unshelve = await start('unshelve', {});
      await unshelve.result();
      await save(
        unshelve.workflowId,
        undefined,
        'offloaded',
        'COMPLETED',
        'shelved_offloaded: the scheduler, one placement attempt spawning from the shelved image, the image deleted'
      );
      await saveChildRuns(
        unshelve.workflowId,
        'unshelve',
        ['COMPLETED'],
        ['claim, networks, disks, spawn from the shelved image']
      );
    });
  });

  it('rebuild: same host, then evacuate and the source reconciles', async () => {
    const { az, hosts } = await zone(3);
    const [source, dest, other] = hosts;
    const { instanceId } = await run(hosts, () => boot(az));
    await run(hosts, async () => {
      const handle = await startRebuild({ instanceId });
      await handle.result();
      await save(
        handle.workflowId,
        undefined,
        'same-host',
        'COMPLETED',
        'rebuild with the same image on its host: no scheduler'
      );
    });
    cloud.liveness.down.add(source);
    try {
      await run([dest, other], async () => {
        const handle = await startRebuild({ instanceId, evacuate: true });
        await handle.result();
        await save(
          handle.workflowId,
          undefined,
          'evacuate',
          'COMPLETED',
          'evacuate: the source is down, re-created on another host'
        );
      });
    } finally {
      cloud.liveness.down.delete(source);
    }
    await run(hosts, async () => {
      const handle = await env.client.workflow.start('reconcileHost', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: `${workflowIds.reconcileHost(source)}-${randomUUID().slice(0, 8)}`,
        args: [{ host: source }],
      });
      await handle.result();
      await save(
        handle.workflowId,
        undefined,
        'evacuated-source',
        'COMPLETED',
        'the returning source destroys the evacuated guest, releases its allocation (and looks for deleted instances)'
      );
    });
  });

  it('rebuild: evacuate to a requested host through the filters, the group checked there', async () => {
    const { az, hosts } = await zone(3);
    const [, , third] = hosts;
    const { instanceId, host: source } = await run(hosts, async () => {
      const created = await startServerGroup({ action: 'create', name: 'rp-evacuate-spread', policy: 'anti-affinity' });
      await created.result();
      const grouped = await startBuild({
        name: `vm-${++vmCounter}`,
        availabilityZone: az,
        schedulerHints: { group: 'rp-evacuate-spread' },
      });
      return (await grouped.result()) as { instanceId: string; host: string };
    });
    const dest = hosts.find((h) => h !== source && h !== third) ?? third;
    cloud.liveness.down.add(source);
    try {
      await run(
        hosts.filter((h) => h !== source),
        async () => {
          const handle = await startRebuild({ instanceId, evacuate: true, host: dest });
          await handle.result();
          await save(
            handle.workflowId,
            undefined,
            'evacuate-requested-host',
            'COMPLETED',
            "evacuate to a requested host: through the scheduler's filters (not forced), the server group's policy checked again on it"
          );
        }
      );
    } finally {
      cloud.liveness.down.delete(source);
    }
  });

  it('registerHost', async () => {
    await run([], async () => {
      const handle = await env.client.workflow.start('registerHost', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.registerHost('rp-registered'),
        args: [{ name: 'rp-registered', availabilityZone: 'replay-register', vcpus: 8, memoryMb: 16384, diskGb: 200 }],
      });
      await handle.result();
      await save(handle.workflowId, undefined, 'happy', 'COMPLETED', 'a compute host registers its inventory');
    });
  });

  it('setHostService: disable with a reason, force down, and an unknown host refused', async () => {
    const { hosts } = await zone(1);
    const [host] = hosts;
    await run(hosts, async () => {
      const start = (id: string, input: { host: string; [flag: string]: unknown }) =>
        env.client.workflow.start('setHostService', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: workflowIds.setHostService(input.host, id),
          args: [input],
        });
      const disabled = await start('disable', { host, disabled: true, disabledReason: 'maintenance' });
      await disabled.result();
      await save(disabled.workflowId, undefined, 'disabled', 'COMPLETED', 'host disabled with a reason');
      const down = await start('down', { host, forcedDown: true, disabled: false });
      await down.result();
      await save(down.workflowId, undefined, 'forced-down', 'COMPLETED', 'host enabled and forced down in one run');
      const up = await start('up', { host, forcedDown: false });
      await up.result();
      const unknown = await start('unknown', { host: 'rp-no-such-host', disabled: true });
      expect((await settle(unknown.result())).error).toBeDefined();
      await save(
        unknown.workflowId,
        undefined,
        'unknown-host',
        'FAILED',
        'an unknown host: InvalidRequest, nothing set'
      );
    });
  });

  it('resizeMigrate with the one placementAttempt child (patched one-placement-attempt)', async () => {
    const { az, hosts } = await zone(2);
    await run(hosts, async () => {
      const { instanceId } = await boot(az);
      const resize = await startResize({ instanceId, flavor: 'm1.medium', confirmWindowSeconds: 0 });
      await progressReached(resize, (p) => p.vmState === 'resized' && p.taskState === null, 'VERIFY_RESIZE');
      await resize.executeUpdate(confirmResizeUpdate);
      await resize.result();
      await save(
        resize.workflowId,
        undefined,
        'one-placement-attempt',
        'COMPLETED',
        'a resize whose destination prep is a placementAttempt run, confirmed'
      );
    });
  });

  it('resizeMigrate: confirmed, reverted, auto-confirmed, cold migration', async () => {
    const { az, hosts } = await zone(2);
    await run(hosts, async () => {
      const resized = (h: WorkflowHandle) =>
        progressReached(h, (p) => p.vmState === 'resized' && p.taskState === null, 'VERIFY_RESIZE');

      const vm1 = await boot(az);
      const confirmed = await startResize({ instanceId: vm1.instanceId, flavor: 'm1.medium' });
      await resized(confirmed);
      await confirmed.executeUpdate(confirmResizeUpdate);
      await confirmed.result();
      await save(
        confirmed.workflowId,
        undefined,
        'confirmed',
        'COMPLETED',
        'resize to another host, confirmed by the confirmResize Update'
      );
      await saveChildRuns(confirmed.workflowId, 'confirmed', ['COMPLETED'], ['prep on the first destination']);

      const vm2 = await boot(az);
      const reverted = await startResize({ instanceId: vm2.instanceId, flavor: 'm1.medium' });
      await resized(reverted);
      await reverted.executeUpdate(revertResizeUpdate);
      await reverted.result();
      await save(
        reverted.workflowId,
        undefined,
        'reverted',
        'COMPLETED',
        'resize reverted by the revertResize Update: back on the source'
      );

      const vm3 = await boot(az);
      const auto = await startResize({ instanceId: vm3.instanceId, flavor: 'm1.medium' });
      await auto.result();
      await save(
        auto.workflowId,
        undefined,
        'auto-confirmed',
        'COMPLETED',
        'no decision: confirmed by itself after the 24 h window (time skipped)'
      );

      const vm4 = await boot(az);
      const cold = await startResize({ instanceId: vm4.instanceId, confirmWindowSeconds: 0 });
      await resized(cold);
      await cold.executeUpdate(confirmResizeUpdate);
      await cold.result();
      await save(
        cold.workflowId,
        undefined,
        'cold-migrate',
        'COMPLETED',
        'cold migration (no flavor), window 0 (no timer), confirmed by Update'
      );
    });
  });

  it('resizeMigrate: prep rescheduled to the alternate', async () => {
    const { az, hosts } = await zone(3);
    const [, b] = hosts;
    await run(hosts, async () => {
      const vm1 = await boot(az);
      await setFaults(b, { prepResize: { failNext: 1 } });
      const resched = await startResize({
        instanceId: vm1.instanceId,
        flavor: 'm1.medium',
        confirmWindowSeconds: 3600,
      });
      await resched.result();
      await save(
        resched.workflowId,
        undefined,
        'reschedule',
        'COMPLETED',
        'prep fails on the first destination, resized on the alternate, auto-confirmed'
      );
      await saveChildRuns(
        resched.workflowId,
        'reschedule',
        ['FAILED', 'COMPLETED'],
        ['run 1: prep fails on the destination, Rescheduled', 'run 2: claims the alternate, prep succeeds']
      );
    });
  });

  it('resizeMigrate: rolled back on a failure, and cancelled awaiting confirmation', async () => {
    const { az, hosts } = await zone(2);
    const [, b] = hosts;
    await run(hosts, async () => {
      const vm1 = await boot(az);
      await setFaults(b, { finishResize: { failNext: 1 } });
      const failed = await startResize({ instanceId: vm1.instanceId, flavor: 'm1.medium' });
      expect((await settle(failed.result())).error).toBeDefined();
      await save(
        failed.workflowId,
        undefined,
        'rolled-back',
        'FAILED',
        'finish fails on the destination: rolled back to the source, MigrationError'
      );

      const vm2 = await boot(az);
      const cancelled = await startResize({ instanceId: vm2.instanceId, flavor: 'm1.medium', confirmWindowSeconds: 0 });
      await progressReached(cancelled, (p) => p.vmState === 'resized' && p.taskState === null, 'VERIFY_RESIZE');
      await cancelled.cancel();
      expect((await settle(cancelled.result())).error).toBeDefined();
      await save(
        cancelled.workflowId,
        undefined,
        'cancelled-awaiting-confirmation',
        'CANCELED',
        'cancelled in VERIFY_RESIZE: reverted to the source'
      );
    });
  });

  it("resizeMigrate: Nova's failure paths (patched resize-error-like-nova, confirm-checks-source-up, resize-late-group-check)", async () => {
    const { az, hosts } = await zone(3);
    const [, b] = hosts;
    await run(hosts, async () => {
      const vm1 = await boot(az);
      await setFaults(b, { finishResize: { failNext: 1 } });
      const failed = await startResize({ instanceId: vm1.instanceId, flavor: 'm1.medium' });
      expect((await settle(failed.result())).error).toBeDefined();
      await save(
        failed.workflowId,
        undefined,
        'error-on-destination',
        'FAILED',
        'finish fails on the destination: ERROR there, the migration allocation and the moved-aside guest removed'
      );

      const created = await startServerGroup({ action: 'create', name: 'rp-resize-spread', policy: 'anti-affinity' });
      await created.result();
      const grouped = await startBuild({
        name: `vm-${++vmCounter}`,
        availabilityZone: az,
        schedulerHints: { group: 'rp-resize-spread' },
      });
      const vm2 = (await grouped.result()) as { instanceId: string; host: string };
      const resize = await startResize({ instanceId: vm2.instanceId, flavor: 'm1.medium', confirmWindowSeconds: 0 });
      await progressReached(resize, (p) => p.vmState === 'resized' && p.taskState === null, 'VERIFY_RESIZE');
      cloud.liveness.down.add(vm2.host);
      expect((await settle(resize.executeUpdate(confirmResizeUpdate))).error).toBeDefined();
      cloud.liveness.down.delete(vm2.host);
      await resize.executeUpdate(confirmResizeUpdate);
      await resize.result();
      await save(
        resize.workflowId,
        undefined,
        'confirm-refused-source-down',
        'COMPLETED',
        'an instance of a group resized; a confirm refused while the source is down, then confirmed'
      );
      await saveChildRuns(
        resize.workflowId,
        'resize-group-check',
        ['COMPLETED'],
        ["the late server-group check on the destination (Nova's prep_resize), then prep"]
      );
    });
  });

  it('reconcile: a build terminated mid-spawn healed, a resize terminated in VERIFY_RESIZE confirmed; a dry run', async () => {
    const { az, hosts } = await zone(2);
    // Only this case's hosts are up: the hosts of earlier cases run no worker now.
    const others = [...cloud.drivers.keys()].filter((h) => !hosts.includes(h));
    for (const h of others) cloud.liveness.down.add(h);
    try {
      await run(hosts, async () => {
        const vm = await boot(az);
        const resize = await startResize({ instanceId: vm.instanceId, flavor: 'm1.medium', confirmWindowSeconds: 0 });
        await progressReached(resize, (p) => p.vmState === 'resized' && p.taskState === null, 'VERIFY_RESIZE');
        await resize.terminate('operator');
        const build = await startBuild({ name: 'vm-terminated', availabilityZone: az });
        await progressReached(build, (p) => p.taskState === 'spawning', 'the spawn');
        await build.terminate('operator');

        const dry = await env.client.workflow.start('reconcile', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: `reconcile-dry-${randomUUID().slice(0, 8)}`,
          args: [{ dryRun: true }],
        });
        await dry.result();
        await save(
          dry.workflowId,
          undefined,
          'dry-run-planned',
          'COMPLETED',
          'dry run: the decisions planned, nothing changed'
        );

        const healing = await env.client.workflow.start('reconcile', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: `reconcile-${randomUUID().slice(0, 8)}`,
          args: [{}],
        });
        await healing.result();
        await save(
          healing.workflowId,
          undefined,
          'terminated-healed',
          'COMPLETED',
          'the terminated build healed (guest destroyed, claim released, error), the resize confirmed, every live host reconciled, the down ones skipped'
        );
        expect((await cloud.instances.get(vm.instanceId)).vmState).toBe('active');
      });
    } finally {
      for (const h of others) cloud.liveness.down.delete(h);
    }
  });

  it('reconcile: power-state sync: a guest that powered itself off stops its instance', async () => {
    const { az, hosts } = await zone(1);
    const others = [...cloud.drivers.keys()].filter((h) => !hosts.includes(h));
    for (const h of others) cloud.liveness.down.add(h);
    try {
      await run(hosts, async () => {
        const vm = await boot(az);
        await cloud.driver(vm.host).setFaults({ guestPowersOff: [vm.instanceId] });
        const handle = await env.client.workflow.start('reconcile', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId: `reconcile-power-${randomUUID().slice(0, 8)}`,
          args: [{}],
        });
        await handle.result();
        await save(
          handle.workflowId,
          undefined,
          'power-state-synced',
          'COMPLETED',
          'power-state sync: the guest that powered itself off found shutdown, the instance taken, powered off and stopped'
        );
        expect((await cloud.instances.get(vm.instanceId)).vmState).toBe('stopped');
      });
    } finally {
      for (const h of others) cloud.liveness.down.delete(h);
    }
  });

  it('resetState: a stale task state cleared; refused while the operation runs', async () => {
    const { az, hosts } = await zone(1, { spawnSeconds: 5 });
    await run(hosts, async () => {
      const vm = await boot(az);
      await cloud.instances.update(vm.instanceId, { taskState: 'powering-off', taskOwner: 'stop-gone' });
      const reset = await env.client.workflow.start('resetState', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: `reset-state-${vm.instanceId}-${randomUUID().slice(0, 8)}`,
        args: [{ instanceId: vm.instanceId, state: 'active' }],
      });
      await reset.result();
      await save(
        reset.workflowId,
        undefined,
        'stale-task-state',
        'COMPLETED',
        'a task state whose workflow is gone: reset to active'
      );

      const build = await startBuild({ name: 'vm-busy', availabilityZone: az });
      await progressReached(build, (p) => p.taskState === 'spawning', 'the spawn');
      const building = (await build.query(getProgressQuery)).instanceId;
      const refused = await env.client.workflow.start('resetState', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: `reset-state-${building}-${randomUUID().slice(0, 8)}`,
        args: [{ instanceId: building, state: 'error' }],
      });
      expect((await settle(refused.result())).error).toBeDefined();
      await save(
        refused.workflowId,
        undefined,
        'refused-while-running',
        'FAILED',
        'refused: the build holding the instance runs'
      );
      await build.result();
    });
  });
});

describe('delete and idempotent create', () => {
  const startDelete = (instanceId: string) =>
    env.client.workflow.start('deleteInstance', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: workflowIds.deleteInstance(instanceId, randomUUID().slice(0, 8)),
      args: [{ instanceId }],
    });

  it('deleteInstance: a resize awaiting confirmation is confirmed first', async () => {
    const { az, hosts } = await zone(2);
    await run(hosts, async () => {
      const vm = await boot(az);
      const resize = await startResize({ instanceId: vm.instanceId, flavor: 'm1.medium', confirmWindowSeconds: 0 });
      await progressReached(resize, (p) => p.vmState === 'resized' && p.taskState === null, 'VERIFY_RESIZE');
      const deleted = await startDelete(vm.instanceId);
      await deleted.result();
      await resize.result();
      await save(
        deleted.workflowId,
        undefined,
        'resize-confirmed-first',
        'COMPLETED',
        'a resize awaiting confirmation: signalled confirmBeforeDelete, it confirmed and let go, then the delete'
      );
      await save(
        resize.workflowId,
        undefined,
        'confirmed-before-delete',
        'COMPLETED',
        'in VERIFY_RESIZE a delete signals confirmBeforeDelete: confirmed, then the workflow ends'
      );
    });
  });

  it('deleteInstance: active, already deleted, during a build, host down; reconcileHost destroys the guest', async () => {
    const { az, hosts } = await zone(1);
    const [host] = hosts;
    await run(hosts, async () => {
      const vm = await boot(az);
      const deleted = await startDelete(vm.instanceId);
      await deleted.result();
      await save(
        deleted.workflowId,
        undefined,
        'active',
        'COMPLETED',
        'an active instance: guest destroyed, allocations removed'
      );
      const again = await startDelete(vm.instanceId);
      await again.result();
      await save(again.workflowId, undefined, 'already-deleted', 'COMPLETED', 'a deleted instance: nothing to do');

      const gate = cloud.holdNext('spawnInstance');
      const build = await startBuild({ name: 'deleted-while-building', availabilityZone: az });
      await gate.reached;
      const building = (await build.query(getProgressQuery)).instanceId;
      const during = await startDelete(building);
      await vi.waitFor(
        async () =>
          expect(
            (await build.fetchHistory()).events?.some((e) => e.workflowExecutionCancelRequestedEventAttributes)
          ).toBe(true),
        { timeout: 20_000 }
      );
      gate.open();
      await gate.done;
      await during.result();
      expect((await settle(build.result())).error).toBeDefined();
      await save(
        during.workflowId,
        undefined,
        'during-build',
        'COMPLETED',
        'cancels the build mid-spawn, waits for its rollback, deletes'
      );
    });

    const vm = await run(hosts, () => boot(az));
    cloud.liveness.down.add(host);
    try {
      await run([], async () => {
        const local = await startDelete(vm.instanceId);
        await local.result();
        await save(
          local.workflowId,
          undefined,
          'host-down',
          'COMPLETED',
          'the host is down: a local delete, the guest left to the host'
        );
      });
    } finally {
      cloud.liveness.down.delete(host);
    }
    await run(hosts, async () => {
      const handle = await env.client.workflow.start('reconcileHost', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: `${workflowIds.reconcileHost(host)}-${randomUUID().slice(0, 8)}`,
        args: [{ host }],
      });
      await handle.result();
      await save(
        handle.workflowId,
        undefined,
        'deleted-while-down',
        'COMPLETED',
        'the returning host destroys the guest of an instance deleted while it was down'
      );
    });
  });

  it('buildInstance: multi-create (count, minCount/maxCount), the late group check, and serverGroup', async () => {
    const group = startServerGroup;
    const startMulti = (input: Omit<BuildInstanceInput, 'flavor' | 'image'>) =>
      env.client.workflow.start('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.buildInstance(randomUUID()),
        args: [{ flavor: 'm1.small', image: 'cirros', ...input }],
      });
    const { az, hosts } = await zone(3);
    // Room for one m1.small per host.
    const small = await zone(2, { memoryMb: 3072 });
    await run([...hosts, ...small.hosts], async () => {
      const created = await group({ action: 'create', name: 'rp-spread', policy: 'anti-affinity' });
      await created.result();
      await save(created.workflowId, undefined, 'create', 'COMPLETED', 'a server group created');

      // web-1 on a (alternates b, c), web-2 on b; a fails web-1's spawn, b is web-2's: the late check
      // reschedules web-1 to c.
      await setFaults(hosts[0], { spawn: { failNext: 1, kind: 'reschedule' } });
      const multi = await startMulti({
        name: 'rp-web',
        availabilityZone: az,
        count: 2,
        schedulerHints: { group: 'rp-spread' },
      });
      await multi.result();
      await save(
        multi.workflowId,
        undefined,
        'multi-create',
        'COMPLETED',
        'count 2 in an anti-affinity group: one scheduler call, a child buildInstance per instance'
      );
      const member = workflowIds.batchMember(multi.workflowId, 1);
      await save(
        member,
        undefined,
        'batched-multi-create-member',
        'COMPLETED',
        'a multi-create child: the hosts its parent chose, no scheduler call'
      );
      await saveChildRuns(
        member,
        'batched-late-group-check',
        ['FAILED', 'FAILED', 'COMPLETED'],
        [
          'run 1: the group check passes, spawn fails, fails Rescheduled',
          'run 2: the alternate is claimed, the late group check finds a member there: Rescheduled',
          'run 3: the next alternate passes the check and spawns',
        ]
      );

      const full = await startMulti({
        name: 'rp-crowd',
        availabilityZone: az,
        count: 4,
        schedulerHints: { group: 'rp-spread' },
      });
      await settle(full.result());
      await save(
        full.workflowId,
        undefined,
        'multi-create-no-valid-host',
        'FAILED',
        'count 4 in an anti-affinity group whose members hold 2 of 3 hosts: NoValidHost, every instance error, nothing claimed'
      );

      const partial = await startMulti({ name: 'rp-db', availabilityZone: small.az, minCount: 1, maxCount: 3 });
      await partial.result();
      await save(
        partial.workflowId,
        undefined,
        'multi-create-partial',
        'COMPLETED',
        'minCount 1, maxCount 3 with room for 2: two built, the third never claimed for and deleted'
      );

      const shown = await group({ action: 'show', name: 'rp-spread' });
      await shown.result();
      await save(shown.workflowId, undefined, 'show', 'COMPLETED', 'a server group with its members and hosts');
      const listed = await group({ action: 'list' });
      await listed.result();
      await save(listed.workflowId, undefined, 'list', 'COMPLETED', 'every server group');
      const inUse = await group({ action: 'delete', name: 'rp-spread' });
      await settle(inUse.result());
      await save(
        inUse.workflowId,
        undefined,
        'delete-in-use',
        'FAILED',
        'a group with members is not deleted: ServerGroupInUse'
      );
      const empty = await group({ action: 'create', name: 'rp-empty', policy: 'affinity' });
      await empty.result();
      const deleted = await group({ action: 'delete', name: 'rp-empty' });
      await deleted.result();
      await save(deleted.workflowId, undefined, 'delete', 'COMPLETED', 'a group with no member deleted');
    });
  });

  it('buildInstance: batched, re-submitted under the same workflow id', async () => {
    const { az, hosts } = await zone(1);
    await run(hosts, async () => {
      const workflowId = `build-again-${randomUUID().slice(0, 8)}`;
      const submit = () =>
        env.client.workflow.start('buildInstance', {
          taskQueue: CONDUCTOR_TASK_QUEUE,
          workflowId,
          args: [{ name: 'again', flavor: 'm1.small', image: 'cirros', availabilityZone: az }],
        });
      await (await submit()).result();
      const second = await submit();
      await second.result();
      await save(
        workflowId,
        second.firstExecutionRunId,
        'batched-duplicate',
        'COMPLETED',
        'a second run of the same workflow id returns the instance the first made'
      );
    });
  });
});

describe('live migration', () => {
  it('liveMigrate: switched over, and aborted by the completion timeout', async () => {
    const { az, hosts } = await zone(2);
    const [source] = hosts;
    await run(hosts, async () => {
      const vm = await boot(az);
      const done = await startLive({ instanceId: vm.instanceId });
      await done.result();
      await save(
        done.workflowId,
        undefined,
        'switched-over',
        'COMPLETED',
        'copied in rounds, switched over; the source cleaned beside the destination step, one local write at the end'
      );
      const other = await boot(az);
      await setFaults(source, { liveMigration: { bandwidthMbPerSecond: 4096, dirtyMbPerSecond: 8192 } });
      const aborted = await startLive({ instanceId: other.instanceId, completionTimeoutSecondsPerGb: 1 });
      expect((await settle(aborted.result())).error).toBeDefined();
      await save(
        aborted.workflowId,
        undefined,
        'completion-timeout',
        'FAILED',
        'never converges: aborted by the completion timeout, rolled back to the source'
      );
    });
  });

  it('liveMigrate: the destination post step fails', async () => {
    const { az, hosts } = await zone(2);
    const [, dest] = hosts;
    await run(hosts, async () => {
      const vm = await boot(az);
      await setFaults(dest, { liveMigration: { postFailNext: 1 } });
      const handle = await startLive({ instanceId: vm.instanceId });
      expect((await settle(handle.result())).error).toBeDefined();
      await save(
        handle.workflowId,
        undefined,
        'failed-after-switch',
        'FAILED',
        'post_live_migration_at_destination fails: the source guest removed, the instance error on the destination'
      );
    });
  });

  for (const [name, covers] of [
    [
      'force-completed-mid-copy',
      'force-completed mid-copy: the step recorded (its notifications), the guest paused, switched over',
    ],
    [
      'aborted-mid-copy',
      'aborted by the operator mid-copy: the step recorded, the cancel answered by the source, rolled back',
    ],
  ] as const)
    it(`liveMigrate: ${name}`, async () => {
      const { az, hosts } = await zone(2);
      const [source] = hosts;
      await run(hosts, async () => {
        const vm = await boot(az);
        await setFaults(source, { liveMigration: { bandwidthMbPerSecond: 1024, dirtyMbPerSecond: 2048 } });
        const handle = await startLive({ instanceId: vm.instanceId });
        await liveCopyRunning(handle);
        const forcing = name === 'force-completed-mid-copy';
        if (forcing) {
          expect(await handle.executeUpdate(forceCompleteUpdate)).toEqual({ forced: true });
          expect((await settle(handle.result())).error).toBeUndefined();
        } else {
          expect(await handle.executeUpdate(abortLiveMigrationUpdate)).toEqual({ aborted: true });
          expect((await settle(handle.result())).error).toBeDefined();
        }
        await save(handle.workflowId, undefined, name, forcing ? 'COMPLETED' : 'FAILED', covers);
      });
    });
});

afterAll(() => {
  if (recorded.length === 0) return;
  const rowsByFile = new Map(previousRows);
  for (const e of recorded)
    rowsByFile.set(
      e.file,
      `| \`${e.file}\` | \`${e.workflowType}\` | ${e.close.toLowerCase()} | ${e.events} | ${e.covers} |`
    );
  const rows = [...rowsByFile.entries()].sort(([x], [y]) => x.localeCompare(y)).map(([, row]) => row);
  const readme = [
    '# Replay histories',
    '',
    'Histories of every workflow type, recorded from the workflow code by `npm run replay:record`',
    '(`test/replay/record.ts`: the time-skipping server, the real conductor, scheduler and compute',
    'activities, faults injected into the fake hypervisor) and replayed against the current bundle by',
    '`test/workflows/replay.test.ts` in `npm test`. Each file is one run, as proto JSON (the format of',
    '`temporal workflow show --output json`; `test/helpers/history-json.ts`). Each run was checked to end',
    'in the closed state below with no failed workflow task. A retried child run (a reschedule) is closed',
    "as a real server records it (WorkflowExecutionFailed with the next run's id): the test server",
    'records it as continued-as-new instead (see `childRuns` in record.ts).',
    '',
    'A failing replay means the change would break workflows that are running: version it (README,',
    'Versioning) rather than re-record. `npm run replay:record` adds the cases that have no history yet',
    'and keeps the committed ones (add a case to record.ts for a new path); `-- --overwrite` re-records',
    'all. Generated; do not edit by hand.',
    '',
    '| file | workflow type | closed | events | path it covers |',
    '| ---- | ------------- | ------ | ------ | -------------- |',
    ...rows,
    '',
  ].join('\n');
  writeFileSync(INDEX, readme);
});

describe.sequential('build (the batched build, the patch batched-build removed)', () => {
  it('buildInstance: happy path, a reschedule, NoValidHost, MaxRetriesExceeded, cancelled', async () => {
    const { az, hosts } = await zone(2);
    const resched = await zone(3);
    const doomed = await zone(2);
    const tooSmall = await zone(1, { memoryMb: 8192 });
    const cancelled = await zone(1, { spawnSeconds: 30 });
    await run([...hosts, ...resched.hosts, ...doomed.hosts, ...tooSmall.hosts, ...cancelled.hosts], async () => {
      const happy = await startBuild({ name: 'vm-batched', availabilityZone: az });
      await happy.result();
      await save(happy.workflowId, undefined, 'plain', 'COMPLETED', 'record, child, one last write');
      await saveChildRuns(happy.workflowId, 'plain', ['COMPLETED'], ['selection, networks, disks, spawn']);

      await setFaults(resched.hosts[0], { spawn: { failNext: 1, kind: 'reschedule' } });
      const rescheduled = await startBuild({ name: 'vm-batched-resched', availabilityZone: resched.az });
      await rescheduled.result();
      await save(rescheduled.workflowId, undefined, 'rescheduled-once', 'COMPLETED', 'rescheduled once');
      await saveChildRuns(
        rescheduled.workflowId,
        'rescheduled-once',
        ['FAILED', 'COMPLETED'],
        [
          'run 1: selects, spawn fails, hands the selection on in its failure',
          'run 2: takes the selection, claims the alternate, spawns',
        ]
      );

      const novalid = await startBuild({ name: 'vm-batched-big', flavor: 'm1.xlarge', availabilityZone: tooSmall.az });
      expect((await settle(novalid.result())).error).toBeDefined();
      await save(novalid.workflowId, undefined, 'no-valid-host-final', 'FAILED', 'NoValidHost');
      await saveChildRuns(
        novalid.workflowId,
        'no-valid-host-final',
        ['FAILED'],
        ['the selection fails NoValidHost (final)']
      );

      for (const host of doomed.hosts) await setFaults(host, { spawn: { failNext: 5, kind: 'reschedule' } });
      const exceeded = await startBuild({ name: 'vm-batched-doomed', availabilityZone: doomed.az, maxAttempts: 2 });
      expect((await settle(exceeded.result())).error).toBeDefined();
      await save(exceeded.workflowId, undefined, 'max-retries-exceeded', 'FAILED', 'MaxRetriesExceeded');
      await saveChildRuns(
        exceeded.workflowId,
        'max-retries-exceeded',
        ['FAILED', 'FAILED'],
        ['run 1 of 2: spawn fails', 'run 2 of 2: spawn fails on the last host (final)']
      );

      const cancel = await startBuild({
        name: 'vm-batched-cancel',
        availabilityZone: cancelled.az,
        timeouts: { scheduleToStartSeconds: 10, heartbeatSeconds: 2, longStepSeconds: 120 },
      });
      const instanceId = cancel.workflowId.replace(/^build-/, '');
      await progressReached(cancel, (p) => p.taskState === 'spawning', 'spawning');
      await vi.waitFor(async () => expect(await cloud.driver(cancelled.hosts[0]).getGuest(instanceId)).toBeDefined(), {
        timeout: 10_000,
        interval: 50,
      });
      await cancel.cancel();
      expect((await settle(cancel.result())).error).toBeDefined();
      expect(await cloud.driver(cancelled.hosts[0]).listGuests()).toEqual([]);
      await save(cancel.workflowId, undefined, 'cancelled-spawning', 'CANCELED', 'cancelled while spawning');
      await saveChildRuns(cancel.workflowId, 'cancelled-spawning', ['CANCELED'], ['cancelled during spawn']);
    });
  });
});

describe.sequential('selection outlives a cancel (the patch selection-outlives-cancel removed)', () => {
  it('buildInstance: cancelled while the scheduler selects', async () => {
    const { az, hosts } = await zone(2);
    await run(hosts, async () => {
      const gate = cloud.holdNext('selectDestinations');
      const cancel = await startBuild({ name: 'vm-selection-cancel', availabilityZone: az });
      await gate.reached;
      await cancel.cancel();
      const instanceId = cancel.workflowId.replace(/^build-/, '');
      await cloud.cancelRequestSeen(workflowIds.placementAttempt(instanceId, 'build'));
      gate.open();
      expect((await settle(cancel.result())).error).toBeDefined();
      expect(await cloud.placement.getAllocations(instanceId)).toEqual([]);
      await save(
        cancel.workflowId,
        undefined,
        'cancelled-selecting',
        'CANCELED',
        'cancelled while selecting: the answer awaited, its claim released'
      );
      await saveChildRuns(
        cancel.workflowId,
        'cancelled-selecting',
        ['CANCELED'],
        ['cancelled while selecting: the claim made, then released']
      );
    });
  });
});

describe.sequential('consoleOutput (the console command)', () => {
  it("consoleOutput: the last lines of a guest's console, read from its host", async () => {
    const { az, hosts } = await zone(1);
    await run(hosts, async () => {
      const vm = await startBuild({ name: 'vm-console', availabilityZone: az });
      await vm.result();
      const instanceId = vm.workflowId.replace(/^build-/, '');
      const handle = await env.client.workflow.start<typeof consoleOutput>('consoleOutput', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId: workflowIds.consoleOutput(instanceId, randomUUID().slice(0, 8)),
        args: [{ instanceId, lines: 5 }],
      });
      expect((await handle.result()).output).toMatch(/GUEST-BOOT boot=1 image=cirros\n/);
      await save(handle.workflowId, undefined, 'happy', 'COMPLETED', "the host returns the guest's console");
    });
  });
});
