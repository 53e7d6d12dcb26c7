/**
 * Where a workflow's time goes, read from its history (no instrumentation in the code measured): each
 * activity's wait in its task queue (scheduled to started: a worker's poll picking it up) and its run
 * (started to closed), the workflow tasks (scheduled to completed: the conductor's own turns, local
 * activities included), and what is left (the server's bookkeeping between them). bench:guests prints
 * one table per measured operation.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';

interface Timestamp {
  seconds?: { toNumber(): number } | number | string | null;
  nanos?: number | null;
}

const ms = (t: Timestamp | null | undefined): number =>
  t
    ? Number(typeof t.seconds === 'object' && t.seconds ? t.seconds.toNumber() : (t.seconds ?? 0)) * 1000 +
      (t.nanos ?? 0) / 1e6
    : 0;

export interface StepTiming {
  /** The activity type, or `workflow task`. */
  step: string;
  /** Milliseconds from the workflow's start to the step's scheduling. */
  at: number;
  /** Scheduled to started (queue latency). */
  waitMs: number;
  /** Started to closed. */
  runMs: number;
}

export interface Profile {
  totalMs: number;
  steps: StepTiming[];
  /** Time some activity ran (parallel ones counted once). */
  activityRunMs: number;
  /** Time some activity waited in its queue and none ran. */
  activityWaitMs: number;
  /** Time a workflow task was scheduled or running and no activity ran. */
  workflowTaskMs: number;
  workflowTasks: number;
  /** Time nothing at all was scheduled, waiting or running: the server's bookkeeping, timers. */
  idleMs: number;
}

/** The length of the union of intervals. */
function covered(intervals: [number, number][]): number {
  let total = 0;
  let reach = -Infinity;
  for (const [a, b] of [...intervals].sort((x, y) => x[0] - y[0])) {
    if (b <= reach) continue;
    total += b - Math.max(a, reach);
    reach = b;
  }
  return total;
}

