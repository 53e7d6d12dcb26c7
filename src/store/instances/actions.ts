/** Instance actions with one event per step and attempt (Nova's instance actions). */
import type { Store } from '../db';
import { atomically, notifyActionPhase, notifyStepPhase } from '../notifications';
import { prepared } from '../prepared';
import { newId, nowIso } from '../util';
import type { InstanceRepository } from './index';

type EventKey = { actionId: string; event: string; attempt: number };

const selectEventFinish = prepared((db, p: EventKey) =>
  db
    .selectFrom('instance_action_events')
    .select('finished_at')
    .where('action_id', '=', p.actionId)
    .where('event', '=', p.event)
    .where('attempt', '=', p.attempt)
);

/**
 * Insert, or fill in a step that has not finished yet; a finished step is never rewritten (the first
 * finish wins), so a retried activity cannot flip a recorded result. No row back: it had finished.
 */
const upsertEvent = prepared(
  (
    db,
    p: EventKey & {
      host: string | null;
      startedAt: string;
      finishedAt: string | null;
      result: string | null;
      details: string | null;
    }
  ) =>
    db
      .insertInto('instance_action_events')
      .values({
        action_id: p.actionId,
        event: p.event,
        attempt: p.attempt,
        host: p.host,
        started_at: p.startedAt,
        finished_at: p.finishedAt,
        result: p.result,
        details: p.details,
      })
      .onConflict((oc) =>
        oc
          .columns(['action_id', 'event', 'attempt'])
          .doUpdateSet((eb) => ({
            host: eb.fn.coalesce('instance_action_events.host', 'excluded.host'),
            finished_at: eb.ref('excluded.finished_at'),
            result: eb.ref('excluded.result'),
            details: eb.fn.coalesce('excluded.details', 'instance_action_events.details'),
          }))
          .where('instance_action_events.finished_at', 'is', null)
      )
      .returning(['result', 'host', 'started_at', 'finished_at', 'details'])
);

export type ActionResult = 'Success' | 'Error';

export interface InstanceActionEvent {
  event: string;
  attempt: number;
  host: string | null;
  startedAt: string;
  finishedAt: string | null;
  result: ActionResult | null;
  details: string | null;
}

export interface InstanceAction {
  actionId: string;
  instanceId: string;
  /** Nova's instance action names: create, rebuild, evacuate, resize, migrate, confirmResize, revertResize, stop, start … */
  action: string;
  requestId: string;
  startedAt: string;
  finishedAt: string | null;
  result: ActionResult | null;
  /** 'Error' once any event of the action failed (Nova's action message). */
  message: string | null;
  /** In start order (then attempt). */
  events: InstanceActionEvent[];
}

/** One step of an action, per attempt. Idempotent on (actionId, event, attempt). */
export interface EventRecord {
  actionId: string;
  event: string;
  attempt: number;
  host: string | null;
  /** null: the step started and has not finished. */
  result: ActionResult | null;
  details?: string | null;
  startedAt: string;
  finishedAt?: string | null;
}

export type InstanceActions = Pick<
  InstanceRepository,
  'startAction' | 'finishAction' | 'startEvent' | 'finishEvent' | 'recordEvent' | 'findActionByRequest' | 'listActions'
>;

