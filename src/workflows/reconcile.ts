/**
 * reconcile: the self-healing pass (Nova's periodic tasks), run by a Temporal Schedule every period and
 * by `npm run conductor -- reconcile`. In bounded batches, each decision reported in the result (and
 * visible in the history as the activities that carry it out), and recorded as an event on the
 * instance's action where there is one:
 *
 * 1. Instances, a page at a time (ids ascending):
 *    a. a task state held by a request whose workflow is closed (terminated, timed out, failed without
 *       clean-up): taken over by a compare-and-swap on the owner read, the half-made guest of a build
 *       destroyed and its claim released, the operation's unfinished migrations failed, and the instance
 *       left stable: `error` with a fault where the outcome is unknown, as it was when nothing reached a
 *       host; the task state cleared;
 *    b. a resize left `resized` with no workflow awaiting its decision: confirmed (Nova's
 *       _poll_unconfirmed_resizes);
 *    c. an active or stopped instance holding nothing on its host: its allocation recreated (Nova's
 *       heal_allocations).
 * 2. Hosts, a page at a time: allocations whose consumer is gone, deleted, a failed build or a finished
 *    migration are removed; each live host runs `reconcileHost` as a child (its guests listed, those of
 *    evacuated instances destroyed), so a host that returned without a restart is cleaned too. A down
 *    host is skipped, and said so.
 * 3. Versioned (`power-state-sync`), with each batch of hosts: the power states of the live hosts' guests
 *    against their instances' records (Nova's _sync_power_states, ./reconcile/power-sync.ts): a guest that
 *    stopped by itself stops its instance, one running while its instance is stopped is powered off.
 *
 * An instance an operation runs on is never touched. With `dryRun` it decides and reports, and changes
 * nothing. After `batchesPerRun` batches the workflow continues as new, carrying its decisions on.
 */
import { continueAsNew, executeChild, log, uuid4, workflowInfo } from '@temporalio/workflow';

import type { ReconcileDecision, ReconcileDecisionKind } from '../domain/reconcile';
import { decideAllocations, decideInstances } from '../domain/reconcile';
import type { ReconcileInput, ReconcileRequest } from '../domain/schemas';
import { ReconcileInputSchema } from '../domain/schemas';
import type { WorkflowStatus } from '../domain/workflow-status';
import { workflowStatusOf } from '../domain/workflow-status';
import { workflowIds } from '../shared/task-queues';
import { failureMessage, parseInput } from './lib/failures';
import { conductor, scheduler } from './lib/proxies';
import { applyPlan, decisionOf } from './reconcile/apply';
import { syncPowerStates } from './reconcile/power-sync';
import { reconcileHost } from './reconcile-host';

/** Decisions carried in the result; beyond this they are counted (`dropped`), not listed. */
export const MAX_REPORTED_DECISIONS = 1000;

/** The longest a host's listing may wait for its worker: a hung host does not stall the pass. */
const HOST_ANSWER_SECONDS = 10;

export interface ReconcileResult {
  dryRun: boolean;
  /** Every decision, in the order taken (at most MAX_REPORTED_DECISIONS). */
  decisions: ReconcileDecision[];
  /** Decisions beyond MAX_REPORTED_DECISIONS, counted only. */
  dropped: number;
  /** Decisions per kind. */
  counts: Partial<Record<ReconcileDecisionKind, number>>;
  /** Batches read, over every run. */
  batches: number;
}

type Resume = NonNullable<ReconcileRequest['resume']>;

