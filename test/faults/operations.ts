import { appendFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
/**
 * The fault suite's operation table: every operation held at its riskiest step (the fake's slow-step
 * switches, a slow live copy, a spawn's own seconds) while one process is killed with SIGKILL and then
 * started again, as a supervisor would. One row is one scenario; `runScenario` runs any row on a shared
 * stack (each row works on its own instance, pinned to the source host, so rows do not interfere), and
 * `TABLE` is the rows, in three parts: each `every-operation-<part>.test.ts` runs one on its own stack,
 * so two parts run side by side (vitest.faults.config.mts). docs/faults.md lists it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { OperationProgress } from '../../src/shared/messages';
import { openStore } from '../../src/store/db';
import { createInstanceRepository } from '../../src/store/instances';
import { createPlacementRepository } from '../../src/store/placement';
import {
  assertConsistent,
  FAST_TIMEOUTS,
  fleet,
  type Outcome,
  reportScenario,
  Stack,
  type Started,
  startOperation,
  until,
} from './harness';
import { activityStarted } from '../helpers/temporal';

/** The three hosts of the table's stack: every row builds on SOURCE and moves to DEST. */
export const SOURCE = 'op-1';
export const DEST = 'op-2';

export type Victim = 'conductor' | 'scheduler' | 'source' | 'destination';

/** What a row's operation has started, and where. */
interface Running {
  started: Started;
  instanceId: string;
  /** Once the victim is back, before the outcome is awaited (the confirm of a resize awaiting one). */
  finish?: () => Promise<void>;
}

interface Operation {
  /** The step the kill strikes at, as the table prints it. */
  step: string;
  /** The slow-step faults the row injects (per host), cleared after the operation. */
  faults?: Record<string, object>;
  /** Starts the operation on a fresh instance (built on SOURCE by the runner unless `noInstance`). */
  start(stack: Stack, instanceId: string): Promise<Running>;
  /** Resolves once the operation is at its step. */
  atStep(stack: Stack, running: Running): Promise<void>;
  noInstance?: boolean;
  /**
   * Why the reconciler's run (the Schedule's, one period later) is part of this row's way to stable: the
   * runner starts one reconcile after the outcome, before the checks.
   */
  reconciled?: string;
  /** The source host stays down throughout (evacuate); started again at the end. */
  sourceDown?: boolean;
}

let seq = 0;
const id = (what: string, instanceId: string) => `${what}-${instanceId}-${++seq}`;

async function progress(stack: Stack, workflowId: string): Promise<OperationProgress | undefined> {
  return stack.client.workflow
    .getHandle(workflowId)
    .query<OperationProgress>('getProgress')
    .catch(() => undefined);
}

/** Polls the operation's progress until `pred` holds (the step's label or its states). */
function progressUntil(what: string, pred: (p: OperationProgress) => boolean) {
  return (stack: Stack, { started }: Running) =>
    until(what, 60_000, async () => {
      const p = await progress(stack, started.workflowId);
      return p && pred(p) ? true : undefined;
    }).then(() => undefined);
}

const resize = (flavor: string | undefined, confirmWindowSeconds: number) => (stack: Stack, instanceId: string) =>
  startOperation(stack, 'resizeMigrate', id('resize', instanceId), {
    instanceId,
    ...(flavor ? { flavor } : {}),
    host: DEST,
    confirmWindowSeconds,
    timeouts: FAST_TIMEOUTS,
  }).then((started) => ({ started, instanceId }));

const liveMigrate = (stack: Stack, instanceId: string) =>
  startOperation(stack, 'liveMigrate', id('live', instanceId), {
    instanceId,
    host: DEST,
    timeouts: FAST_TIMEOUTS,
  }).then((started) => ({ started, instanceId }));

/** The operations, by the name the table uses. */
export const OPERATIONS: Record<string, Operation> = {
  'resize mid-disk-transfer': {
    step: 'resize instance (disk copy) on the source',
    start: resize('m1.medium', 1),
    atStep: progressUntil('the disk transfer', (p) => p.taskState === 'resize_migrating'),
  },
  'resize in VERIFY_RESIZE': {
    step: 'resized, awaiting confirmResize',
    async start(stack, instanceId) {
      const running = await resize('m1.medium', 0)(stack, instanceId);
      const handle = stack.client.workflow.getHandle(running.started.workflowId);
      return { ...running, finish: () => handle.executeUpdate('confirmResize').then(() => undefined) };
    },
    atStep: progressUntil('VERIFY_RESIZE', (p) => p.vmState === 'resized' && p.taskState === null),
  },
  'cold migration': {
    step: 'resize instance (disk copy) on the source',
    start: resize(undefined, 1),
    atStep: progressUntil('the disk transfer', (p) => p.taskState === 'resize_migrating'),
  },
  'live migration mid-copy': {
    step: 'memory copy (256 MB/s from the source)',
    faults: { [SOURCE]: { liveMigration: { bandwidthMbPerSecond: 256 } } },
    start: liveMigrate,
    atStep: progressUntil('the memory copy', (p) => p.step.startsWith('copying the memory')),
  },
  'live migration after switch-over': {
    step: 'post_live_migration_at_destination (held 4 s)',
    faults: { [DEST]: { slow: { postLiveMigrationAtDestination: 4 } } },
    start: liveMigrate,
    atStep: progressUntil('the switch-over', (p) => p.step.startsWith(`starting the guest on ${DEST}`)),
  },
  'live migration source clean-up': {
    step: 'post_live_migration on the source (held 4 s): the task dies with its worker',
    faults: { [SOURCE]: { slow: { postLiveMigration: 4 } } },
    start: liveMigrate,
    // The source's worker holds the clean-up when it is killed: its heartbeat stops, and the step's one
    // more try goes to the restarted worker (before that try existed the guest stayed there, paused).
    atStep: (stack, { started }) =>
      until('the source clean-up running', 60_000, async () =>
        (await activityStarted(stack.client.workflow.getHandle(started.workflowId), 'postLiveMigration'))
          ? true
          : undefined
      ).then(() => undefined),
  },
  'rebuild mid-spawn': {
    step: 'rebuild spawning',
    start: (stack, instanceId) =>
      startOperation(stack, 'rebuild', id('rebuild', instanceId), { instanceId, timeouts: FAST_TIMEOUTS }).then(
        (started) => ({ started, instanceId })
      ),
    atStep: progressUntil('the rebuild spawn', (p) => p.taskState === 'rebuild_spawning'),
  },
  'evacuate mid-spawn': {
    step: 'rebuild spawning on the destination (source down)',
    sourceDown: true,
    start: (stack, instanceId) =>
      startOperation(stack, 'rebuild', id('evacuate', instanceId), {
        instanceId,
        evacuate: true,
        host: DEST,
        timeouts: FAST_TIMEOUTS,
      }).then((started) => ({ started, instanceId })),
    atStep: progressUntil('the evacuation spawn', (p) => p.taskState === 'rebuild_spawning'),
  },
  'snapshot mid-copy': {
    step: 'the disk copy (held 4 s)',
    faults: { [SOURCE]: { slow: { snapshot: 4 } } },
    start: (stack, instanceId) =>
      startOperation(stack, 'snapshot', id('snapshot', instanceId), {
        instanceId,
        name: `op-snap-${++seq}`,
        timeouts: FAST_TIMEOUTS,
      }).then((started) => ({ started, instanceId })),
    atStep: progressUntil('the disk copy', (p) => p.taskState === 'image_uploading'),
  },
  'unshelve mid-spawn': {
    step: 'spawning from the shelved image on the destination',
    async start(stack, instanceId) {
      // Shelved and offloaded at once: no guest, no claim, only the shelved image.
      const shelve = await startOperation(stack, 'shelve', id('shelve', instanceId), {
        instanceId,
        shutdownTimeoutSeconds: 0,
        timeouts: FAST_TIMEOUTS,
      });
      expect((await shelve.done).result, stack.logs()).toBe('ok');
      const started = await startOperation(stack, 'unshelve', id('unshelve', instanceId), {
        instanceId,
        host: DEST,
        timeouts: FAST_TIMEOUTS,
      });
      return { started, instanceId };
    },
    atStep: progressUntil('the unshelve spawn', (p) => p.taskState === 'spawning'),
  },
  'delete mid-destroy': {
    step: 'destroy (held 4 s)',
    faults: { [SOURCE]: { slow: { destroy: 4 } } },
    reconciled:
      "a destroy lost with its killed worker is not retried (a short step): the delete ends ok and the guest left on the host is the reconciler's, as in Nova (_cleanup_running_deleted_instances)",
    start: (stack, instanceId) =>
      startOperation(stack, 'deleteInstance', id('delete', instanceId), {
        instanceId,
        timeouts: FAST_TIMEOUTS,
      }).then((started) => ({ started, instanceId })),
    atStep: progressUntil('the destroy', (p) => p.step.startsWith(`destroying the guest on ${SOURCE}`)),
  },
  'multi-create mid-batch': {
    step: 'spawning (3 instances)',
    noInstance: true,
    async start(stack) {
      const name = `op-batch-${++seq}`;
      const started = await startOperation(stack, 'buildInstance', `build-${name}`, {
        name,
        flavor: 'm1.small',
        image: 'cirros',
        count: 3,
        host: SOURCE,
        timeouts: FAST_TIMEOUTS,
      });
      return { started, instanceId: name };
    },
    atStep: (stack, { started }) =>
      until('a batch member spawning', 60_000, async () => {
        for await (const w of stack.client.workflow.list({ query: 'ExecutionStatus = "Running"' })) {
          if (w.workflowId === started.workflowId) continue;
          const p = await progress(stack, w.workflowId);
          if (p?.taskState === 'spawning') return true;
        }
        return undefined;
      }).then(() => undefined),
  },
  'reconcile mid-batch': {
    step: 'batch of one, a terminated build to heal',
    noInstance: true,
    async start(stack) {
      // Something to heal: a build terminated mid-spawn (its task state, claim and guest left behind).
      const name = `op-orphan-${++seq}`;
      const build = await startOperation(stack, 'buildInstance', `build-${name}`, {
        name,
        flavor: 'm1.small',
        image: 'cirros',
        host: SOURCE,
        timeouts: FAST_TIMEOUTS,
      });
      await progressUntil('the orphan spawning', (p) => p.taskState === 'spawning')(stack, {
        started: build,
        instanceId: name,
      });
      await stack.client.workflow.getHandle(build.workflowId).terminate('fault suite: an orphan to reconcile');
      await build.done;
      const started = await startOperation(stack, 'reconcile', `reconcile-faults-${++seq}`, {
        batchSize: 1,
        timeouts: FAST_TIMEOUTS,
      });
      return { started, instanceId: name };
    },
    atStep: async (stack, { started }) => {
      await until('the reconcile running', 30_000, async () =>
        (await stack.client.workflow.getHandle(started.workflowId).describe()).status.name === 'RUNNING'
          ? true
          : undefined
      );
      await delay(300);
    },
  },
};

/** One scenario: an operation, the process killed at its step. */
export interface Row {
  op: keyof typeof OPERATIONS;
  kill: Victim;
}

function victimProc(victim: Victim) {
  if (victim === 'source') return { role: 'compute' as const, host: SOURCE };
  if (victim === 'destination') return { role: 'compute' as const, host: DEST };
  return { role: victim, host: undefined };
}

/** Builds one instance pinned to SOURCE; its id. */
async function buildOnSource(stack: Stack): Promise<string> {
  const name = `op-vm-${++seq}`;
  const build = await startOperation(stack, 'buildInstance', `build-${name}`, {
    name,
    flavor: 'm1.small',
    image: 'cirros',
    host: SOURCE,
    timeouts: FAST_TIMEOUTS,
  });
  const built = await build.done;
  expect(built.result, stack.logs()).toBe('ok');
  return built.instanceId!;
}

/**
 * Runs one row: an instance built on SOURCE, the row's faults written, the operation started and held at
 * its step, the victim killed with SIGKILL and started again a second later, the outcome awaited (and the
 * row's finish, e.g. a confirm), then every workflow terminal and the checker and the live audit clean.
 * The outcome must be `ok` or a typed failure (never a timeout or a termination). Prints the row's line.
 */
export async function runScenario(stack: Stack, row: Row): Promise<Outcome> {
  const op = OPERATIONS[row.op]!;
  // FAULT_TRACE=<file>: each row's progress appended there as it happens (vitest prints at the end).
  const trace = (m: string) =>
    process.env.FAULT_TRACE &&
    appendFileSync(process.env.FAULT_TRACE, `${new Date().toISOString()} ${row.op} ${row.kill}: ${m}\n`);
  trace('start');
  const instanceId = op.noInstance ? '' : await buildOnSource(stack);
  for (const [host, faults] of Object.entries(op.faults ?? {})) stack.writeFaults(host, faults);
  const store = await openStore(stack.storeOptions());
  try {
    if (op.sourceDown) {
      await stack.worker('compute', SOURCE).signal('SIGKILL');
      await createPlacementRepository(store, { cacheHostStates: false }).setForcedDown(SOURCE, true);
    }
    const running = await op.start(stack, instanceId);
    trace('started');
    await op.atStep(stack, running);
    trace('at step');
    const { role, host } = victimProc(row.kill);
    const killedAt = Date.now();
    await stack.worker(role, host).signal('SIGKILL');
    await delay(1_000);
    await stack.startWorker(role, host);
    trace('restarted');
    await running.finish?.();
    const outcome = await running.started.done;
    trace(`outcome ${outcome.result}`);
    for (const h of Object.keys(op.faults ?? {})) stack.writeFaults(h, {});
    if (op.reconciled) {
      const reconcile = await startOperation(stack, 'reconcile', `reconcile-faults-${++seq}`, {
        timeouts: FAST_TIMEOUTS,
      });
      expect((await reconcile.done).result, stack.logs()).toBe('ok');
    }
    if (op.sourceDown) {
      // The host comes back: its start-up reconciliation removes the evacuated guest.
      await createPlacementRepository(store, { cacheHostStates: false }).setForcedDown(SOURCE, false);
      await stack.startWorker('compute', SOURCE);
      await until('the evacuated guest gone from the source', 60_000, () =>
        Promise.resolve(stack.guests(SOURCE).includes(instanceId) ? undefined : true)
      );
    }
    trace('checking');
    await assertConsistent(stack, [], { boundMs: 90_000 });
    trace('checked');
    const seconds = (Date.now() - killedAt) / 1000;
    const line = reportScenario({
      operation: row.op,
      fault: `kill -9 ${row.kill} at ${op.step}`,
      outcome: `${outcome.result}${op.reconciled ? ' (+ one reconcile run)' : ''}`,
      seconds,
    });
    expect(outcome.result === 'ok' || /^[A-Z][A-Za-z]+$/.test(outcome.result), `${line}\n${stack.logs()}`).toBe(true);
    expect(['Terminated', 'TimeoutFailure', 'Error']).not.toContain(outcome.result);
    if (!op.noInstance) {
      const instances = createInstanceRepository(store);
      const after = await instances.get(instanceId);
      // A deleted or shelved-offloaded instance has no guest anywhere; any other exactly one.
      const live = after.vmState !== 'deleted' && after.vmState !== 'shelved_offloaded';
      const guests = [SOURCE, DEST, 'op-3'].flatMap((h) => stack.guests(h).filter((g) => g.startsWith(instanceId)));
      expect(guests, `guests of ${instanceId}`).toHaveLength(live ? 1 : 0);
    }
    return outcome;
  } finally {
    await store.close();
  }
}

/**
 * The scenario table: an operation at its riskiest step, and the process killed there (then restarted).
 * Three parts of about two minutes each, one file each (`every-operation-<part>.test.ts`), so that no
 * one file dominates the suite's two workers (the whole table on one stack took 386 s).
 */
export const TABLE = {
  resize: [
    { op: 'resize mid-disk-transfer', kill: 'source' },
    { op: 'resize mid-disk-transfer', kill: 'conductor' },
    { op: 'resize in VERIFY_RESIZE', kill: 'destination' },
    { op: 'resize in VERIFY_RESIZE', kill: 'source' },
    { op: 'resize in VERIFY_RESIZE', kill: 'conductor' },
    { op: 'cold migration', kill: 'source' },
    { op: 'cold migration', kill: 'scheduler' },
    { op: 'rebuild mid-spawn', kill: 'source' },
    { op: 'rebuild mid-spawn', kill: 'conductor' },
  ],
  live: [
    { op: 'live migration mid-copy', kill: 'source' },
    { op: 'live migration mid-copy', kill: 'destination' },
    { op: 'live migration mid-copy', kill: 'conductor' },
    { op: 'live migration after switch-over', kill: 'destination' },
    { op: 'live migration after switch-over', kill: 'source' },
    { op: 'live migration after switch-over', kill: 'conductor' },
    { op: 'live migration source clean-up', kill: 'source' },
    { op: 'evacuate mid-spawn', kill: 'destination' },
    { op: 'evacuate mid-spawn', kill: 'conductor' },
  ],
  lifecycle: [
    { op: 'snapshot mid-copy', kill: 'source' },
    { op: 'snapshot mid-copy', kill: 'conductor' },
    { op: 'unshelve mid-spawn', kill: 'destination' },
    { op: 'unshelve mid-spawn', kill: 'conductor' },
    { op: 'delete mid-destroy', kill: 'source' },
    { op: 'delete mid-destroy', kill: 'conductor' },
    { op: 'multi-create mid-batch', kill: 'conductor' },
    { op: 'multi-create mid-batch', kill: 'scheduler' },
    { op: 'multi-create mid-batch', kill: 'source' },
    { op: 'reconcile mid-batch', kill: 'conductor' },
  ],
} satisfies Record<string, Row[]>;

/**
 * One part of the table on one stack of three hosts, one row after another. Each row ends stable: the
 * operation ok or failed typed, no workflow running, one guest per live instance, nothing leaked (the
 * checker and the live audit agree: clean). FAULT_ROWS=<regex> runs the matching rows only.
 */
export function describeTablePart(part: keyof typeof TABLE): void {
  const only = process.env.FAULT_ROWS ? new RegExp(process.env.FAULT_ROWS) : undefined;
  const rows: Row[] = TABLE[part].filter((r) => !only || only.test(`${r.op} ${r.kill}`));
  describe(`fault: every operation (${part}) with a process killed at its riskiest step`, () => {
    if (rows.length === 0) {
      it.skip(`no ${part} row matches FAULT_ROWS`, () => undefined);
      return;
    }
    const stack = new Stack(fleet('op', 3, { vcpus: 64, memoryMb: 262_144, diskGb: 4000 }));
    beforeAll(() => stack.startAll(), 180_000);
    afterAll(() => stack.dispose());

    it.each(rows)(
      '$op: kill -9 $kill, restarted; stable, nothing leaked',
      async (row) => {
        await runScenario(stack, row);
      },
      120_000
    );
  });
}