export function createInstanceActions(store: Store): InstanceActions {
  const db = store.db;

  // Each write and the notifications it emits commit together (src/store/notifications.ts).
  function startAction(instanceId: string, action: string, requestId: string): Promise<{ actionId: string }> {
    return atomically(store, async (db) => {
      const inserted = await db
        .insertInto('instance_actions')
        .values({
          id: newId(),
          instance_id: instanceId,
          action,
          request_id: requestId,
          message: null,
          result: null,
          started_at: nowIso(),
          finished_at: null,
        })
        .onConflict((oc) => oc.columns(['instance_id', 'request_id', 'action']).doNothing())
        .returning('id')
        .executeTakeFirst();
      if (inserted) {
        await notifyActionPhase(store, db, { instanceId, action, requestId }, 'start');
        return { actionId: inserted.id };
      }
      const row = await db
        .selectFrom('instance_actions')
        .select('id')
        .where('instance_id', '=', instanceId)
        .where('request_id', '=', requestId)
        .where('action', '=', action)
        .executeTakeFirstOrThrow();
      return { actionId: row.id };
    });
  }

  function finishAction(actionId: string, result: ActionResult): Promise<void> {
    return atomically(store, async (db) => {
      const finished = await db
        .updateTable('instance_actions')
        .set((eb) => ({
          result,
          finished_at: nowIso(),
          message: result === 'Error' ? eb.fn.coalesce('message', eb.val('Error')) : eb.ref('message'),
        }))
        .where('id', '=', actionId)
        .where('finished_at', 'is', null)
        .returning(['instance_id', 'action', 'request_id'])
        .executeTakeFirst();
      if (finished)
        await notifyActionPhase(
          store,
          db,
          { instanceId: finished.instance_id, action: finished.action, requestId: finished.request_id },
          result === 'Error' ? 'error' : 'end'
        );
    });
  }

  function recordEvent(event: EventRecord): Promise<void> {
    return atomically(store, (db) => recordEventIn(db, event));
  }

  async function recordEventIn(db: typeof store.db, event: EventRecord): Promise<void> {
    const finishedAt = event.finishedAt ?? (event.result === null ? null : nowIso());
    const key = { actionId: event.actionId, event: event.event, attempt: event.attempt };
    const [before] = (await selectEventFinish(db, key)).rows;
    const [written] = (
      await upsertEvent(db, {
        ...key,
        host: event.host,
        startedAt: event.startedAt,
        finishedAt,
        result: event.result,
        details: event.details ?? null,
      })
    ).rows;
    // NOTE(nova): action_event_finish marks the action's message 'Error' when an event fails.
    if (written?.result === 'Error')
      await db
        .updateTable('instance_actions')
        .set({ message: 'Error' })
        .where('id', '=', event.actionId)
        .where('message', 'is', null)
        .execute();
    if (written === undefined) return; // already finished: nothing changed, nothing to report
    const step = { actionId: event.actionId, event: event.event, host: written.host, details: written.details };
    if (before === undefined) await notifyStepPhase(store, db, { ...step, timestamp: written.started_at }, 'start');
    if (written.result !== null && written.finished_at !== null && before?.finished_at == null)
      await notifyStepPhase(
        store,
        db,
        { ...step, timestamp: written.finished_at },
        written.result === 'Error' ? 'error' : 'end'
      );
  }

  async function findActionByRequest(
    action: string,
    requestId: string
  ): Promise<{ actionId: string; instanceId: string } | undefined> {
    const row = await db
      .selectFrom('instance_actions')
      .select(['id', 'instance_id'])
      .where('request_id', '=', requestId)
      .where('action', '=', action)
      .orderBy('started_at')
      .executeTakeFirst();
    return row && { actionId: row.id, instanceId: row.instance_id };
  }

  async function listActions(instanceId: string): Promise<InstanceAction[]> {
    const actions = await db
      .selectFrom('instance_actions')
      .selectAll()
      .where('instance_id', '=', instanceId)
      .orderBy('started_at')
      .orderBy('id')
      .execute();
    if (actions.length === 0) return [];
    const events = await db
      .selectFrom('instance_action_events as e')
      .innerJoin('instance_actions as a', 'a.id', 'e.action_id')
      .selectAll('e')
      .where('a.instance_id', '=', instanceId)
      .orderBy('e.started_at')
      .orderBy('e.attempt')
      .orderBy('e.event')
      .execute();
    const byAction = new Map<string, InstanceActionEvent[]>();
    for (const e of events) {
      let list = byAction.get(e.action_id);
      if (list === undefined) byAction.set(e.action_id, (list = []));
      list.push({
        event: e.event,
        attempt: e.attempt,
        host: e.host,
        startedAt: e.started_at,
        finishedAt: e.finished_at,
        result: e.result as ActionResult | null,
        details: e.details,
      });
    }
    return actions.map((a) => ({
      actionId: a.id,
      instanceId: a.instance_id,
      action: a.action,
      requestId: a.request_id,
      startedAt: a.started_at,
      finishedAt: a.finished_at,
      result: a.result as ActionResult | null,
      message: a.message,
      events: byAction.get(a.id) ?? [],
    }));
  }

  return {
    startAction,
    finishAction,
    startEvent: (actionId, event, attempt, host) =>
      recordEvent({ actionId, event, attempt, host, result: null, startedAt: nowIso() }),
    finishEvent: (actionId, event, attempt, result, details) => {
      const now = nowIso();
      return recordEvent({ actionId, event, attempt, host: null, result, details, startedAt: now, finishedAt: now });
    },
    recordEvent,
    findActionByRequest,
    listActions,
  };
}
