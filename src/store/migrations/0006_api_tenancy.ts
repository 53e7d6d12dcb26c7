import type { Kysely } from 'kysely';

/**
 * What Nova's API database keeps and the conductor's records lack (written by the API process only):
 * the project and user of each instance and server group, and stable integer ids for things the
 * conductor keys by name or UUID (services and hypervisors below microversion 2.53, migrations below 2.59).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('api_instance_owners')
    .addColumn('instance_id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('api_instance_owners_project').on('api_instance_owners').column('project_id').execute();
  await db.schema
    .createTable('api_server_group_owners')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('api_integer_ids')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('id', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('api_integer_ids_pk', ['kind', 'key'])
    .addUniqueConstraint('api_integer_ids_kind_id', ['kind', 'id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('api_integer_ids').execute();
  await db.schema.dropTable('api_server_group_owners').execute();
  await db.schema.dropTable('api_instance_owners').execute();
}
