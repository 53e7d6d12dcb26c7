/**
 * Server metadata (nova/api/openstack/compute/server_metadata.py): GET/POST/PUT /servers/{id}/metadata,
 * GET/PUT/DELETE /servers/{id}/metadata/{key}, and the checks create and rebuild share: Nova's schema
 * (keys of 1–255 characters from `[a-zA-Z0-9-_:. ]`, string values of at most 255) and the
 * metadata_items quota (128 by default, 403 beyond). Stored in the API's table (migration 0009).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { InstanceRecord } from '../../domain/instance';
import type { ApiDeps } from '../deps';
import { ApiFault, badRequest, conflict, notFound } from '../errors';
import { requireMember } from './common';
import { visibleServer } from './tenancy';

/** Nova's default `[quota] metadata_items`. */
export const METADATA_ITEMS_QUOTA = 128;

const KEY = /^[a-zA-Z0-9-_:. ]{1,255}$/;

/** The metadata object of a request, as Nova's schema checks it: 400 (Nova's message form) otherwise. */
export function checkMetadata(value: unknown, field = 'metadata'): Record<string, string> {
  const invalid = (why: string) => badRequest(`Invalid input for field/attribute ${field}. ${why}`);
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(`Value: ${JSON.stringify(value)}. ${JSON.stringify(value)} is not of type 'object'`);
  const items: Record<string, string> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (!KEY.test(key))
      throw invalid(`Value: ${JSON.stringify(value)}. Additional properties are not allowed ('${key}' was unexpected)`);
    if (typeof v !== 'string')
      throw invalid(`Value: ${JSON.stringify(v)}. ${JSON.stringify(v)} is not of type 'string'`);
    if (v.length > 255) throw invalid(`Value: ${v}. '${v}' is too long`);
    items[key] = v;
  }
  return items;
}

/** Nova's metadata_items quota check (MetadataLimitExceeded, an OverQuota: 403). */
export function checkMetadataQuota(items: Record<string, string>): void {
  if (Object.keys(items).length > METADATA_ITEMS_QUOTA)
    throw new ApiFault(403, `Maximum number of metadata items exceeds ${METADATA_ITEMS_QUOTA}`);
}

/** Nova's update/delete_instance_metadata: the server must rest in one of these vm states with no task. */
function checkState(record: InstanceRecord, action: string): void {
  const refuse = (attr: string, state: string | null) =>
    conflict(`Cannot '${action}' instance ${record.instanceId} while it is in ${attr} ${state}`);
  if (!['active', 'paused', 'suspended', 'stopped'].includes(record.vmState)) throw refuse('vm_state', record.vmState);
  if (record.taskState !== null) throw refuse('task_state', record.taskState);
}

const Id = z.object({ id: z.string() });
const IdKey = z.object({ id: z.string(), key: z.string() });
const MetadataBody = z.object({ metadata: z.unknown() }).passthrough();
const MetaBody = z.object({ meta: z.unknown() }).passthrough();

export function registerServerMetadata(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['server metadata'];

  async function write(req: FastifyRequest, id: string, items: Record<string, string>, replace: boolean) {
    requireMember(req);
    const { record } = await visibleServer(deps, req, id);
    checkState(record, 'update metadata');
    return deps.api.writeInstanceMetadata(record.instanceId, items, { replace, check: checkMetadataQuota });
  }

  r.get('/servers/:id/metadata', { schema: { tags, summary: 'List server metadata', params: Id } }, async (req) => {
    const { record } = await visibleServer(deps, req, req.params.id);
    return { metadata: await deps.api.instanceMetadata(record.instanceId) };
  });
  r.post(
    '/servers/:id/metadata',
    { schema: { tags, summary: 'Create or update server metadata items', params: Id, body: MetadataBody } },
    async (req) => ({ metadata: await write(req, req.params.id, checkMetadata(req.body.metadata), false) })
  );
  r.put(
    '/servers/:id/metadata',
    { schema: { tags, summary: 'Replace the server metadata', params: Id, body: MetadataBody } },
    async (req) => ({ metadata: await write(req, req.params.id, checkMetadata(req.body.metadata), true) })
  );
  r.get(
    '/servers/:id/metadata/:key',
    { schema: { tags, summary: 'Show a server metadata item', params: IdKey } },
    async (req) => {
      const { record } = await visibleServer(deps, req, req.params.id);
      const items = await deps.api.instanceMetadata(record.instanceId);
      if (!Object.hasOwn(items, req.params.key)) throw notFound('Metadata item was not found');
      return { meta: { [req.params.key]: items[req.params.key] } };
    }
  );
  r.put(
    '/servers/:id/metadata/:key',
    { schema: { tags, summary: 'Create or update a server metadata item', params: IdKey, body: MetaBody } },
    async (req) => {
      const meta = checkMetadata(req.body.meta, 'meta');
      if (Object.keys(meta).length !== 1)
        throw badRequest(`Invalid input for field/attribute meta. Value: ${JSON.stringify(meta)}. Must hold one item`);
      if (!Object.hasOwn(meta, req.params.key)) throw badRequest('Request body and URI mismatch');
      await write(req, req.params.id, meta, false);
      return { meta };
    }
  );
  r.delete(
    '/servers/:id/metadata/:key',
    { schema: { tags, summary: 'Delete a server metadata item', params: IdKey } },
    async (req, reply) => {
      requireMember(req);
      const { record } = await visibleServer(deps, req, req.params.id);
      const items = await deps.api.instanceMetadata(record.instanceId);
      if (!Object.hasOwn(items, req.params.key)) throw notFound('Metadata item was not found');
      checkState(record, 'delete metadata');
      await deps.api.deleteInstanceMetadataKey(record.instanceId, req.params.key);
      return reply.status(204).send();
    }
  );
}