/** The steps of a closed workflow, in the order scheduled. */
export async function profileOf(handle: WorkflowHandle, client?: Client, depth = 0): Promise<Profile> {
  const history = await handle.fetchHistory();
  const events = history.events ?? [];
  const t0 = ms(events[0]?.eventTime);
  const scheduled = new Map<
    number,
    { step: string; at: number; started?: number; workflowId?: string; runId?: string }
  >();
  const children: { workflowId: string; runId?: string; offset: number }[] = [];
  const steps: StepTiming[] = [];
  let wtScheduled = 0;
  let wtStarted = 0;
  let workflowTasks = 0;
  let end = t0;
  for (const e of events) {
    const at = ms(e.eventTime);
    end = Math.max(end, at);
    const id = Number(e.eventId);
    if (e.activityTaskScheduledEventAttributes)
      scheduled.set(id, { step: e.activityTaskScheduledEventAttributes.activityType?.name ?? '?', at });
    else if (e.activityTaskStartedEventAttributes) {
      const s = scheduled.get(Number(e.activityTaskStartedEventAttributes.scheduledEventId));
      if (s) s.started = at;
    } else {
      const closed =
        e.activityTaskCompletedEventAttributes ??
        e.activityTaskFailedEventAttributes ??
        e.activityTaskTimedOutEventAttributes ??
        e.activityTaskCanceledEventAttributes;
      if (closed) {
        const s = scheduled.get(Number(closed.scheduledEventId));
        if (s) {
          const started = s.started ?? at;
          steps.push({ step: s.step, at: s.at - t0, waitMs: started - s.at, runMs: at - started });
        }
      }
    }
    if (e.startChildWorkflowExecutionInitiatedEventAttributes)
      scheduled.set(id, {
        step: `child workflow ${e.startChildWorkflowExecutionInitiatedEventAttributes.workflowType?.name ?? '?'}`,
        at,
        workflowId: e.startChildWorkflowExecutionInitiatedEventAttributes.workflowId ?? undefined,
      });
    if (e.childWorkflowExecutionStartedEventAttributes) {
      const s = scheduled.get(Number(e.childWorkflowExecutionStartedEventAttributes.initiatedEventId));
      if (s) {
        s.started = at;
        s.runId = e.childWorkflowExecutionStartedEventAttributes.workflowExecution?.runId ?? undefined;
      }
    }
    const child =
      e.childWorkflowExecutionCompletedEventAttributes ??
      e.childWorkflowExecutionFailedEventAttributes ??
      e.childWorkflowExecutionTimedOutEventAttributes;
    if (child) {
      const s = scheduled.get(Number(child.initiatedEventId));
      if (s) {
        steps.push({ step: s.step, at: s.at - t0, waitMs: (s.started ?? at) - s.at, runMs: at - (s.started ?? at) });
        if (s.workflowId) children.push({ workflowId: s.workflowId, runId: s.runId, offset: (s.started ?? at) - t0 });
      }
    }
    if (e.workflowTaskScheduledEventAttributes) wtScheduled = at;
    if (e.workflowTaskStartedEventAttributes) wtStarted = at;
    if (e.workflowTaskCompletedEventAttributes) {
      workflowTasks++;
      steps.push({
        step: 'workflow task',
        at: wtScheduled - t0,
        waitMs: wtStarted - wtScheduled,
        runMs: at - wtStarted,
      });
    }
  }
  // The children's own steps, inline (their history's times shifted to this one's), for the table only.
  const inner: StepTiming[] = [];
  if (client && depth < 2)
    for (const c of children) {
      const sub = await profileOf(client.workflow.getHandle(c.workflowId, c.runId), client, depth + 1).catch(
        (err: unknown) => void console.error(`no profile of child ${c.workflowId}: ${String(err)}`)
      );
      for (const st of sub?.steps ?? []) inner.push({ ...st, step: `  ↳ ${st.step}`, at: st.at + c.offset });
    }
  steps.sort((a, b) => a.at - b.at);
  const activities = steps.filter((s) => s.step !== 'workflow task');
  const tasks = steps.filter((s) => s.step === 'workflow task');
  const run = activities.map((s): [number, number] => [s.at + s.waitMs, s.at + s.waitMs + s.runMs]);
  const waited = activities.map((s): [number, number] => [s.at, s.at + s.waitMs]);
  const turns = tasks.map((s): [number, number] => [s.at, s.at + s.waitMs + s.runMs]);
  const activityRunMs = covered(run);
  const activityWaitMs = covered([...run, ...waited]) - activityRunMs;
  const busy = covered([...run, ...waited, ...turns]);
  return {
    totalMs: end - t0,
    steps: [...steps, ...inner].sort((a, b) => a.at - b.at),
    activityRunMs,
    activityWaitMs,
    workflowTaskMs: busy - activityRunMs - activityWaitMs,
    workflowTasks,
    idleMs: end - t0 - busy,
  };
}

/** A markdown table of a profile: one row per step, then the totals. */
export function profileTable(title: string, p: Profile): string {
  const r = Math.round;
  const rows = p.steps.map((s) => `| ${s.step} | ${r(s.at)} | ${r(s.waitMs)} | ${r(s.runMs)} |`);
  return [
    `${title} (history: ${r(p.totalMs)} ms from the workflow's start to its close)`,
    '',
    '| step | at (ms) | queue wait (ms) | runs (ms) |',
    '| --- | --- | --- | --- |',
    ...rows,
    `| **an activity running** (parallel ones once) | | | ${r(p.activityRunMs)} |`,
    `| **an activity waiting for its worker**, none running | | ${r(p.activityWaitMs)} | |`,
    `| **a workflow task** (${p.workflowTasks}), no activity | | | ${r(p.workflowTaskMs)} |`,
    `| **nothing scheduled** (server bookkeeping, timers) | | | ${r(p.idleMs)} |`,
  ].join('\n');
}
