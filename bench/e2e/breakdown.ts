/**
 * Where a workflow's time goes, from its history: for each kind of task (workflow tasks, and each
 * activity type) the mean wait in its queue (scheduled -> started) and the mean run (started ->
 * completed), over the histories given (every run of each workflow id).
 */
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export interface Phase {
  task: string;
  count: number;
  waitMs: number;
  runMs: number;
}

const ms = (t: HistoryEvent['eventTime']) =>
  t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : NaN;

export async function breakdown(client: Client, workflowIds: string[]): Promise<Phase[]> {
  const phases = new Map<string, { count: number; wait: number; run: number }>();
  const add = (task: string, wait: number, run: number) => {
    const p = phases.get(task) ?? { count: 0, wait: 0, run: 0 };
    p.count++;
    p.wait += wait;
    p.run += run;
    phases.set(task, p);
  };
  for (const workflowId of workflowIds)
    for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      const history = await client.workflow.getHandle(workflowId, run.runId).fetchHistory();
      const events = history.events ?? [];
      const byId = new Map(events.map((e) => [Number(e.eventId), e]));
      for (const e of events) {
        if (e.workflowTaskCompletedEventAttributes) {
          const a = e.workflowTaskCompletedEventAttributes;
          const scheduled = byId.get(Number(a.scheduledEventId));
          const started = byId.get(Number(a.startedEventId));
          if (scheduled && started)
            add(
              `workflow task (${run.type})`,
              ms(started.eventTime) - ms(scheduled.eventTime),
              ms(e.eventTime) - ms(started.eventTime)
            );
        }
        if (e.activityTaskCompletedEventAttributes) {
          const a = e.activityTaskCompletedEventAttributes;
          const scheduled = byId.get(Number(a.scheduledEventId));
          const started = byId.get(Number(a.startedEventId));
          const type = scheduled?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
          if (scheduled && started)
            add(
              `activity ${type}`,
              ms(started.eventTime) - ms(scheduled.eventTime),
              ms(e.eventTime) - ms(started.eventTime)
            );
        }
      }
      const first = events[0];
      const last = events.at(-1);
      if (first && last) add(`whole run (${run.type})`, 0, ms(last.eventTime) - ms(first.eventTime));
    }
  return [...phases.entries()].map(([task, p]) => ({
    task,
    count: p.count,
    waitMs: p.wait / p.count,
    runMs: p.run / p.count,
  }));
}

export function printBreakdown(title: string, phases: Phase[]): void {
  console.log(`\n${title}:`);
  console.log('| task | count | mean wait in queue (ms) | mean run (ms) |\n| --- | --- | --- | --- |');
  for (const p of phases) console.log(`| ${p.task} | ${p.count} | ${p.waitMs.toFixed(1)} | ${p.runMs.toFixed(1)} |`);
}
