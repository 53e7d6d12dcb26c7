/**
 * Glance-lite, read-only, under /image: the catalogue's images, then the stored ones (snapshots and
 * shelved images, not deleted), each with the UUIDv5 id of its name (the id createImage answers with).
 * `GET /v2/images` filters by name, id (`in:a,b`), status, and pages with limit and marker.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { Image } from '../domain/catalogue';
import type { StoredImage } from '../domain/images';
import { ImageStatus } from '../domain/images';
import type { ApiDeps } from './deps';
import { badRequest, notFound } from './errors';
import { imageId, keystoneId } from './ids';

const CREATED = '2024-01-01T00:00:00Z';

export function imageView(image: Image | StoredImage) {
  const id = imageId(image.name);
  const stored = 'imageId' in image ? image : undefined;
  return {
    id,
    name: image.name,
    status: stored?.status ?? 'active',
    visibility: 'public',
    protected: false,
    os_hidden: false,
    tags: [],
    container_format: 'bare',
    disk_format: 'qcow2',
    min_disk: image.minDiskGb,
    min_ram: image.minRamMb,
    size: Math.round(image.sizeGb * 1024 ** 3),
    virtual_size: null,
    checksum: null,
    owner: keystoneId('project', 'admin'),
    created_at: stored?.createdAt ?? CREATED,
    updated_at: stored?.updatedAt ?? CREATED,
    self: `/v2/images/${id}`,
    file: `/v2/images/${id}/file`,
    schema: '/v2/schemas/image',
    ...(image.properties.hwArchitecture ? { hw_architecture: image.properties.hwArchitecture } : {}),
  };
}

/** The catalogue image with that id (or, for the compute API's imageRef, that name). */
export function findImage(deps: ApiDeps, ref: string): Image | undefined {
  return (
    deps.catalogue.images.find((i) => imageId(i.name) === ref) ?? deps.catalogue.images.find((i) => i.name === ref)
  );
}

/** The catalogue's images, then the stored ones not deleted whose names the catalogue does not have. */
async function allImages(deps: ApiDeps): Promise<Array<Image | StoredImage>> {
  const names = new Set(deps.catalogue.images.map((i) => i.name));
  const stored = (await deps.instances.listImages()).filter(
    (i) => i.status !== ImageStatus.Deleted && !names.has(i.name)
  );
  return [...deps.catalogue.images, ...stored];
}

const ListQuery = z.object({
  name: z.string().optional(),
  id: z.string().optional(),
  status: z.string().optional(),
  visibility: z.string().optional(),
  limit: z.coerce.number().int().min(0).optional(),
  marker: z.string().optional(),
});

export function registerImages(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const base = deps.publicUrl;
  const versions = () => ({
    versions: [{ id: 'v2.16', status: 'CURRENT', links: [{ rel: 'self', href: `${base}/image/v2/` }] }],
  });
  r.get('/', { schema: { tags: ['image'], summary: 'Image versions' } }, versions);
  r.get('/versions', { schema: { tags: ['image'], summary: 'Image versions' } }, versions);

  r.get('/v2/images', { schema: { tags: ['image'], summary: 'List images', querystring: ListQuery } }, async (req) => {
    const q = req.query;
    const all = await allImages(deps);
    let images = [...all].sort((a, b) => imageId(a.name).localeCompare(imageId(b.name)));
    if (q.name !== undefined) images = images.filter((i) => i.name === q.name);
    if (q.id !== undefined) {
      const ids = q.id.startsWith('in:') ? q.id.slice(3).split(',') : [q.id];
      images = images.filter((i) => ids.includes(imageId(i.name)));
    }
    if (q.status !== undefined) images = images.filter((i) => ('status' in i ? i.status : 'active') === q.status);
    if (q.visibility !== undefined && q.visibility !== 'all') images = images.filter(() => q.visibility === 'public');
    if (q.marker !== undefined) {
      const at = images.findIndex((i) => imageId(i.name) === q.marker);
      if (at < 0 && !all.some((i) => imageId(i.name) === q.marker)) throw badRequest(`Invalid marker ${q.marker}`);
      images = images.slice(at + 1);
    }
    const limited = q.limit !== undefined && images.length > q.limit;
    if (q.limit !== undefined) images = images.slice(0, q.limit);
    const last = images[images.length - 1];
    return {
      images: images.map(imageView),
      first: '/v2/images',
      schema: '/v2/schemas/images',
      ...(limited && last ? { next: `/v2/images?marker=${imageId(last.name)}&limit=${q.limit}` } : {}),
    };
  });

  r.get(
    '/v2/images/:id',
    { schema: { tags: ['image'], summary: 'Show an image', params: z.object({ id: z.string() }) } },
    async (req) => {
      const image = (await allImages(deps)).find((i) => imageId(i.name) === req.params.id);
      if (!image) throw notFound(`No image found with ID ${req.params.id}`);
      return imageView(image);
    }
  );
}
