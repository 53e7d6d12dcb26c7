/**
 * os-server-groups: create, list, show, delete through the `serverGroup` workflow (the conductor is the
 * store's one writer). The conductor keys groups by a unique name: the API creates each group under a
 * fresh key (a UUID) and keeps the name the client gave, with the owner (project, user), so names are not
 * unique, as in Nova. Ids are UUIDv5 of the key. NOTE(nova): a group that still has members is not
 * deleted (409).
 */
import { randomUUID } from 'node:crypto';

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { ServerGroup } from '../../store/instances';
import { workflowIds } from '../../shared/task-queues';
import type { Owner } from '../../store/api';
import type { ApiDeps } from '../deps';
import { badRequest, notFound } from '../errors';
import { serverGroupId } from '../ids';
import { atLeast } from '../microversion';
import { execute } from '../operations';
import { isAdmin } from '../tokens';
import { caller, requireMember } from './common';
import { requestIdOf } from './request-id';
import { ownerOrAdmin } from './tenancy';

function groupView(req: FastifyRequest, g: ServerGroup, owner: Owner, name: string) {
  return {
    id: serverGroupId(g.name),
    name,
    policies: [g.policy],
    members: g.members,
    metadata: {},
    ...(atLeast(req.apiVersion, '2.13') ? { project_id: owner.projectId, user_id: owner.userId } : {}),
  };
}

const CreateBody = z.object({
  server_group: z
    .object({
      name: z.string().min(1).max(255),
      policies: z.array(z.string()).length(1),
    })
    .strict(),
});

async function visibleGroups(deps: ApiDeps, req: FastifyRequest, all: boolean) {
  const who = caller(req);
  const owners = await deps.api.serverGroupOwners();
  const names = await deps.api.serverGroupDisplayNames();
  const groups = await deps.instances.listServerGroups();
  return groups
    .map((g) => ({ group: g, owner: ownerOrAdmin(owners.get(g.name)), name: names.get(g.name) ?? g.name }))
    .filter(({ owner }) => (isAdmin(who) && all) || owner.projectId === who.projectId);
}

async function findGroup(deps: ApiDeps, req: FastifyRequest, id: string) {
  const found = (await visibleGroups(deps, req, true)).find(({ group }) => serverGroupId(group.name) === id);
  const who = caller(req);
  if (!found || (!isAdmin(who) && found.owner.projectId !== who.projectId))
    throw notFound(`Server group ${id} could not be found.`);
  return found;
}

export function registerServerGroups(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/os-server-groups',
    {
      schema: {
        tags: ['server groups'],
        summary: 'List server groups',
        querystring: z
          .object({ all_projects: z.string().optional(), limit: z.string().optional(), offset: z.string().optional() })
          .passthrough(),
      },
    },
    async (req) => {
      const all = req.query.all_projects !== undefined && !['0', 'false', 'False'].includes(req.query.all_projects);
      const offset = Number(req.query.offset ?? 0) || 0;
      const limit = req.query.limit === undefined ? undefined : Number(req.query.limit);
      const groups = (await visibleGroups(deps, req, all)).slice(
        offset,
        limit === undefined ? undefined : offset + limit
      );
      return { server_groups: groups.map(({ group, owner, name }) => groupView(req, group, owner, name)) };
    }
  );
  r.post(
    '/os-server-groups',
    { schema: { tags: ['server groups'], summary: 'Create a server group', body: CreateBody } },
    async (req) => {
      const who = requireMember(req);
      const { name, policies } = req.body.server_group;
      const policy = policies[0];
      if (policy !== 'affinity' && policy !== 'anti-affinity')
        throw badRequest(
          `Invalid input for field/attribute 0. Value: ${policy}. '${policy}' is not one of ['anti-affinity', 'affinity']`
        );
      const owner = { projectId: who.projectId, userId: who.userId };
      // The owner and name first: the group is never visible to another project, even for a moment.
      const key = randomUUID();
      await deps.api.setServerGroupOwner(key, owner, name);
      const workflowId = workflowIds.serverGroup('create', requestIdOf());
      req.requestId = workflowId;
      const { groups } = await execute(deps, 'serverGroup', workflowId, { action: 'create', name: key, policy }).catch(
        async (err: unknown) => {
          await deps.api.deleteServerGroupOwner(key);
          throw err;
        }
      );
      return { server_group: groupView(req, groups[0]!, owner, name) };
    }
  );
  r.get(
    '/os-server-groups/:id',
    { schema: { tags: ['server groups'], summary: 'Show a server group', params: z.object({ id: z.string() }) } },
    async (req) => {
      const { group, owner, name } = await findGroup(deps, req, req.params.id);
      return { server_group: groupView(req, group, owner, name) };
    }
  );
  r.delete(
    '/os-server-groups/:id',
    { schema: { tags: ['server groups'], summary: 'Delete a server group', params: z.object({ id: z.string() }) } },
    async (req, reply) => {
      requireMember(req);
      const { group } = await findGroup(deps, req, req.params.id);
      const workflowId = workflowIds.serverGroup('delete', requestIdOf());
      req.requestId = workflowId;
      await execute(deps, 'serverGroup', workflowId, { action: 'delete', name: group.name });
      await deps.api.deleteServerGroupOwner(group.name);
      return reply.status(204).send();
    }
  );
}
