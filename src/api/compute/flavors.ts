/**
 * Flavors: the catalogue file's (id = name, read-only) and those made through the API (flavor-manage,
 * src/api/compute/flavor-manage.ts; kept in the store). List, detail, show, extra specs.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { Flavor } from '../../domain/catalogue';
import type { StoredFlavor } from '../../store/instances';
import type { ApiDeps } from '../deps';
import { badRequest, notFound } from '../errors';
import { atLeast } from '../microversion';
import { links, page, parseLimit } from './common';

/** A flavor as the API shows it, wherever it is kept. */
export interface ApiFlavor {
  id: string;
  name: string;
  ram: number;
  vcpus: number;
  disk: number;
  ephemeral: number;
  swap: number;
  isPublic: boolean;
  description: string | null;
  extraSpecs: Record<string, string>;
  /** Defined by the catalogue file (not deletable here). */
  fromCatalogue: boolean;
}

const fromCatalogue = (f: Flavor): ApiFlavor => ({
  id: f.name,
  name: f.name,
  ram: f.memoryMb,
  vcpus: f.vcpus,
  disk: f.diskGb,
  ephemeral: 0,
  swap: 0,
  isPublic: true,
  description: null,
  extraSpecs: f.extraSpecs,
  fromCatalogue: true,
});

export const fromStore = (f: StoredFlavor): ApiFlavor => ({
  id: f.id,
  name: f.name,
  ram: f.memoryMb,
  vcpus: f.vcpus,
  disk: f.diskGb,
  ephemeral: f.ephemeralGb,
  swap: f.swapMb,
  isPublic: f.isPublic,
  description: f.description,
  extraSpecs: f.extraSpecs,
  fromCatalogue: false,
});

/** Every flavor (a deleted one of the store's only with `includeDeleted`: servers still show it). */
export async function allFlavors(deps: ApiDeps, includeDeleted = false): Promise<ApiFlavor[]> {
  const stored = await deps.instances.listFlavors({ includeDeleted });
  return [...deps.catalogue.flavors.map(fromCatalogue), ...stored.map(fromStore)];
}

/** The flavor of that id (not deleted), or undefined. */
export async function findApiFlavor(deps: ApiDeps, id: string): Promise<ApiFlavor | undefined> {
  const known = deps.catalogue.flavors.find((f) => f.name === id);
  if (known) return fromCatalogue(known);
  const stored = await deps.instances.findFlavor(id);
  return stored ? fromStore(stored) : undefined;
}

export async function requireFlavor(deps: ApiDeps, id: string): Promise<ApiFlavor> {
  const flavor = await findApiFlavor(deps, id);
  if (!flavor) throw notFound(`Flavor ${id} could not be found.`);
  return flavor;
}

export function flavorView(deps: ApiDeps, req: FastifyRequest, f: ApiFlavor, detail: boolean) {
  const v = req.apiVersion;
  const description = atLeast(v, '2.55') ? { description: f.description } : {};
  if (!detail) return { id: f.id, name: f.name, links: links(deps, `flavors/${f.id}`), ...description };
  return {
    id: f.id,
    name: f.name,
    ram: f.ram,
    vcpus: f.vcpus,
    disk: f.disk,
    'OS-FLV-EXT-DATA:ephemeral': f.ephemeral,
    swap: f.swap === 0 ? '' : f.swap,
    rxtx_factor: 1.0,
    'os-flavor-access:is_public': f.isPublic,
    'OS-FLV-DISABLED:disabled': false,
    links: links(deps, `flavors/${f.id}`),
    ...description,
  };
}

const ListQuery = z
  .object({
    minDisk: z.string().optional(),
    minRam: z.string().optional(),
    is_public: z.string().optional(),
    limit: z.string().optional(),
    marker: z.string().optional(),
    sort_key: z.string().optional(),
    sort_dir: z.enum(['asc', 'desc']).optional(),
  })
  .passthrough();

export function registerFlavors(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const list = (detail: boolean) => async (req: FastifyRequest<{ Querystring: z.infer<typeof ListQuery> }>) => {
    const q = req.query;
    const num = (name: string, value: string | undefined) => {
      if (value === undefined) return 0;
      if (!/^\d+$/.test(value)) throw badRequest(`Invalid ${name} filter [${value}]`);
      return Number(value);
    };
    const minDisk = num('minDisk', q.minDisk);
    const minRam = num('minRam', q.minRam);
    let flavors = (await allFlavors(deps)).filter((f) => f.disk >= minDisk && f.ram >= minRam);
    const key = q.sort_key ?? 'flavorid';
    const field: Record<string, (f: ApiFlavor) => string | number> = {
      flavorid: (f) => f.id,
      id: (f) => f.id,
      name: (f) => f.name,
      memory_mb: (f) => f.ram,
      ram: (f) => f.ram,
      vcpus: (f) => f.vcpus,
      root_gb: (f) => f.disk,
      disk: (f) => f.disk,
    };
    const by = field[key];
    if (!by) throw badRequest(`Invalid sort key ${key}`);
    const dir = q.sort_dir === 'desc' ? -1 : 1;
    flavors = [...flavors].sort((a, b) => (by(a) < by(b) ? -dir : by(a) > by(b) ? dir : 0));
    const paged = page(flavors, (f) => f.id, parseLimit(q.limit), q.marker);
    if (paged.markerMissing) throw badRequest(`marker [${q.marker}] not found`);
    const last = paged.items[paged.items.length - 1];
    return {
      flavors: paged.items.map((f) => flavorView(deps, req, f, detail)),
      ...(paged.more && last
        ? {
            flavors_links: [
              {
                rel: 'next',
                href: `${deps.publicUrl}/compute/v2.1/flavors${detail ? '/detail' : ''}?limit=${q.limit}&marker=${last.id}`,
              },
            ],
          }
        : {}),
    };
  };
  r.get('/flavors', { schema: { tags: ['flavors'], summary: 'List flavors', querystring: ListQuery } }, list(false));
  r.get(
    '/flavors/detail',
    { schema: { tags: ['flavors'], summary: 'List flavors with details', querystring: ListQuery } },
    list(true)
  );
  const Id = z.object({ id: z.string() });
  r.get('/flavors/:id', { schema: { tags: ['flavors'], summary: 'Show a flavor', params: Id } }, async (req) => ({
    flavor: flavorView(deps, req, await requireFlavor(deps, req.params.id), true),
  }));
  r.get(
    '/flavors/:id/os-extra_specs',
    { schema: { tags: ['flavors'], summary: "List a flavor's extra specs", params: Id } },
    async (req) => ({ extra_specs: (await requireFlavor(deps, req.params.id)).extraSpecs })
  );
  r.get(
    '/flavors/:id/os-extra_specs/:key',
    {
      schema: {
        tags: ['flavors'],
        summary: "Show a flavor's extra spec",
        params: z.object({ id: z.string(), key: z.string() }),
      },
    },
    async (req) => {
      const specs = (await requireFlavor(deps, req.params.id)).extraSpecs;
      if (!Object.hasOwn(specs, req.params.key))
        throw notFound(`Flavor ${req.params.id} has no extra specs with key ${req.params.key}.`);
      return { [req.params.key]: specs[req.params.key] };
    }
  );
}
