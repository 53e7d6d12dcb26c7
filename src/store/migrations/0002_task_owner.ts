import type { Kysely } from 'kysely';

/**
 * The request (workflow id) that holds an instance's task state: the operation lock's owner, so a
 * retried begin of the same operation recognises its own lock and a rival does not.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('instances').addColumn('task_owner', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('instances').dropColumn('task_owner').execute();
}
