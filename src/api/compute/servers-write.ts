/**
 * POST /servers (one, or several with min_count / max_count) and DELETE /servers/{id}: the buildInstance
 * and deleteInstance workflows the CLIs start, answered once the records exist (a create) or the delete
 * holds the instance. A request that can only fail is refused before anything is started or written.
 */
import { randomBytes, randomUUID } from 'node:crypto';

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import { InvalidRequest } from '../../domain/errors';
import type { BuildInstanceInput } from '../../domain/schemas';
import { batchSize, BuildInstanceInputSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import { workflowIds } from '../../shared/task-queues';
import type { ApiDeps } from '../deps';
import { badRequest } from '../errors';
import { serverGroupId } from '../ids';
import { atLeast } from '../microversion';
import { awaitAccept, startAndAccept } from '../operations';
import { startConductorWorkflow } from '../../workers/workflow-client';
import { isAdmin } from '../tokens';
import { links, requireMember } from './common';
import { findImage } from '../images';
import { requestIdOf } from './request-id';
import { findApiFlavor } from './flavors';
import { attributesOf } from './server-attributes';
import { checkMetadata, checkMetadataQuota } from './server-metadata';
import { showServer } from './servers-read';
import { visibleServer } from './tenancy';

const refOf = (ref: string) => ref.replace(/\/+$/, '').split('/').pop() ?? ref;

const Hints = z
  .object({
    group: z.string().optional(),
    same_host: z.union([z.string(), z.array(z.string())]).optional(),
    different_host: z.union([z.string(), z.array(z.string())]).optional(),
  })
  .passthrough();

const CreateBody = z.object({
  server: z
    .object({
      name: z.string().min(1).max(255),
      imageRef: z.string().optional(),
      flavorRef: z.union([z.string(), z.number()]),
      min_count: z.coerce.number().int().min(1).optional(),
      max_count: z.coerce.number().int().min(1).optional(),
      networks: z.union([z.literal('auto'), z.literal('none'), z.array(z.record(z.string(), z.unknown()))]).optional(),
      availability_zone: z.string().optional(),
      block_device_mapping_v2: z.array(z.record(z.string(), z.unknown())).optional(),
      metadata: z.record(z.string(), z.unknown()).optional(),
      adminPass: z.string().optional(),
      user_data: z.string().optional(),
      key_name: z.string().optional(),
      security_groups: z.array(z.object({ name: z.string() })).optional(),
      config_drive: z.union([z.boolean(), z.string()]).optional(),
      accessIPv4: z.string().nullable().optional(),
      accessIPv6: z.string().nullable().optional(),
      'OS-DCF:diskConfig': z.enum(['AUTO', 'MANUAL']).optional(),
      description: z.string().nullable().optional(),
      tags: z.array(z.string()).optional(),
      return_reservation_id: z.boolean().optional(),
    })
    .passthrough(),
  'OS-SCH-HNT:scheduler_hints': Hints.optional(),
  'os:scheduler_hints': Hints.optional(),
});
type CreateBody = z.infer<typeof CreateBody>;

/** Nova's server name on update and rebuild: 1–255 characters, not only spaces. */
export const ServerName = z.string().min(1).max(255);

const UpdateBody = z.object({ server: z.object({ name: ServerName.optional() }).passthrough() });

/** Sets the server's name (the name alone: no workflow holds or writes it after the create). */
export async function renameServer(deps: ApiDeps, instanceId: string, name: string): Promise<void> {
  if (name.trim() === '') throw badRequest('Invalid input for field/attribute name. Value: must not be blank');
  await deps.instances.update(instanceId, { name: name.trim() });
}

const list = (v: string | string[] | undefined) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

/** The build input of a create request, checked: 400 for anything this conductor cannot do. */
async function buildInput(deps: ApiDeps, req: FastifyRequest, body: CreateBody): Promise<BuildInstanceInput> {
  const s = body.server;
  const v = req.apiVersion;
  if (atLeast(v, '2.37') && s.networks === undefined)
    throw badRequest("Invalid input for field/attribute networks. 'networks' is a required property");
  // NOTE(nova): no networking here: a list of networks or ports is refused (see the README's deviations).
  if (Array.isArray(s.networks) && s.networks.length > 0)
    throw badRequest('Networks are not supported by this conductor: use "auto" or "none".');
  // NOTE(nova): no key pairs or tags are kept here: asking for them is a 400.
  if (s.key_name !== undefined) throw badRequest('Invalid key_name provided.');
  if (s.metadata !== undefined) checkMetadataQuota(checkMetadata(s.metadata));
  if (s.tags && s.tags.length > 0) throw badRequest('Server tags are not supported by this conductor.');
  let image = s.imageRef ? refOf(s.imageRef) : undefined;
  for (const bdm of s.block_device_mapping_v2 ?? []) {
    if (bdm.destination_type === 'volume' || (bdm.source_type !== undefined && bdm.source_type !== 'image'))
      throw badRequest('Block device mappings other than the boot image are not supported by this conductor.');
    if (image === undefined && typeof bdm.uuid === 'string') image = bdm.uuid;
  }
  if (!image) throw badRequest('Missing imageRef attribute');
  const imageEntry = findImage(deps, image);
  if (!imageEntry) throw badRequest(`Image ${image} could not be found.`);
  const flavorRef = refOf(String(s.flavorRef));
  if (!(await findApiFlavor(deps, flavorRef))) throw badRequest(`Flavor ${flavorRef} could not be found.`);
  const minCount = s.min_count ?? 1;
  const maxCount = s.max_count ?? minCount;
  if (maxCount < minCount) throw badRequest('min_count must be <= max_count');
  let zone = s.availability_zone;
  let host: string | undefined;
  if (zone?.includes(':')) {
    if (!isAdmin(req.auth!)) throw badRequest('Requesting a host is an admin action (availability_zone zone:host).');
    const [z0, h] = zone.split(':', 2);
    zone = z0 || undefined;
    host = h || undefined;
  }
  if (host) {
    const known = (await deps.hostStates()).some((h) => h.host === host);
    if (!known) throw badRequest(`Compute host ${host} could not be found.`);
  }
  const hints = body['OS-SCH-HNT:scheduler_hints'] ?? body['os:scheduler_hints'] ?? {};
  let group: string | undefined;
  if (hints.group !== undefined) {
    const groups = await deps.instances.listServerGroups();
    const owners = await deps.api.serverGroupOwners();
    const found = groups.find((g) => serverGroupId(g.name) === hints.group);
    const who = req.auth!;
    if (!found || (!isAdmin(who) && owners.get(found.name)?.projectId !== who.projectId))
      throw badRequest(`Invalid input for field/attribute group. Server group ${hints.group} not found.`);
    group = found.name;
  }
  const sameHost = list(hints.same_host);
  const differentHost = list(hints.different_host);
  const schedulerHints = {
    ...(group ? { group } : {}),
    ...(sameHost ? { sameHost } : {}),
    ...(differentHost ? { differentHost } : {}),
  };
  // NOTE(nova): max_count is a ceiling (as many as there is room for, at least min_count), as the
  // multi-create workflow does.
  const several = maxCount > 1;
  const input: BuildInstanceInput = {
    name: s.name,
    flavor: flavorRef,
    image: imageEntry.name,
    ...(several ? { minCount, maxCount } : {}),
    ...(zone ? { availabilityZone: zone } : {}),
    ...(host ? { host } : {}),
    schedulerHints,
    ...(s.user_data !== undefined ? { userData: s.user_data } : {}),
  };
  try {
    parseOrInvalid(BuildInstanceInputSchema, { ...input, adminPassword: 'checked' });
  } catch (err) {
    if (err instanceof InvalidRequest) throw badRequest(err.message);
    throw err;
  }
  return input;
}

export function registerServerWrites(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/servers',
    { schema: { tags: ['servers'], summary: 'Create a server (or several)', body: CreateBody } },
    async (req, reply) => {
      const who = requireMember(req);
      const input = await buildInput(deps, req, req.body);
      const adminPass = req.body.server.adminPass ?? randomBytes(9).toString('base64url');
      const owner = { projectId: who.projectId, userId: who.userId };
      const metadata = req.body.server.metadata === undefined ? {} : checkMetadata(req.body.server.metadata);
      const attributes = attributesOf(req.body.server);
      // What the client set and Nova echoes, written before the workflow starts (as the owner).
      const setMetadata = async (instanceId: string) => {
        if (Object.keys(metadata).length > 0)
          await deps.api.writeInstanceMetadata(instanceId, metadata, { replace: true });
        await deps.api.setInstanceAttributes(instanceId, attributes);
      };
      const { max } = batchSize(input);
      let firstId: string;
      if (max === 1) {
        const instanceId = randomUUID();
        const workflowId = workflowIds.buildInstance(instanceId);
        req.requestId = workflowId;
        // The owner first: the instance is never visible to another project, even for a moment.
        await deps.api.setInstanceOwner(instanceId, owner);
        await setMetadata(instanceId);
        await startAndAccept(
          deps,
          'buildInstance',
          workflowId,
          { ...input, instanceId, adminPassword: adminPass },
          async () => Boolean(await deps.instances.find(instanceId))
        );
        firstId = instanceId;
      } else {
        const workflowId = workflowIds.buildInstance(randomUUID());
        req.requestId = workflowId;
        const handle = await startConductorWorkflow(await deps.temporal(), 'buildInstance', workflowId, [
          { ...input, adminPassword: adminPass },
        ]);
        // Every record of the batch is created first, each named by its child's workflow id.
        const found = new Map<number, string>();
        await awaitAccept(deps, handle, async () => {
          for (let i = 1; i <= max; i++) {
            if (found.has(i)) continue;
            const action = await deps.instances.findActionByRequest('create', workflowIds.batchMember(workflowId, i));
            if (action) {
              await deps.api.setInstanceOwner(action.instanceId, owner);
              await setMetadata(action.instanceId);
              found.set(i, action.instanceId);
            }
          }
          return found.size === max;
        });
        const first = found.get(1);
        if (!first) throw badRequest('The request created no instance.');
        firstId = first;
        if (req.body.server.return_reservation_id) return reply.status(202).send({ reservation_id: `r-${workflowId}` });
      }
      return reply.status(202).send({
        server: {
          id: firstId,
          links: links(deps, `servers/${firstId}`),
          'OS-DCF:diskConfig': attributes.diskConfig ?? 'MANUAL',
          security_groups: [{ name: 'default' }],
          adminPass,
        },
      });
    }
  );

  // PUT /servers/{id}: a rename (Nova's update writes the instance's display_name from the API).
  r.put(
    '/servers/:id',
    {
      schema: {
        tags: ['servers'],
        summary: 'Update (rename) a server',
        params: z.object({ id: z.string() }),
        body: UpdateBody,
      },
    },
    async (req) => {
      requireMember(req);
      const s = req.body.server;
      // NOTE(nova): descriptions and hostnames are not kept here: the name, access IPs and disk config can change.
      for (const key of ['description', 'hostname'])
        if (s[key] !== undefined) throw badRequest(`Updating ${key} is not supported by this conductor.`);
      const attributes = attributesOf(s);
      if (s.name !== undefined && s.name.trim() === '')
        throw badRequest('Invalid input for field/attribute name. Value: must not be blank');
      const { record } = await visibleServer(deps, req, req.params.id);
      if (s.name !== undefined) await renameServer(deps, record.instanceId, s.name);
      await deps.api.setInstanceAttributes(record.instanceId, attributes);
      return { server: await showServer(deps, req, record.instanceId) };
    }
  );

  r.delete(
    '/servers/:id',
    { schema: { tags: ['servers'], summary: 'Delete a server', params: z.object({ id: z.string() }) } },
    async (req, reply) => {
      requireMember(req);
      const { record } = await visibleServer(deps, req, req.params.id);
      const instanceId = record.instanceId;
      const workflowId = workflowIds.deleteInstance(instanceId, requestIdOf());
      req.requestId = workflowId;
      await startAndAccept(deps, 'deleteInstance', workflowId, { instanceId }, async () => {
        const now = await deps.instances.find(instanceId);
        return !now || now.taskOwner === workflowId || now.vmState === 'deleted';
      });
      return reply.status(204).send();
    }
  );
}
