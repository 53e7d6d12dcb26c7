import type { Kysely } from 'kysely';

/** A live migration's switch-over pause (the guest paused on its source), in ms; null for other moves. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('migrations').addColumn('downtime_ms', 'integer').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('migrations').dropColumn('downtime_ms').execute();
}
