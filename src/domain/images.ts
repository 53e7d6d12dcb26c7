/**
 * Images an instance's disk was saved into (Nova's snapshot_instance, a Glance image of the guest's
 * disk): stored beside the catalogue's static images, and resolved by a build like them. An image is
 * `queued` once its record exists, `saving` while the host copies the disk, `active` once its bytes are
 * in the image store, `deleted` when the snapshot failed or the image was removed (Glance's statuses).
 */
import { z } from 'zod';

import type { Catalogue, Image } from './catalogue';
import { InvalidRequest } from './errors';
import { ComputeTimeoutsSchema, DEFAULT_COMPUTE_TIMEOUTS, InstanceIdSchema } from './schemas';

export const ImageStatus = {
  Queued: 'queued',
  Saving: 'saving',
  Active: 'active',
  Deleted: 'deleted',
} as const;
export type ImageStatus = (typeof ImageStatus)[keyof typeof ImageStatus];

/**
 * NOTE(nova): Glance names are free text and need not be unique (an image is its UUID); here an image
 * is referred to by name everywhere (the instance record, the builds, the image store's file), so a
 * snapshot's name is a file-safe word and unique among the catalogue's and the stored images.
 */
export const ImageNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'image names are letters, digits, dot, dash and underscore');

/** A stored image (a snapshot): the catalogue's fields plus its record's. */
export interface StoredImage extends Image {
  imageId: string;
  status: ImageStatus;
  /** The instance whose disk it was saved from. */
  instanceId: string | null;
  createdAt: string;
  updatedAt: string;
}

/** The catalogue with the active stored images after its own (a stored image never shadows one). */
export function withStoredImages(catalogue: Catalogue, stored: readonly StoredImage[]): Catalogue {
  const names = new Set(catalogue.images.map((i) => i.name));
  const extra = stored.filter((i) => i.status === ImageStatus.Active && !names.has(i.name));
  return { flavors: catalogue.flavors, images: [...catalogue.images, ...extra] };
}

/** InvalidRequest (field `name`) when an image of that name exists already. */
export function refuseTakenName(catalogue: Catalogue, stored: readonly StoredImage[], name: string): void {
  const taken =
    catalogue.images.some((i) => i.name === name) ||
    stored.some((i) => i.name === name && i.status !== ImageStatus.Deleted);
  if (taken) throw new InvalidRequest('name', `an image named '${name}' exists already`);
}

/** The input of `snapshot` (Nova's createImage action): the instance and the new image's name. */
export const SnapshotInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      name: ImageNameSchema,
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type SnapshotInput = z.input<typeof SnapshotInputSchema>;
