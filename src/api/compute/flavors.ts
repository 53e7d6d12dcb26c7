/** Flavors (read-only): the catalogue's, with id = name (Nova's flavor ids are arbitrary strings). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { Flavor } from '../../domain/catalogue';
import type { ApiDeps } from '../deps';
import { badRequest, notFound } from '../errors';
import { atLeast } from '../microversion';
import { links, page, parseLimit } from './common';

export function flavorView(deps: ApiDeps, req: FastifyRequest, f: Flavor, detail: boolean) {
  const v = req.apiVersion;
  const description = atLeast(v, '2.55') ? { description: null } : {};
  if (!detail) return { id: f.name, name: f.name, links: links(deps, `flavors/${f.name}`), ...description };
  return {
    id: f.name,
    name: f.name,
    ram: f.memoryMb,
    vcpus: f.vcpus,
    disk: f.diskGb,
    'OS-FLV-EXT-DATA:ephemeral': 0,
    swap: '',
    rxtx_factor: 1.0,
    'os-flavor-access:is_public': true,
    'OS-FLV-DISABLED:disabled': false,
    links: links(deps, `flavors/${f.name}`),
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
  const list = (detail: boolean) => (req: FastifyRequest<{ Querystring: z.infer<typeof ListQuery> }>) => {
    const q = req.query;
    const num = (name: string, value: string | undefined) => {
      if (value === undefined) return 0;
      if (!/^\d+$/.test(value)) throw badRequest(`Invalid ${name} filter [${value}]`);
      return Number(value);
    };
    const minDisk = num('minDisk', q.minDisk);
    const minRam = num('minRam', q.minRam);
    let flavors = deps.catalogue.flavors.filter((f) => f.diskGb >= minDisk && f.memoryMb >= minRam);
    const key = q.sort_key ?? 'flavorid';
    const field: Record<string, (f: Flavor) => string | number> = {
      flavorid: (f) => f.name,
      id: (f) => f.name,
      name: (f) => f.name,
      memory_mb: (f) => f.memoryMb,
      ram: (f) => f.memoryMb,
      vcpus: (f) => f.vcpus,
      root_gb: (f) => f.diskGb,
      disk: (f) => f.diskGb,
    };
    const by = field[key];
    if (!by) throw badRequest(`Invalid sort key ${key}`);
    const dir = q.sort_dir === 'desc' ? -1 : 1;
    flavors = [...flavors].sort((a, b) => (by(a) < by(b) ? -dir : by(a) > by(b) ? dir : 0));
    const paged = page(flavors, (f) => f.name, parseLimit(q.limit), q.marker);
    if (paged.markerMissing) throw badRequest(`marker [${q.marker}] not found`);
    const last = paged.items[paged.items.length - 1];
    return {
      flavors: paged.items.map((f) => flavorView(deps, req, f, detail)),
      ...(paged.more && last
        ? {
            flavors_links: [
              {
                rel: 'next',
                href: `${deps.publicUrl}/compute/v2.1/flavors${detail ? '/detail' : ''}?limit=${q.limit}&marker=${last.name}`,
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
  r.get(
    '/flavors/:id',
    { schema: { tags: ['flavors'], summary: 'Show a flavor', params: z.object({ id: z.string() }) } },
    (req) => {
      const flavor = deps.catalogue.flavors.find((f) => f.name === req.params.id);
      if (!flavor) throw notFound(`Flavor ${req.params.id} could not be found.`);
      return { flavor: flavorView(deps, req, flavor, true) };
    }
  );
}
