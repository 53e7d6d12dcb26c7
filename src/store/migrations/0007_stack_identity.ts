import type { Kysely } from 'kysely';

/**
 * Which stack the store belongs to: one row, written by the conductor worker at start (a random stack id,
 * and the Temporal address and namespace it serves). The same id is set on the namespace's data, so a CLI
 * connected to another stack's Temporal refuses to read this store.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('stack_identity')
    .addColumn('singleton', 'integer', (c) => c.primaryKey())
    .addColumn('stack_id', 'text', (c) => c.notNull())
    .addColumn('temporal_address', 'text', (c) => c.notNull())
    .addColumn('temporal_namespace', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('stack_identity').execute();
}
