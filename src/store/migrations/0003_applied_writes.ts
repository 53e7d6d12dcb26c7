import type { Kysely } from 'kysely';

/**
 * Applied conductor writes, keyed by the call that made them, so a retried write whose first answer
 * was lost returns that answer instead of failing its own compare-and-swap.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('applied_writes')
    .addColumn('write_key', 'text', (c) => c.primaryKey())
    .addColumn('result', 'text', (c) => c.notNull())
    .addColumn('applied_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('applied_writes_applied_at').on('applied_writes').column('applied_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('applied_writes').execute();
}
