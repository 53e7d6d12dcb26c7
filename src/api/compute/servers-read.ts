/** GET /servers, /servers/detail, /servers/{id}: Nova's common filters, sorting and paging, per project. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { InstanceRecord } from '../../domain/instance';
import type { ApiDeps } from '../deps';
import { badRequest } from '../errors';
import { imageId } from '../ids';
import { isAdmin } from '../tokens';
import { caller, page, parseLimit } from './common';
import { serverSummary, serverView, vmStatesOf } from './server-view';
import { ownerOrAdmin, visibleServer } from './tenancy';

const ListQuery = z
  .object({
    name: z.string().optional(),
    status: z.string().optional(),
    host: z.string().optional(),
    node: z.string().optional(),
    flavor: z.string().optional(),
    image: z.string().optional(),
    availability_zone: z.string().optional(),
    all_tenants: z.string().optional(),
    project_id: z.string().optional(),
    tenant_id: z.string().optional(),
    user_id: z.string().optional(),
    deleted: z.string().optional(),
    'changes-since': z.string().optional(),
    limit: z.string().optional(),
    marker: z.string().optional(),
    sort_key: z.string().optional(),
    sort_dir: z.string().optional(),
  })
  .passthrough();
type ListQuery = z.infer<typeof ListQuery>;

const SORT_KEYS: Record<string, (r: InstanceRecord) => string> = {
  created_at: (r) => r.createdAt,
  updated_at: (r) => r.updatedAt,
  display_name: (r) => r.name,
  uuid: (r) => r.instanceId,
  vm_state: (r) => r.vmState,
  host: (r) => r.host ?? '',
  instance_type_id: (r) => r.flavor,
  availability_zone: (r) => r.availabilityZone ?? '',
};

/** The servers the caller may list with the query's filters, sorted and paged (Nova's defaults: created_at desc). */
async function listServers(deps: ApiDeps, req: FastifyRequest, q: ListQuery) {
  const who = caller(req);
  const admin = isAdmin(who);
  const truthy = (s: string | undefined) =>
    s !== undefined && !['0', 'false', 'f', 'no', 'off'].includes(s.toLowerCase());
  const allTenants = admin && q.all_tenants !== undefined && (q.all_tenants === '' || truthy(q.all_tenants));
  const owners = await deps.api.instanceOwners();
  const wantDeleted = admin && truthy(q.deleted);
  let servers = (await deps.instances.list()).filter((r) =>
    wantDeleted ? r.vmState === 'deleted' : r.vmState !== 'deleted'
  );
  const projectOf = (r: InstanceRecord) => ownerOrAdmin(owners.get(r.instanceId)).projectId;
  // NOTE(nova): a project filter (project_id, tenant_id) counts only with all_tenants (Tempest's
  // test_list_servers_by_admin_with_specified_tenant); without it, the caller's own project.
  const project = allTenants ? (q.project_id ?? q.tenant_id) : undefined;
  if (!allTenants || project !== undefined)
    servers = servers.filter((r) => projectOf(r) === (project ?? who.projectId));
  if (q.name !== undefined) {
    let re: RegExp;
    try {
      re = new RegExp(q.name);
    } catch {
      throw badRequest(`Invalid filter name: '${q.name}' is not a valid regular expression.`);
    }
    servers = servers.filter((r) => re.test(r.name));
  }
  if (q.status !== undefined) {
    const states = vmStatesOf(q.status);
    servers = servers.filter((r) => states.includes(r.vmState));
  }
  if (admin && q.host !== undefined) servers = servers.filter((r) => r.host === q.host);
  if (admin && q.node !== undefined) servers = servers.filter((r) => r.host === q.node);
  if (q.flavor !== undefined) servers = servers.filter((r) => r.flavor === q.flavor);
  if (q.image !== undefined) servers = servers.filter((r) => imageId(r.image) === q.image || r.image === q.image);
  if (q.availability_zone !== undefined) servers = servers.filter((r) => r.availabilityZone === q.availability_zone);
  if (q.user_id !== undefined) servers = servers.filter((r) => owners.get(r.instanceId)?.userId === q.user_id);
  if (q['changes-since'] !== undefined) {
    const since = Date.parse(q['changes-since']);
    if (Number.isNaN(since)) throw badRequest(`Invalid filter changes-since: '${q['changes-since']}'.`);
    servers = servers.filter((r) => Date.parse(r.updatedAt) >= since);
  }
  const key = SORT_KEYS[q.sort_key ?? 'created_at'];
  if (!key) throw badRequest(`Invalid sort_key ${q.sort_key}`);
  const dir = (q.sort_dir ?? 'desc') === 'asc' ? 1 : -1;
  servers.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka !== kb) return ka < kb ? -dir : dir;
    return a.instanceId < b.instanceId ? -dir : a.instanceId > b.instanceId ? dir : 0;
  });
  const paged = page(servers, (r) => r.instanceId, parseLimit(q.limit), q.marker);
  if (paged.markerMissing) throw badRequest(`marker [${q.marker}] not found`);
  return { servers: paged.items, more: paged.more, owners };
}

