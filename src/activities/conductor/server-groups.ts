/**
 * Conductor activities of server groups (Nova's os-server-groups API, and the compute's late check
 * `_validate_instance_group_policy`). The conductor is the store's one writer, so the compute asks here.
 */
import { z } from 'zod';

import { GroupAffinityViolation, ServerGroupInUse, ServerGroupNotFound } from '../../domain/errors';
import { ServerGroupPolicy } from '../../domain/host';
import { HostNameSchema, InstanceIdSchema, ServerGroupNameSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { ServerGroup } from '../../store/instances';
import type { ConductorDeps } from './deps';
import { onceWriter } from './deps';

export type { ServerGroup };

const CreateSchema = z
  .object({ name: ServerGroupNameSchema, policy: z.enum([ServerGroupPolicy.Affinity, ServerGroupPolicy.AntiAffinity]) })
  .strict();
const NameSchema = z.object({ name: ServerGroupNameSchema }).strict();
const CheckSchema = z.object({ instanceId: InstanceIdSchema, host: HostNameSchema }).strict();

export function createServerGroupActivities(deps: ConductorDeps) {
  const { instances } = deps;
  const once = onceWriter(deps);

  return {
    /** Creates a group; creating one that exists with the same policy returns it (InvalidRequest otherwise). */
    async createServerGroup(input: z.input<typeof CreateSchema>): Promise<ServerGroup> {
      const { name, policy } = parseOrInvalid(CreateSchema, input);
      return once((repo) => repo.ensureServerGroup(name, policy));
    },

    async listServerGroups(): Promise<ServerGroup[]> {
      return instances.listServerGroups();
    },

    /** The group with its members and their hosts; ServerGroupNotFound when there is none. */
    async getServerGroup(input: z.input<typeof NameSchema>): Promise<ServerGroup> {
      const { name } = parseOrInvalid(NameSchema, input);
      const group = await instances.getServerGroup(name);
      if (!group) throw new ServerGroupNotFound(name);
      return group;
    },

    /**
     * Deletes a group with no member (not deleted) left; ServerGroupInUse names the members otherwise,
     * ServerGroupNotFound when there is none. NOTE(nova): Nova deletes a group with members (they stay
     * without it); here the members name their group, so it would change their policy under them.
     */
    async deleteServerGroup(input: z.input<typeof NameSchema>): Promise<ServerGroup> {
      const { name } = parseOrInvalid(NameSchema, input);
      // Once: a retry after a lost answer gets the group it deleted, not "not found".
      return once(async (repo) => {
        const group = await repo.getServerGroup(name);
        if (!group) throw new ServerGroupNotFound(name);
        if (group.members.length > 0) throw new ServerGroupInUse(name, group.members);
        await repo.deleteServerGroup(name);
        return group;
      });
    },

    /**
     * The late server-group check before an instance is built on `host` (Nova's
     * _validate_instance_group_policy on the compute): the group's other members, as the records say
     * now, must not be on `host` (anti-affinity), or must all be on it (affinity). Throws
     * GroupAffinityViolation; an instance in no group passes. Read-only.
     */
    async checkServerGroupPolicy(input: z.input<typeof CheckSchema>): Promise<{ group: string | null }> {
      const { instanceId, host } = parseOrInvalid(CheckSchema, input);
      const name = (await instances.get(instanceId)).serverGroup;
      if (name === null) return { group: null };
      const group = await instances.getServerGroup(name);
      if (!group) return { group: null };
      const others: Array<{ instanceId: string; host: string }> = [];
      for (const id of group.members) {
        if (id === instanceId) continue;
        const member = await instances.find(id);
        if (member?.host) others.push({ instanceId: id, host: member.host });
      }
      if (group.policy === ServerGroupPolicy.AntiAffinity) {
        const clash = others.find((o) => o.host === host);
        if (clash) throw new GroupAffinityViolation(name, group.policy, host, `member ${clash.instanceId} is there`);
      } else if (others.length > 0 && !others.some((o) => o.host === host)) {
        const hosts = [...new Set(others.map((o) => o.host))].sort().join(', ');
        throw new GroupAffinityViolation(name, group.policy, host, `the members are on ${hosts}`);
      }
      return { group: name };
    },
  };
}
