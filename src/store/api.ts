/**
 * The API's own records (migration 0006), as Nova's API database keeps them: who owns each instance and
 * server group, and stable integer ids for services, hypervisors and migrations below the microversions
 * that made them UUIDs. Written by the API process only; every write is idempotent.
 */
import type { Selectable } from 'kysely';

import type { Store } from './db';
import { transaction } from './db';
import type { ApiInstanceAttributesTable } from './schema';
import { nowIso } from './util';

export interface Owner {
  projectId: string;
  userId: string;
}

/** What a client set on a server and Nova echoes (null: not set). */
export interface InstanceAttributes {
  accessIPv4: string | null;
  accessIPv6: string | null;
  diskConfig: 'AUTO' | 'MANUAL' | null;
}

export interface ApiRepository {
  /** Records the instance's owner; the first owner recorded wins. */
  setInstanceOwner(instanceId: string, owner: Owner): Promise<void>;
  instanceOwner(instanceId: string): Promise<Owner | undefined>;
  /** Every instance's owner, by instance id. */
  instanceOwners(): Promise<Map<string, Owner>>;
  /** Records the owner of the group keyed `name` (first wins), and the name its client gave it. */
  setServerGroupOwner(name: string, owner: Owner, displayName?: string): Promise<void>;
  serverGroupOwners(): Promise<Map<string, Owner>>;
  /** The names clients gave groups, by the group's key (groups made by the API only). */
  serverGroupDisplayNames(): Promise<Map<string, string>>;
  deleteServerGroupOwner(name: string): Promise<void>;
  /** The instance's metadata (Nova's server metadata), {} when it has none. */
  instanceMetadata(instanceId: string): Promise<Record<string, string>>;
  /** Every instance's metadata, by instance id (instances without any are absent). */
  allInstanceMetadata(): Promise<Map<string, Record<string, string>>>;
  /**
   * Writes the instance's metadata in one transaction: `replace` drops every key not in `items` (Nova's
   * PUT /metadata, rebuild, create), otherwise the items are merged in. `check` sees the result before
   * it is written and may throw (nothing is written then). Returns the metadata as written.
   */
  writeInstanceMetadata(
    instanceId: string,
    items: Record<string, string>,
    options: { replace: boolean; check?: (result: Record<string, string>) => void }
  ): Promise<Record<string, string>>;
  /** Removes one key; false when the instance had no such key. */
  deleteInstanceMetadataKey(instanceId: string, key: string): Promise<boolean>;
  /** The instance's attributes (all null when none were set). */
  instanceAttributes(instanceId: string): Promise<InstanceAttributes>;
  allInstanceAttributes(): Promise<Map<string, InstanceAttributes>>;
  /** Sets the attributes given (undefined: left as they are). */
  setInstanceAttributes(instanceId: string, patch: Partial<InstanceAttributes>): Promise<void>;
  /** The integer id of (kind, key), assigned on first use (1, 2, 3 … per kind) and never changed. */
  integerId(kind: string, key: string): Promise<number>;
  /** The key of an integer id, if one was assigned. */
  keyOfInteger(kind: string, id: number): Promise<string | undefined>;
}

function attributesOf(row: Selectable<ApiInstanceAttributesTable>): InstanceAttributes {
  return {
    accessIPv4: row.access_ipv4,
    accessIPv6: row.access_ipv6,
    diskConfig: row.disk_config === 'AUTO' || row.disk_config === 'MANUAL' ? row.disk_config : null,
  };
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
    async setServerGroupOwner(name, owner, displayName) {
      await db
        .insertInto('api_server_group_owners')
        .values({
          name,
          project_id: owner.projectId,
          user_id: owner.userId,
          created_at: nowIso(),
          display_name: displayName ?? null,
        })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
    },
    async serverGroupOwners() {
      const rows = await db.selectFrom('api_server_group_owners').selectAll().execute();
      return new Map(rows.map((r) => [r.name, { projectId: r.project_id, userId: r.user_id }]));
    },
    async serverGroupDisplayNames() {
      const rows = await db
        .selectFrom('api_server_group_owners')
        .select(['name', 'display_name'])
        .where('display_name', 'is not', null)
        .execute();
      return new Map(rows.map((r) => [r.name, r.display_name ?? r.name]));
    },
    async deleteServerGroupOwner(name) {
      await db.deleteFrom('api_server_group_owners').where('name', '=', name).execute();
    },
    async instanceMetadata(instanceId) {
      const rows = await db
        .selectFrom('api_instance_metadata')
        .select(['key', 'value'])
        .where('instance_id', '=', instanceId)
        .orderBy('key')
        .execute();
      return Object.fromEntries(rows.map((r) => [r.key, r.value]));
    },
    async allInstanceMetadata() {
      const rows = await db.selectFrom('api_instance_metadata').selectAll().orderBy('key').execute();
      const all = new Map<string, Record<string, string>>();
      for (const r of rows) {
        const items = all.get(r.instance_id) ?? {};
        items[r.key] = r.value;
        all.set(r.instance_id, items);
      }
      return all;
    },
    async writeInstanceMetadata(instanceId, items, { replace, check }) {
      return transaction(store, async (trx) => {
        const rows = await trx
          .selectFrom('api_instance_metadata')
          .select(['key', 'value'])
          .where('instance_id', '=', instanceId)
          .execute();
        const result: Record<string, string> = replace ? {} : Object.fromEntries(rows.map((r) => [r.key, r.value]));
        Object.assign(result, items);
        check?.(result);
        await trx.deleteFrom('api_instance_metadata').where('instance_id', '=', instanceId).execute();
        const values = Object.entries(result).map(([key, value]) => ({ instance_id: instanceId, key, value }));
        if (values.length > 0) await trx.insertInto('api_instance_metadata').values(values).execute();
        return result;
      });
    },
    async deleteInstanceMetadataKey(instanceId, key) {
      const res = await db
        .deleteFrom('api_instance_metadata')
        .where('instance_id', '=', instanceId)
        .where('key', '=', key)
        .executeTakeFirst();
      return Number(res.numDeletedRows) > 0;
    },
    async instanceAttributes(instanceId) {
      const row = await db
        .selectFrom('api_instance_attributes')
        .selectAll()
        .where('instance_id', '=', instanceId)
        .executeTakeFirst();
      return row ? attributesOf(row) : { accessIPv4: null, accessIPv6: null, diskConfig: null };
    },
    async allInstanceAttributes() {
      const rows = await db.selectFrom('api_instance_attributes').selectAll().execute();
      return new Map(rows.map((r) => [r.instance_id, attributesOf(r)]));
    },
    async setInstanceAttributes(instanceId, patch) {
      const set = {
        ...(patch.accessIPv4 !== undefined ? { access_ipv4: patch.accessIPv4 } : {}),
        ...(patch.accessIPv6 !== undefined ? { access_ipv6: patch.accessIPv6 } : {}),
        ...(patch.diskConfig !== undefined ? { disk_config: patch.diskConfig } : {}),
      };
      if (Object.keys(set).length === 0) return;
      await db
        .insertInto('api_instance_attributes')
        .values({ instance_id: instanceId, access_ipv4: null, access_ipv6: null, disk_config: null, ...set })
        .onConflict((oc) => oc.column('instance_id').doUpdateSet(set))
        .execute();
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
