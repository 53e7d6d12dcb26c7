/**
 * The initial schema. Portable DDL only (the same statements run on SQLite and PostgreSQL): text,
 * integer and double precision columns, composite primary keys, foreign keys with cascade.
 * Migrations take `Kysely<unknown>`: they must not depend on today's row types.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // --- placement ---
  await db.schema
    .createTable('resource_providers')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('availability_zone', 'text', (c) => c.notNull())
    .addColumn('architecture', 'text', (c) => c.notNull())
    .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('disabled_reason', 'text')
    .addColumn('forced_down', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('failed_builds', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('changed_version', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('resource_providers_changed_version_idx')
    .on('resource_providers')
    .column('changed_version')
    .execute();

  await db.schema
    .createTable('inventories')
    .addColumn('provider', 'text', (c) => c.notNull().references('resource_providers.name').onDelete('cascade'))
    .addColumn('resource_class', 'text', (c) => c.notNull())
    .addColumn('total', 'integer', (c) => c.notNull())
    .addColumn('reserved', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('allocation_ratio', 'double precision', (c) => c.notNull().defaultTo(1))
    .addPrimaryKeyConstraint('inventories_pk', ['provider', 'resource_class'])
    .execute();

  await db.schema
    .createTable('traits')
    .addColumn('provider', 'text', (c) => c.notNull().references('resource_providers.name').onDelete('cascade'))
    .addColumn('trait', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('traits_pk', ['provider', 'trait'])
    .execute();

  await db.schema
    .createTable('allocations')
    .addColumn('consumer_id', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull().references('resource_providers.name').onDelete('cascade'))
    .addColumn('resource_class', 'text', (c) => c.notNull())
    .addColumn('used', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('allocations_pk', ['consumer_id', 'provider', 'resource_class'])
    .execute();
  await db.schema
    .createIndex('allocations_provider_idx')
    .on('allocations')
    .columns(['provider', 'resource_class'])
    .execute();

  await db.schema
    .createTable('placement_state')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('version', 'integer', (c) => c.notNull())
    .execute();
  // A local row type: migrations never import today's schema types.
  await (db as Kysely<{ placement_state: { id: number; version: number } }>)
    .insertInto('placement_state')
    .values({ id: 1, version: 0 })
    .execute();

  // --- instance records (Nova's cell database) ---
  await db.schema
    .createTable('instances')
    .addColumn('instance_id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('vm_state', 'text', (c) => c.notNull())
    .addColumn('task_state', 'text')
    .addColumn('power_state', 'text', (c) => c.notNull())
    .addColumn('host', 'text')
    .addColumn('availability_zone', 'text')
    .addColumn('flavor', 'text', (c) => c.notNull())
    .addColumn('image', 'text', (c) => c.notNull())
    .addColumn('vcpus', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'integer', (c) => c.notNull())
    .addColumn('disk_gb', 'integer', (c) => c.notNull())
    .addColumn('server_group', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('instances_host_idx').on('instances').column('host').execute();
  await db.schema.createIndex('instances_server_group_idx').on('instances').column('server_group').execute();

  await db.schema
    .createTable('instance_actions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text', (c) => c.notNull())
    .addColumn('message', 'text')
    .addColumn('result', 'text')
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .addUniqueConstraint('instance_actions_request_uq', ['instance_id', 'request_id', 'action'])
    .execute();

  await db.schema
    .createTable('instance_action_events')
    .addColumn('action_id', 'text', (c) => c.notNull().references('instance_actions.id').onDelete('cascade'))
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('host', 'text')
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .addColumn('result', 'text')
    .addColumn('details', 'text')
    .addPrimaryKeyConstraint('instance_action_events_pk', ['action_id', 'event', 'attempt'])
    .execute();

  await db.schema
    .createTable('instance_faults')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('code', 'integer', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('details', 'text')
    .addColumn('host', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('instance_faults_instance_idx')
    .on('instance_faults')
    .columns(['instance_id', 'created_at'])
    .execute();

  await db.schema
    .createTable('migrations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('source_host', 'text', (c) => c.notNull())
    .addColumn('dest_host', 'text')
    .addColumn('old_flavor', 'text', (c) => c.notNull())
    .addColumn('new_flavor', 'text', (c) => c.notNull())
    .addColumn('migration_type', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('migrations_instance_idx').on('migrations').column('instance_id').execute();

  await db.schema
    .createTable('server_groups')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('policy', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'server_groups',
    'migrations',
    'instance_faults',
    'instance_action_events',
    'instance_actions',
    'instances',
    'placement_state',
    'allocations',
    'traits',
    'inventories',
    'resource_providers',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
