/**
 * The API's own records (migration 0006), as Nova's API database keeps them: who owns each instance and
 * server group, and stable integer ids for services, hypervisors and migrations below the microversions
 * that made them UUIDs. Written by the API process only; every write is idempotent.
 */
import type { Store } from './db';
import { nowIso } from './util';

export interface Owner {
  projectId: string;
  userId: string;
}

export interface ApiRepository {
  /** Records the instance's owner; the first owner recorded wins. */
  setInstanceOwner(instanceId: string, owner: Owner): Promise<void>;
  instanceOwner(instanceId: string): Promise<Owner | undefined>;
  /** Every instance's owner, by instance id. */
  instanceOwners(): Promise<Map<string, Owner>>;
  setServerGroupOwner(name: string, owner: Owner): Promise<void>;
  serverGroupOwners(): Promise<Map<string, Owner>>;
  deleteServerGroupOwner(name: string): Promise<void>;
  /** The integer id of (kind, key), assigned on first use (1, 2, 3 … per kind) and never changed. */
  integerId(kind: string, key: string): Promise<number>;
  /** The key of an integer id, if one was assigned. */
  keyOfInteger(kind: string, id: number): Promise<string | undefined>;
}

export function createApiRepository(store: Store): ApiRepository {
  const db = store.db;

  async function integerId(kind: string, key: string): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const row = await db
        .selectFrom('api_integer_ids')
        .select('id')
        .where('kind', '=', kind)
        .where('key', '=', key)
        .executeTakeFirst();
      if (row) return Number(row.id);
      const max = await db
        .selectFrom('api_integer_ids')
        .select((eb) => eb.fn.max('id').as('max'))
        .where('kind', '=', kind)
        .executeTakeFirst();
      try {
        await db
          .insertInto('api_integer_ids')
          .values({ kind, key, id: Number(max?.max ?? 0) + 1 })
          .onConflict((oc) => oc.columns(['kind', 'key']).doNothing())
          .execute();
      } catch (err) {
        // Another writer took that integer for another key at the same time: read again and retry.
        if (attempt >= 5) throw err;
      }
    }
  }

  return {
    async setInstanceOwner(instanceId, owner) {
      await db
        .insertInto('api_instance_owners')
        .values({ instance_id: instanceId, project_id: owner.projectId, user_id: owner.userId, created_at: nowIso() })
        .onConflict((oc) => oc.column('instance_id').doNothing())
        .execute();
    },
    async instanceOwner(instanceId) {
      const row = await db
        .selectFrom('api_instance_owners')
        .selectAll()
        .where('instance_id', '=', instanceId)
        .executeTakeFirst();
      return row ? { projectId: row.project_id, userId: row.user_id } : undefined;
    },
    async instanceOwners() {
      const rows = await db.selectFrom('api_instance_owners').selectAll().execute();
      return new Map(rows.map((r) => [r.instance_id, { projectId: r.project_id, userId: r.user_id }]));
    },
    async setServerGroupOwner(name, owner) {
      await db
        .insertInto('api_server_group_owners')
        .values({ name, project_id: owner.projectId, user_id: owner.userId, created_at: nowIso() })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
    },
    async serverGroupOwners() {
      const rows = await db.selectFrom('api_server_group_owners').selectAll().execute();
      return new Map(rows.map((r) => [r.name, { projectId: r.project_id, userId: r.user_id }]));
    },
    async deleteServerGroupOwner(name) {
      await db.deleteFrom('api_server_group_owners').where('name', '=', name).execute();
    },
    integerId,
    async keyOfInteger(kind, id) {
      const row = await db
        .selectFrom('api_integer_ids')
        .select('key')
        .where('kind', '=', kind)
        .where('id', '=', id)
        .executeTakeFirst();
      return row?.key;
    },
  };
}
