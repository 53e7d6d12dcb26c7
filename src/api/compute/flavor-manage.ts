/**
 * Nova's flavor-manage, admin only: POST /flavors, DELETE /flavors/{id}, POST /flavors/{id}/os-extra_specs,
 * GET /flavors/{id}/os-flavor-access. Flavors made here are kept in the store (src/store/instances/
 * flavors.ts), where the conductor resolves them for builds and resizes; a deleted one stays for the
 * servers made with it (Nova embeds the flavor in the instance).
 * NOTE(nova): the catalogue file's flavors cannot be deleted here (409: they are defined by the file);
 * swap and ephemeral sizes are kept and shown but not claimed in placement (the root disk is);
 * flavors are all public (os-flavor-access lists nobody).
 */
import { randomUUID } from 'node:crypto';

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { ApiDeps } from '../deps';
import { badRequest, conflict, notFound } from '../errors';
import { atLeast } from '../microversion';
import { requireAdmin } from './common';
import { flavorView, fromStore, requireFlavor } from './flavors';

const ID = /^(?! )[a-zA-Z0-9. _-]+(?<! )$/;
const NAME = /^(?! )[^\p{Cc}]+(?<! )$/u;

/** Nova's flavor numbers: an integer or a string of digits, in [min, max]. */
function count(body: Record<string, unknown>, field: string, min: number, max: number, required: boolean): number {
  const v = body[field];
  if (v === undefined) {
    if (required) throw badRequest(`Invalid input for field/attribute flavor. '${field}' is a required property`);
    return 0;
  }
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)
    throw badRequest(
      `Invalid input for field/attribute ${field}. Value: ${JSON.stringify(v)}. must be an integer in [${min}, ${max}]`
    );
  return n;
}

/** Nova's parameter_types.boolean: true/false or one of its spellings as a string. */
function booleanOf(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') return undefined;
  if (['true', '1', 'on', 'yes'].includes(v.toLowerCase())) return true;
  if (['false', '0', 'off', 'no'].includes(v.toLowerCase())) return false;
  return undefined;
}

const CreateBody = z.object({ flavor: z.record(z.string(), z.unknown()) }).passthrough();
const SpecsBody = z.object({ extra_specs: z.record(z.string(), z.unknown()) }).passthrough();
const Id = z.object({ id: z.string() });
const INT32 = 2 ** 31 - 1;

export function registerFlavorManage(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/flavors',
    { schema: { tags: ['flavors'], summary: 'Create a flavor (admin)', body: CreateBody } },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-flavor-manage:create');
      const f = req.body.flavor;
      if (typeof f.name !== 'string' || f.name.length < 1 || f.name.length > 255 || !NAME.test(f.name))
        throw badRequest(`Invalid input for field/attribute name. Value: ${JSON.stringify(f.name)}.`);
      // Nova takes a number as an id too (Tempest's rand_int_id).
      const id = f.id === undefined || f.id === null ? randomUUID() : typeof f.id === 'number' ? String(f.id) : f.id;
      if (typeof id !== 'string' || id.length > 255 || !ID.test(id))
        throw badRequest(`Invalid input for field/attribute id. Value: ${JSON.stringify(f.id)}.`);
      const isPublic = booleanOf(f['os-flavor-access:is_public'] ?? true);
      if (isPublic === undefined)
        throw badRequest('Invalid input for field/attribute os-flavor-access:is_public. Must be a boolean.');
      const description = atLeast(req.apiVersion, '2.55') ? f.description : undefined;
      if (description !== undefined && description !== null && typeof description !== 'string')
        throw badRequest('Invalid input for field/attribute description.');
      const flavor = {
        id,
        name: f.name,
        memoryMb: count(f, 'ram', 1, INT32, true),
        vcpus: count(f, 'vcpus', 1, INT32, true),
        diskGb: count(f, 'disk', 0, INT32, true),
        ephemeralGb: count(f, 'OS-FLV-EXT-DATA:ephemeral', 0, INT32, false),
        swapMb: count(f, 'swap', 0, INT32, false),
        isPublic,
        description: description ?? null,
      };
      // The catalogue's flavors hold their ids and names too.
      if (deps.catalogue.flavors.some((c) => c.name === id)) throw conflict(`Flavor with ID ${id} already exists.`);
      if (deps.catalogue.flavors.some((c) => c.name === flavor.name))
        throw conflict(`Flavor with name ${flavor.name} already exists.`);
      const result = await deps.instances.createFlavor(flavor);
      if (result === 'id-exists') throw conflict(`Flavor with ID ${id} already exists.`);
      if (result === 'name-exists') throw conflict(`Flavor with name ${flavor.name} already exists.`);
      const stored = (await deps.instances.findFlavor(id))!;
      return { flavor: flavorView(deps, req, fromStore(stored), true) };
    }
  );
  r.delete(
    '/flavors/:id',
    { schema: { tags: ['flavors'], summary: 'Delete a flavor (admin)', params: Id } },
    async (req, reply) => {
      requireAdmin(req, 'os_compute_api:os-flavor-manage:delete');
      const flavor = await requireFlavor(deps, req.params.id);
      if (flavor.fromCatalogue)
        throw conflict(`Flavor ${flavor.id} is defined by the catalogue file and cannot be deleted through the API.`);
      if (!(await deps.instances.deleteFlavor(flavor.id))) throw notFound(`Flavor ${flavor.id} could not be found.`);
      return reply.status(202).send();
    }
  );
  r.post(
    '/flavors/:id/os-extra_specs',
    { schema: { tags: ['flavors'], summary: "Set a flavor's extra specs (admin)", params: Id, body: SpecsBody } },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-flavor-extra-specs:create');
      const flavor = await requireFlavor(deps, req.params.id);
      const specs: Record<string, string> = {};
      for (const [key, value] of Object.entries(req.body.extra_specs)) {
        if (!/^[\w.:-]{1,255}$/.test(key))
          throw badRequest(`Invalid input for field/attribute extra_specs key ${key}.`);
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
          throw badRequest(`Invalid input for field/attribute extra_specs. Value of ${key} must be a string.`);
        specs[key] = String(value);
      }
      if (flavor.fromCatalogue)
        throw conflict(`Flavor ${flavor.id} is defined by the catalogue file: its extra specs are set there.`);
      await deps.instances.setFlavorExtraSpecs(flavor.id, specs);
      return { extra_specs: specs };
    }
  );
  r.get(
    '/flavors/:id/os-flavor-access',
    { schema: { tags: ['flavors'], summary: "List a flavor's access (admin)", params: Id } },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-flavor-access');
      const flavor = await requireFlavor(deps, req.params.id);
      if (flavor.isPublic) throw notFound('Access list not available for public flavors.');
      return { flavor_access: [] };
    }
  );
}
