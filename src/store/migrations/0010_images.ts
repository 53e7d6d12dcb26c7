import type { Kysely } from 'kysely';

/**
 * Stored images (snapshots of instances' disks, Nova's snapshot_instance into Glance): the catalogue's
 * images stay static; these are written by the conductor's snapshot. `properties` is JSON text.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('images')
    .addColumn('image_id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('size_gb', 'real', (c) => c.notNull())
    .addColumn('min_disk', 'integer', (c) => c.notNull())
    .addColumn('min_ram', 'integer', (c) => c.notNull())
    .addColumn('properties', 'text', (c) => c.notNull())
    .addColumn('instance_id', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('images_name').on('images').columns(['name', 'status']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('images').execute();
}
