/** Server groups: a policy and the (not deleted) instances that are members. */
import { InvalidRequest } from '../../domain/errors';
import type { ServerGroupPolicy } from '../../domain/host';
import type { Store } from '../db';
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

  async function getServerGroup(name: string): Promise<ServerGroup | undefined> {
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
    await db
      .insertInto('server_groups')
      .values({ name, policy, created_at: nowIso() })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
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

  async function deleteServerGroup(name: string): Promise<boolean> {
    const result = await db.deleteFrom('server_groups').where('name', '=', name).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  return { ensureServerGroup, getServerGroup, listServerGroups, deleteServerGroup };
}
