/**
 * Reading and delivering the notification outbox (src/store/notifications.ts writes it): the CLI lists it,
 * the relay takes the undelivered notifications in commit order and marks them delivered.
 */
import type { VersionedNotification, VersionedObject } from '../domain/notifications';
import type { Selectable } from 'kysely';

import type { Store } from './db';
import type { NotificationsTable } from './schema';
import { nowIso } from './util';

/** An outbox row: the notification, its place in commit order and whether it was delivered. */
export interface OutboxEntry extends VersionedNotification {
  seq: number;
  deliveredAt: string | null;
}

function toEntry(row: Selectable<NotificationsTable>): OutboxEntry {
  return {
    seq: Number(row.seq),
    messageId: row.message_id,
    eventType: row.event_type,
    priority: row.priority as VersionedNotification['priority'],
    publisherId: row.publisher_id,
    instanceId: row.instance_id,
    timestamp: row.created_at,
    payload: JSON.parse(row.payload) as VersionedObject,
    deliveredAt: row.delivered_at,
  };
}

export interface NotificationOutbox {
  /** Notifications after `afterSeq` (0: from the first), oldest first, optionally of one instance. */
  list(filter?: { afterSeq?: number; instanceId?: string; limit?: number }): Promise<OutboxEntry[]>;
  /** The oldest undelivered notifications, in commit order. */
  undelivered(limit: number): Promise<OutboxEntry[]>;
  /** Marks notifications delivered (idempotent). */
  markDelivered(seqs: readonly number[]): Promise<void>;
  /** How many wait for delivery, and the oldest's timestamp. */
  backlog(): Promise<{ count: number; oldest: string | null }>;
  /** Deletes delivered notifications older than `before` (ISO); with `undeliveredToo`, undelivered ones too. */
  prune(before: string, options?: { undeliveredToo?: boolean }): Promise<number>;
}

export function createNotificationOutbox(store: Store): NotificationOutbox {
  const db = store.db;
  return {
    async list(filter = {}) {
      let query = db
        .selectFrom('notifications')
        .selectAll()
        .where('seq', '>', filter.afterSeq ?? 0);
      if (filter.instanceId !== undefined) query = query.where('instance_id', '=', filter.instanceId);
      const rows = await query
        .orderBy('seq')
        .limit(filter.limit ?? 1000)
        .execute();
      return rows.map(toEntry);
    },
    async undelivered(limit) {
      const rows = await db
        .selectFrom('notifications')
        .selectAll()
        .where('delivered_at', 'is', null)
        .orderBy('seq')
        .limit(limit)
        .execute();
      return rows.map(toEntry);
    },
    async markDelivered(seqs) {
      if (seqs.length === 0) return;
      await db
        .updateTable('notifications')
        .set({ delivered_at: nowIso() })
        .where('seq', 'in', [...seqs])
        .where('delivered_at', 'is', null)
        .execute();
    },
    async backlog() {
      const row = await db
        .selectFrom('notifications')
        .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.min('created_at').as('oldest')])
        .where('delivered_at', 'is', null)
        .executeTakeFirstOrThrow();
      return { count: Number(row.count), oldest: row.oldest ?? null };
    },
    async prune(before, options = {}) {
      let query = db.deleteFrom('notifications').where('created_at', '<', before);
      if (!options.undeliveredToo) query = query.where('delivered_at', 'is not', null);
      const result = await query.executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
