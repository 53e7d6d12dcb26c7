/** Stored images (snapshots): created queued by a snapshot, then saving, active, or deleted. */
import type { Selectable } from 'kysely';

import type { ImageStatus, StoredImage } from '../../domain/images';
import type { Store } from '../db';
import type { Database } from '../schema';
import { nowIso } from '../util';
import type { InstanceRepository } from './index';

export interface NewImage {
  imageId: string;
  name: string;
  sizeGb: number;
  minDiskGb: number;
  minRamMb: number;
  properties: StoredImage['properties'];
  instanceId: string | null;
}

export interface ImagePatch {
  status?: ImageStatus;
  sizeGb?: number;
}

export type StoredImages = Pick<InstanceRepository, 'createImage' | 'findImage' | 'listImages' | 'updateImage'>;

function toImage(row: Selectable<Database['images']>): StoredImage {
  return {
    imageId: row.image_id,
    name: row.name,
    status: row.status as ImageStatus,
    sizeGb: row.size_gb,
    minDiskGb: row.min_disk,
    minRamMb: row.min_ram,
    properties: JSON.parse(row.properties) as StoredImage['properties'],
    instanceId: row.instance_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function createStoredImages(store: Store): StoredImages {
  const db = store.db;
  const findImage = async (imageId: string): Promise<StoredImage | undefined> => {
    const row = await db.selectFrom('images').selectAll().where('image_id', '=', imageId).executeTakeFirst();
    return row && toImage(row);
  };
  return {
    findImage,
    async createImage(image: NewImage): Promise<StoredImage> {
      const at = nowIso();
      await db
        .insertInto('images')
        .values({
          image_id: image.imageId,
          name: image.name,
          status: 'queued',
          size_gb: image.sizeGb,
          min_disk: image.minDiskGb,
          min_ram: image.minRamMb,
          properties: JSON.stringify(image.properties),
          instance_id: image.instanceId,
          created_at: at,
          updated_at: at,
        })
        .onConflict((oc) => oc.column('image_id').doNothing())
        .execute();
      return (await findImage(image.imageId))!;
    },
    async listImages(filter: { name?: string } = {}): Promise<StoredImage[]> {
      let query = db.selectFrom('images').selectAll();
      if (filter.name !== undefined) query = query.where('name', '=', filter.name);
      const rows = await query.orderBy('created_at').orderBy('image_id').execute();
      return rows.map(toImage);
    },
    async updateImage(imageId: string, patch: ImagePatch): Promise<StoredImage | undefined> {
      await db
        .updateTable('images')
        .set({
          ...(patch.status !== undefined ? { status: patch.status } : {}),
          ...(patch.sizeGb !== undefined ? { size_gb: patch.sizeGb } : {}),
          updated_at: nowIso(),
        })
        .where('image_id', '=', imageId)
        .execute();
      return findImage(imageId);
    },
  };
}