export async function reconcile(input: ReconcileInput): Promise<ReconcileResult> {
  const req = parseInput(ReconcileInputSchema, input);
  const state: Resume = req.resume ?? { phase: 'instances', after: null, decisions: [], dropped: 0, batches: 0 };
  const decisions = state.decisions as unknown as ReconcileDecision[];
  const report = (d: ReconcileDecision) => {
    log.info('reconcile decision', { ...d });
    if (decisions.length < MAX_REPORTED_DECISIONS) decisions.push(d);
    else state.dropped++;
  };
  const hosts = await scheduler.listHostsUp();
  const hostsUp = Object.fromEntries(hosts.map((h) => [h.host, h.up]));
  const timeouts = {
    ...req.timeouts,
    scheduleToStartSeconds: Math.min(req.timeouts.scheduleToStartSeconds, HOST_ANSWER_SECONDS),
  };

  for (let inThisRun = 0; ; inThisRun++) {
    if (inThisRun >= req.batchesPerRun || workflowInfo().continueAsNewSuggested) {
      return continueAsNew<typeof reconcile>({ ...req, resume: state });
    }
    if (state.phase === 'instances') {
      const page = await conductor.reconcileInstancePage({ after: state.after, limit: req.batchSize });
      const ids = page.views.map((v) => v.instance.instanceId);
      const workflowIds = page.views.flatMap((v) => [
        ...(v.instance.taskOwner !== null ? [v.instance.taskOwner] : []),
        ...v.migrations.flatMap((m) => (m.workflowId !== null ? [m.workflowId] : [])),
      ]);
      const [allocations, statuses] = await Promise.all([
        ids.length > 0 ? scheduler.allocationsOf({ consumerIds: ids }) : {},
        statusesOf(workflowIds),
      ]);
      for (const plan of decideInstances({ views: page.views, allocations, statuses, hostsUp, now: Date.now() }))
        report(req.dryRun ? decisionOf(plan, 'planned') : await applyPlan(plan, timeouts));
      Object.assign(state, page.next === null ? { phase: 'hosts', after: null } : { after: page.next });
    } else {
      const batch = hosts.filter((h) => state.after === null || h.host > state.after).slice(0, req.batchSize);
      if (batch.length === 0) break;
      const allocations = await scheduler.allocationsOnHosts({ hosts: batch.map((h) => h.host) });
      const consumers =
        allocations.length > 0
          ? await conductor.describeConsumers({ consumerIds: allocations.map((a) => a.consumerId) })
          : {};
      for (const plan of decideAllocations(allocations, consumers))
        report(req.dryRun ? decisionOf(plan, 'planned') : await applyPlan(plan, timeouts));
      const reconciled = await Promise.all(batch.map((h) => reconcileOneHost(h.host, h.up, req, timeouts)));
      reconciled.forEach(report);
      const live = batch.filter((h) => h.up).map((h) => h.host);
      (await syncPowerStates(live, req.dryRun, timeouts)).forEach(report);
      state.after = batch.at(-1)?.host ?? null;
    }
    state.batches++;
  }

  const counts: ReconcileResult['counts'] = {};
  for (const d of decisions) counts[d.kind] = (counts[d.kind] ?? 0) + 1;
  log.info('reconciled', { decisions: decisions.length + state.dropped, dryRun: req.dryRun });
  return { dryRun: req.dryRun, decisions, dropped: state.dropped, counts, batches: state.batches };
}

/** What Temporal says of each workflow id (the activity takes at most 1000 ids a call). */
async function statusesOf(workflowIds: readonly string[]): Promise<Record<string, WorkflowStatus>> {
  const ids = [...new Set(workflowIds)];
  const out: Record<string, WorkflowStatus> = {};
  for (let i = 0; i < ids.length; i += 1000)
    for (const [id, name] of Object.entries(await conductor.workflowStatus({ workflowIds: ids.slice(i, i + 1000) })))
      out[id] = workflowStatusOf(name);
  return out;
}

/** One host's own reconciliation, as a child workflow; a down host is skipped and said so. */
async function reconcileOneHost(
  host: string,
  up: boolean,
  req: ReconcileRequest,
  timeouts: ReconcileRequest['timeouts']
): Promise<ReconcileDecision> {
  if (!up)
    return {
      kind: 'host-skipped',
      subject: host,
      host,
      detail: 'the host is down: its guests are reconciled when it returns',
      outcome: 'skipped',
    };
  const detail = 'list its guests and destroy those of evacuated and deleted instances (reconcileHost)';
  if (req.dryRun) return { kind: 'host-reconciled', subject: host, host, detail, outcome: 'planned' };
  try {
    const result = await executeChild(reconcileHost, {
      // Its own id (a reconcileHost a compute worker started at start-up may be running under its usual one).
      workflowId: `${workflowIds.reconcileHost(host)}-${uuid4().slice(0, 8)}`,
      args: [{ host, timeouts }],
    });
    // Evacuated, deleted and stray guests (a moved-aside copy of an instance living elsewhere among them).
    const cleaned = [...result.cleaned, ...(result.deleted ?? []), ...(result.strays ?? [])]
      .filter((c) => !('guestDestroyed' in c) || c.guestDestroyed || c.allocationReleased)
      .map((c) => c.instanceId);
    return {
      kind: 'host-reconciled',
      subject: host,
      host,
      detail,
      outcome: 'applied',
      note: `${result.guests} guest(s); ${cleaned.length > 0 ? `cleaned: ${cleaned.join(', ')}` : 'nothing to clean'}`,
    };
  } catch (err) {
    return { kind: 'host-reconciled', subject: host, host, detail, outcome: 'failed', note: failureMessage(err) };
  }
}
