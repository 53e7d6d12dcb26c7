/**
 * Conductor activities of stored images (snapshots): the image record a snapshot or a shelve creates,
 * its status as the host saves it, and the catalogue a build resolves images in (the static catalogue
 * plus the active stored images).
 */
import { z } from 'zod';

import type { Catalogue, Image } from '../../domain/catalogue';
import type { ImageStatus, StoredImage } from '../../domain/images';
import { ImageNameSchema, refuseTakenName, withStoredImages } from '../../domain/images';
import { InstanceIdSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { ConductorDeps } from './deps';
import { onceWriter } from './deps';

const CreateImageSchema = z.object({
  imageId: z.uuid(),
  name: ImageNameSchema,
  instanceId: InstanceIdSchema,
});

const UpdateImageSchema = z.object({
  imageId: z.uuid(),
  status: z.enum(['queued', 'saving', 'active', 'deleted']),
  sizeGb: z.number().nonnegative().optional(),
});

/**
 * The catalogue a build, a rebuild or an unshelve resolves `name` in: the static catalogue, with the
 * store's active images of that name when the catalogue has none (one indexed read, not the whole table).
 */
export async function liveCatalogue(deps: ConductorDeps, name: string): Promise<Catalogue> {
  if (deps.catalogue.images.some((i) => i.name === name)) return deps.catalogue;
  return withStoredImages(deps.catalogue, await deps.instances.listImages({ name }));
}

export function createImageActivities(deps: ConductorDeps) {
  const { instances, catalogue } = deps;
  const once = onceWriter(deps);
  return {
    /** InvalidRequest (field `name`) when the name is malformed or an image has it already; writes nothing. */
    async checkImageName(input: { name: string }): Promise<void> {
      const { name } = parseOrInvalid(z.object({ name: ImageNameSchema }), input);
      refuseTakenName(catalogue, await instances.listImages(), name);
    },

    /**
     * Creates the image record of a snapshot of the instance (`queued`), with its source image's
     * properties and min_ram and a min_disk of at least the instance's root disk (Nova's snapshot image
     * meta). Idempotent on imageId; InvalidRequest when another image has the name.
     */
    async createSnapshotImage(input: z.input<typeof CreateImageSchema>): Promise<StoredImage> {
      const req = parseOrInvalid(CreateImageSchema, input);
      const existing = await instances.findImage(req.imageId);
      if (existing) return existing;
      const instance = await instances.get(req.instanceId);
      const all = await instances.listImages();
      refuseTakenName(catalogue, all, req.name);
      const source: Image | undefined = withStoredImages(catalogue, all).images.find((i) => i.name === instance.image);
      return once((repo) =>
        repo.createImage({
          imageId: req.imageId,
          name: req.name,
          sizeGb: source?.sizeGb ?? 0,
          minDiskGb: Math.max(instance.diskGb, source?.minDiskGb ?? 0),
          minRamMb: source?.minRamMb ?? 0,
          properties: source?.properties ?? { traitsRequired: [] },
          instanceId: instance.instanceId,
        })
      );
    },

    /** Sets a stored image's status (and its size once saved); undefined when there is none. */
    async updateImage(input: { imageId: string; status: ImageStatus; sizeGb?: number }): Promise<StoredImage | null> {
      const req = parseOrInvalid(UpdateImageSchema, input);
      return (
        (await once((repo) =>
          repo.updateImage(req.imageId, {
            status: req.status,
            ...(req.sizeGb !== undefined ? { sizeGb: req.sizeGb } : {}),
          })
        )) ?? null
      );
    },

    /**
     * Marks every stored image of that name deleted (an unshelved instance's shelved image, once its guest
     * runs from its own copy); returns how many were. Idempotent.
     */
    async deleteStoredImages(input: { name: string }): Promise<{ deleted: number }> {
      const { name } = parseOrInvalid(z.object({ name: ImageNameSchema }), input);
      const live = (await instances.listImages({ name })).filter((i) => i.status !== 'deleted');
      await once(async (repo) => {
        for (const image of live) await repo.updateImage(image.imageId, { status: 'deleted' });
      });
      return { deleted: live.length };
    },

    /** A stored image by id; null when there is none. */
    async findStoredImage(input: { imageId: string }): Promise<StoredImage | null> {
      return (await instances.findImage(input.imageId)) ?? null;
    },
  };
}
