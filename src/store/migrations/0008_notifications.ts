import type { Kysely } from 'kysely';
import { PostgresAdapter } from 'kysely';

/**
 * The notification outbox (src/store/notifications.ts): each versioned notification is written in the
 * transaction of the state change it reports, numbered in commit order (`seq`), and marked once the
 * relay delivered it. `message_id` is the id consumers drop duplicates on.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await db.schema
    .createTable('notifications')
    .addColumn('seq', postgres ? 'serial' : 'integer', (c) =>
      postgres ? c.primaryKey() : c.primaryKey().autoIncrement()
    )
    .addColumn('message_id', 'text', (c) => c.notNull().unique())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('priority', 'text', (c) => c.notNull())
    .addColumn('publisher_id', 'text', (c) => c.notNull())
    .addColumn('instance_id', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('delivered_at', 'text')
    .execute();
  await db.schema.createIndex('notifications_instance').on('notifications').columns(['instance_id', 'seq']).execute();
  await db.schema
    .createIndex('notifications_undelivered')
    .on('notifications')
    .columns(['delivered_at', 'seq'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('notifications').execute();
}
