import type { Kysely } from 'kysely';

/**
 * Actions by request: a build re-submitted under the same workflow id finds the instance its first run
 * created (idempotent create) without scanning every action.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('instance_actions_request')
    .on('instance_actions')
    .columns(['request_id', 'action'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('instance_actions_request').execute();
}
