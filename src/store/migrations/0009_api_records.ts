import type { Kysely } from 'kysely';

/**
 * More of what Nova's API database keeps (written by the API process only):
 * - `api_instance_metadata`: server metadata (Nova's instance_metadata), one row a key;
 * - `api_instance_attributes`: what a client sets on a server and Nova echoes (access IPs, disk config);
 * - `flavors`: flavors made through the API (Nova's flavor-manage), read by the conductor too;
 * - `api_server_group_owners.display_name`: the name a Nova client gave a server group. The conductor keys
 *   groups by a unique name; the API creates each group under a fresh key and shows this name, so two
 *   groups may share a display name as in Nova (null: a group the conductor CLI made, shown by its key).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('api_instance_metadata')
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('api_instance_metadata_pk', ['instance_id', 'key'])
    .execute();
  await db.schema
    .createTable('api_instance_attributes')
    .addColumn('instance_id', 'text', (c) => c.primaryKey())
    .addColumn('access_ipv4', 'text')
    .addColumn('access_ipv6', 'text')
    .addColumn('disk_config', 'text')
    .execute();
  await db.schema
    .createTable('flavors')
    .addColumn('flavor_id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('vcpus', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'integer', (c) => c.notNull())
    .addColumn('disk_gb', 'integer', (c) => c.notNull())
    .addColumn('ephemeral_gb', 'integer', (c) => c.notNull())
    .addColumn('swap_mb', 'integer', (c) => c.notNull())
    .addColumn('is_public', 'integer', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('extra_specs', 'text', (c) => c.notNull())
    .addColumn('deleted', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.alterTable('api_server_group_owners').addColumn('display_name', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('api_server_group_owners').dropColumn('display_name').execute();
  await db.schema.dropTable('flavors').execute();
  await db.schema.dropTable('api_instance_attributes').execute();
  await db.schema.dropTable('api_instance_metadata').execute();
}
