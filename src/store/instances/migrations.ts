/** Migration records (resize, cold migration, evacuation), with compare-and-swap status updates. */
import type { MigrationRecord, MigrationType } from '../../domain/migration';
import type { Selectable, Updateable } from 'kysely';

import { MigrationError } from '../../domain/errors';
import { MIGRATION_FINISHED_STATUSES } from '../../domain/migration';
import type { Store } from '../db';
import type { MigrationsTable } from '../schema';
import { asList, nowIso } from '../util';
import type { InstanceRepository } from './index';

export type { MigrationRecord, MigrationType };

export type NewMigration = Omit<MigrationRecord, 'createdAt' | 'updatedAt'>;
export type MigrationPatch = Partial<
  Pick<MigrationRecord, 'status' | 'sourceHost' | 'destHost' | 'oldFlavor' | 'newFlavor' | 'downtimeMs'>
>;

export interface MigrationExpectation {
  /** The status(es) the migration must be in. */
  status?: string | readonly string[];
  /** The operation asking, named in the MigrationError. */
  method?: string;
}

export type MigrationRecords = Pick<
  InstanceRepository,
  | 'createMigration'
  | 'updateMigration'
  | 'getMigration'
  | 'findMigration'
  | 'listMigrations'
  | 'listMigrationsInProgress'
>;

function toMigration(row: Selectable<MigrationsTable>): MigrationRecord {
  return {
    id: row.id,
    instanceId: row.instance_id,
    sourceHost: row.source_host,
    destHost: row.dest_host,
    oldFlavor: row.old_flavor,
    newFlavor: row.new_flavor,
    migrationType: row.migration_type as MigrationType,
    status: row.status,
    ...(row.downtime_ms !== null && row.downtime_ms !== undefined ? { downtimeMs: row.downtime_ms } : {}),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function createMigrationRecords(store: Store): MigrationRecords {
  const db = store.db;

  async function findMigration(id: string): Promise<MigrationRecord | undefined> {
    const row = await db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toMigration(row);
  }

  async function getMigration(id: string): Promise<MigrationRecord> {
    const migration = await findMigration(id);
    if (migration === undefined) throw new MigrationError(`migration ${id} not found`, { migrationId: id });
    return migration;
  }

  async function createMigration(m: NewMigration): Promise<MigrationRecord> {
    const now = nowIso();
    await db
      .insertInto('migrations')
      .values({
        id: m.id,
        instance_id: m.instanceId,
        source_host: m.sourceHost,
        dest_host: m.destHost,
        old_flavor: m.oldFlavor,
        new_flavor: m.newFlavor,
        migration_type: m.migrationType,
        status: m.status,
        downtime_ms: m.downtimeMs ?? null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    return getMigration(m.id);
  }

  async function updateMigration(
    id: string,
    patch: MigrationPatch,
    expect: MigrationExpectation = {}
  ): Promise<MigrationRecord> {
    const set: Updateable<MigrationsTable> = { updated_at: nowIso() };
    if (patch.status !== undefined) set.status = patch.status;
    if (patch.sourceHost !== undefined) set.source_host = patch.sourceHost;
    if (patch.destHost !== undefined) set.dest_host = patch.destHost;
    if (patch.oldFlavor !== undefined) set.old_flavor = patch.oldFlavor;
    if (patch.newFlavor !== undefined) set.new_flavor = patch.newFlavor;
    if (patch.downtimeMs !== undefined) set.downtime_ms = patch.downtimeMs;
    const expected = expect.status === undefined ? undefined : asList(expect.status);
    let query = db.updateTable('migrations').set(set).where('id', '=', id);
    if (expected !== undefined)
      query = query.where((eb) => (expected.length > 0 ? eb('status', 'in', expected) : eb.lit(false)));
    const row = await query.returningAll().executeTakeFirst();
    if (row !== undefined) return toMigration(row);
    const current = await getMigration(id);
    throw new MigrationError(
      `cannot '${expect.method ?? 'update'}' migration ${id} in status ${current.status} (expected ${(expected ?? []).join(' or ')})`,
      { migrationId: id, status: current.status, expected: [...(expected ?? [])] }
    );
  }

  async function listMigrations(instanceId: string): Promise<MigrationRecord[]> {
    const rows = await db
      .selectFrom('migrations')
      .selectAll()
      .where('instance_id', '=', instanceId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toMigration);
  }

  async function listMigrationsInProgress(): Promise<MigrationRecord[]> {
    const rows = await db
      .selectFrom('migrations')
      .selectAll()
      .where('status', 'not in', [...MIGRATION_FINISHED_STATUSES])
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toMigration);
  }

  return { createMigration, updateMigration, getMigration, findMigration, listMigrations, listMigrationsInProgress };
}
