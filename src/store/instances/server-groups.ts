/** Server groups: a policy and the (not deleted) instances that are members. */
import { InvalidRequest } from '../../domain/errors';
import type { ServerGroupPolicy } from '../../domain/host';
import type { Kysely } from 'kysely';

import type { Store } from '../db';
import { atomically, notifyServerGroup } from '../notifications';
import type { Database } from '../schema';
import { nowIso } from '../util';
import type { InstanceRepository } from './index';

export interface ServerGroup {
  name: string;
  policy: ServerGroupPolicy;
  /** Instance ids of the group's members (not deleted), by creation. */
  members: string[];
  /** Hosts of those members (sorted, no duplicates). */
  hosts: string[];
}

export type ServerGroups = Pick<
  InstanceRepository,
  'ensureServerGroup' | 'getServerGroup' | 'listServerGroups' | 'deleteServerGroup'
>;

export function createServerGroups(store: Store): ServerGroups {
  const db = store.db;

  const getServerGroup = (name: string) => getServerGroupIn(db, name);

  async function getServerGroupIn(db: Kysely<Database>, name: string): Promise<ServerGroup | undefined> {
    const group = await db.selectFrom('server_groups').selectAll().where('name', '=', name).executeTakeFirst();
    if (group === undefined) return undefined;
    const members = await db
      .selectFrom('instances')
      .select(['instance_id', 'host'])
      .where('server_group', '=', name)
      .where('vm_state', '!=', 'deleted')
      .orderBy('created_at')
      .orderBy('instance_id')
      .execute();
    const hosts = [...new Set(members.flatMap((m) => (m.host === null ? [] : [m.host])))].sort();
    return {
      name: group.name,
      policy: group.policy as ServerGroupPolicy,
      members: members.map((m) => m.instance_id),
      hosts,
    };
  }

  async function ensureServerGroup(name: string, policy: ServerGroupPolicy): Promise<ServerGroup> {
    await atomically(store, async (db) => {
      const created = await db
        .insertInto('server_groups')
        .values({ name, policy, created_at: nowIso() })
        .onConflict((oc) => oc.column('name').doNothing())
        .returning('name')
        .executeTakeFirst();
      if (created) await notifyServerGroup(store, db, 'server_group.create', { name, policy, members: [] });
    });
    const group = (await getServerGroup(name))!;
    if (group.policy !== policy)
      throw new InvalidRequest(
        'serverGroup.policy',
        `server group '${name}' exists with policy ${group.policy}, not ${policy}`
      );
    return group;
  }

  async function listServerGroups(): Promise<ServerGroup[]> {
    const names = await db.selectFrom('server_groups').select('name').orderBy('name').execute();
    const groups = await Promise.all(names.map((n) => getServerGroup(n.name)));
    return groups.filter((g): g is ServerGroup => g !== undefined);
  }

  function deleteServerGroup(name: string): Promise<boolean> {
    return atomically(store, async (db) => {
      const group = await getServerGroupIn(db, name);
      const result = await db.deleteFrom('server_groups').where('name', '=', name).executeTakeFirst();
      const deleted = Number(result.numDeletedRows) > 0;
      if (deleted && group) await notifyServerGroup(store, db, 'server_group.delete', group);
      return deleted;
    });
  }

  return { ensureServerGroup, getServerGroup, listServerGroups, deleteServerGroup };
}

/** server_group.add_member: an instance made in a group joined it (in the caller's transaction). */
export async function notifyMemberAdded(
  store: Store,
  db: Kysely<Database>,
  group: string,
  instanceId: string
): Promise<void> {
  const row = await db.selectFrom('server_groups').select('policy').where('name', '=', group).executeTakeFirst();
  if (row === undefined) return;
  await notifyServerGroup(store, db, 'server_group.add_member', {
    name: group,
    policy: row.policy,
    members: [instanceId],
  });
}