function nextLink(deps: ApiDeps, detail: boolean, q: ListQuery, last: InstanceRecord | undefined) {
  if (!last) return {};
  return {
    servers_links: [
      {
        rel: 'next',
        href: `${deps.publicUrl}/compute/v2.1/servers${detail ? '/detail' : ''}?limit=${q.limit}&marker=${last.instanceId}`,
      },
    ],
  };
}

export function registerServerReads(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/servers', { schema: { tags: ['servers'], summary: 'List servers', querystring: ListQuery } }, async (req) => {
    const { servers, more } = await listServers(deps, req, req.query);
    return {
      servers: servers.map((s) => serverSummary(deps, s)),
      ...(more ? nextLink(deps, false, req.query, servers[servers.length - 1]) : {}),
    };
  });
  r.get(
    '/servers/detail',
    { schema: { tags: ['servers'], summary: 'List servers with details', querystring: ListQuery } },
    async (req) => {
      const { servers, more, owners } = await listServers(deps, req, req.query);
      const up = new Map((await deps.hostStates()).map((h) => [h.host, h.up]));
      const metadata = await deps.api.allInstanceMetadata();
      const attributes = await deps.api.allInstanceAttributes();
      const flavors = new Map((await deps.instances.listFlavors({ includeDeleted: true })).map((f) => [f.id, f]));
      const bodies = await Promise.all(
        servers.map(async (s) =>
          serverView(deps, req, s, {
            owner: ownerOrAdmin(owners.get(s.instanceId)),
            metadata: metadata.get(s.instanceId) ?? {},
            ...(attributes.has(s.instanceId) ? { attributes: attributes.get(s.instanceId) } : {}),
            ...(flavors.has(s.flavor) ? { flavor: flavors.get(s.flavor) } : {}),
            actions: await deps.instances.listActions(s.instanceId),
            faults: s.vmState === 'error' ? await deps.instances.listFaults(s.instanceId) : [],
            ...(s.host ? { hostUp: up.get(s.host) ?? false } : {}),
          })
        )
      );
      return { servers: bodies, ...(more ? nextLink(deps, true, req.query, servers[servers.length - 1]) : {}) };
    }
  );
  r.get(
    '/servers/:id',
    { schema: { tags: ['servers'], summary: 'Show a server', params: z.object({ id: z.string() }) } },
    async (req) => ({ server: await showServer(deps, req, req.params.id) })
  );
}

/** The server's full body for the caller (404 when not theirs or deleted). */
export async function showServer(deps: ApiDeps, req: FastifyRequest, id: string): Promise<Record<string, unknown>> {
  const { record, owner } = await visibleServer(deps, req, id);
  const host = record.host ? (await deps.hostStates()).find((h) => h.host === record.host) : undefined;
  const stored = await deps.instances.findFlavor(record.flavor, { includeDeleted: true });
  return serverView(deps, req, record, {
    owner,
    metadata: await deps.api.instanceMetadata(id),
    attributes: await deps.api.instanceAttributes(id),
    ...(stored ? { flavor: stored } : {}),
    actions: await deps.instances.listActions(id),
    faults: await deps.instances.listFaults(id),
    ...(record.host ? { hostUp: host?.up ?? false } : {}),
  });
}
