/**
 * Flavors made through the API (Nova's flavor-manage), beside the catalogue file's: kept in the store so
 * every process resolves them (the conductor's build and resize, the API's views). Keyed by Nova's flavor
 * id, which is what an instance record names as its flavor. A deleted flavor is marked, not removed: the
 * servers made with it still show its name and extra specs (Nova embeds the flavor in the instance).
 */
import type { Selectable } from 'kysely';

import type { Catalogue, Flavor } from '../../domain/catalogue';
import { resolveFlavor } from '../../domain/catalogue';

import type { Store } from '../db';
import { transaction } from '../db';
import type { FlavorsTable } from '../schema';
import { nowIso } from '../util';

export interface StoredFlavor {
  /** Nova's flavor id (the instance records' `flavor`). */
  id: string;
  name: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  ephemeralGb: number;
  swapMb: number;
  isPublic: boolean;
  description: string | null;
  extraSpecs: Record<string, string>;
  deleted: boolean;
}

export type NewFlavor = Omit<StoredFlavor, 'deleted' | 'extraSpecs'>;

export interface FlavorRepository {
  /** The flavor of that id; deleted ones only when asked. */
  findFlavor(id: string, options?: { includeDeleted?: boolean }): Promise<StoredFlavor | undefined>;
  /** Every flavor not deleted (with the deleted ones when asked), by id. */
  listFlavors(options?: { includeDeleted?: boolean }): Promise<StoredFlavor[]>;
  /** Creates it: 'id-exists' / 'name-exists' when a flavor (not deleted) has that id or name. */
  createFlavor(flavor: NewFlavor): Promise<'created' | 'id-exists' | 'name-exists'>;
  /** Marks it deleted; false when there was none (or it was deleted already). */
  deleteFlavor(id: string): Promise<boolean>;
  /** Merges extra specs in; false when there is no such flavor. */
  setFlavorExtraSpecs(id: string, specs: Record<string, string>): Promise<boolean>;
}

function flavorOf(row: Selectable<FlavorsTable>): StoredFlavor {
  return {
    id: row.flavor_id,
    name: row.name,
    vcpus: row.vcpus,
    memoryMb: row.memory_mb,
    diskGb: row.disk_gb,
    ephemeralGb: row.ephemeral_gb,
    swapMb: row.swap_mb,
    isPublic: row.is_public === 1,
    description: row.description,
    extraSpecs: JSON.parse(row.extra_specs) as Record<string, string>,
    deleted: row.deleted === 1,
  };
}

export function createFlavors(store: Store): FlavorRepository {
  const db = store.db;
  return {
    async findFlavor(id, { includeDeleted = false } = {}) {
      let query = db.selectFrom('flavors').selectAll().where('flavor_id', '=', id);
      if (!includeDeleted) query = query.where('deleted', '=', 0);
      const row = await query.executeTakeFirst();
      return row ? flavorOf(row) : undefined;
    },
    async listFlavors({ includeDeleted = false } = {}) {
      let query = db.selectFrom('flavors').selectAll();
      if (!includeDeleted) query = query.where('deleted', '=', 0);
      const rows = await query.orderBy('flavor_id').execute();
      return rows.map(flavorOf);
    },
    createFlavor(flavor) {
      return transaction(store, async (trx) => {
        const live = await trx.selectFrom('flavors').select(['flavor_id', 'name']).where('deleted', '=', 0).execute();
        if (live.some((f) => f.flavor_id === flavor.id)) return 'id-exists' as const;
        if (live.some((f) => f.name === flavor.name)) return 'name-exists' as const;
        // A deleted flavor of the same id makes way (as Nova's hard delete would have).
        await trx.deleteFrom('flavors').where('flavor_id', '=', flavor.id).execute();
        await trx
          .insertInto('flavors')
          .values({
            flavor_id: flavor.id,
            name: flavor.name,
            vcpus: flavor.vcpus,
            memory_mb: flavor.memoryMb,
            disk_gb: flavor.diskGb,
            ephemeral_gb: flavor.ephemeralGb,
            swap_mb: flavor.swapMb,
            is_public: flavor.isPublic ? 1 : 0,
            description: flavor.description,
            extra_specs: '{}',
            deleted: 0,
            created_at: nowIso(),
          })
          .execute();
        return 'created' as const;
      });
    },
    async deleteFlavor(id) {
      const res = await db
        .updateTable('flavors')
        .set({ deleted: 1 })
        .where('flavor_id', '=', id)
        .where('deleted', '=', 0)
        .executeTakeFirst();
      return Number(res.numUpdatedRows) > 0;
    },
    setFlavorExtraSpecs(id, specs) {
      return transaction(store, async (trx) => {
        const row = await trx
          .selectFrom('flavors')
          .select('extra_specs')
          .where('flavor_id', '=', id)
          .where('deleted', '=', 0)
          .executeTakeFirst();
        if (!row) return false;
        const merged = { ...(JSON.parse(row.extra_specs) as Record<string, string>), ...specs };
        await trx
          .updateTable('flavors')
          .set({ extra_specs: JSON.stringify(merged) })
          .where('flavor_id', '=', id)
          .execute();
        return true;
      });
    },
  };
}

/** A stored flavor as the domain's Flavor (what scheduling and the guest need). */
export function asFlavor(f: StoredFlavor): Flavor {
  return { name: f.id, vcpus: f.vcpus, memoryMb: f.memoryMb, diskGb: f.diskGb, extraSpecs: f.extraSpecs };
}

/**
 * The flavor of that id: the catalogue file's, else one made through the API (a deleted one only with
 * `includeDeleted`); otherwise the catalogue's InvalidRequest naming `field`.
 */
export async function resolveAnyFlavor(
  catalogue: Catalogue,
  flavors: Pick<FlavorRepository, 'findFlavor'>,
  id: string,
  options: { field?: string; includeDeleted?: boolean } = {}
): Promise<Flavor> {
  const known = catalogue.flavors.find((f) => f.name === id);
  if (known) return known;
  const stored = await flavors.findFlavor(id, { includeDeleted: options.includeDeleted ?? false });
  if (stored) return asFlavor(stored);
  return resolveFlavor(catalogue, id, options.field);
}
