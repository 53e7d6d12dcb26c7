/** Conductor activities of rebuild and evacuate: the rebuild's spec and the evacuation's migration record. */
import { z } from 'zod';

import type { Flavor, Image } from '../../domain/catalogue';
import { checkImageFitsFlavor, resolveImage } from '../../domain/catalogue';
import type { InstanceRecord } from '../../domain/instance';
import { InstanceIdSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { InstanceRepository } from '../../store/instances';
import { resolveAnyFlavor } from '../../store/instances';
import type { ConductorDeps } from './deps';
import { onceWriter } from './deps';
import { liveCatalogue } from './images';

const UpdateEvacuationSchema = z.object({
  migrationId: z.string().min(1).max(64),
  status: z.enum(['pre-migrating', 'done', 'error', 'completed']),
  destHost: z.string().min(1).max(255).optional(),
  expectStatus: z.array(z.string().min(1).max(64)).min(1).optional(),
});

export function createEvacuationActivities(deps: ConductorDeps) {
  const { instances, catalogue } = deps;
  const once = onceWriter(deps);

  return {
    /**
     * What a rebuild or an evacuation works from, read before it takes the operation lock: the instance,
     * its flavor (the instance's own sizes, even if the catalogue changed) and the image (default: its
     * current one). Refuses, writing nothing, an unknown image (InvalidRequest naming `image`) and an
     * image the flavor is too small for. NOTE(nova): the API's _validate_flavor_image_nostatus on rebuild.
     */
    async resolveRebuildSpec(input: {
      instanceId: string;
      image?: string;
    }): Promise<{ instance: InstanceRecord; flavor: Flavor; image: Image }> {
      const req = parseOrInvalid(
        z.object({ instanceId: InstanceIdSchema, image: z.string().min(1).max(255).optional() }),
        input
      );
      const instance = await instances.get(req.instanceId);
      const imageName = req.image ?? instance.image;
      const image = resolveImage(await liveCatalogue(deps, imageName), imageName);
      const known = await resolveAnyFlavor(catalogue, instances, instance.flavor, { includeDeleted: true }).catch(
        () => undefined
      );
      const flavor: Flavor = {
        extraSpecs: known?.extraSpecs ?? {},
        name: instance.flavor,
        vcpus: instance.vcpus,
        memoryMb: instance.memoryMb,
        diskGb: instance.diskGb,
      };
      checkImageFitsFlavor(flavor, image, 'image');
      return { instance, flavor, image };
    },

    /** Creates an evacuation's migration record (status `accepted`); idempotent on its id. */
    async createEvacuation(input: {
      migrationId: string;
      instanceId: string;
      sourceHost: string;
      destHost: string | null;
      flavor: string;
    }): Promise<Awaited<ReturnType<InstanceRepository['createMigration']>>> {
      const req = parseOrInvalid(
        z.object({
          migrationId: z.string().min(1).max(64),
          instanceId: InstanceIdSchema,
          sourceHost: z.string().min(1).max(255),
          destHost: z.string().min(1).max(255).nullable(),
          flavor: z.string().min(1).max(255),
        }),
        input
      );
      return instances.createMigration({
        id: req.migrationId,
        instanceId: req.instanceId,
        sourceHost: req.sourceHost,
        destHost: req.destHost,
        oldFlavor: req.flavor,
        newFlavor: req.flavor,
        migrationType: 'evacuation',
        status: 'accepted',
      });
    },

    /**
     * Moves an evacuation on: accepted → pre-migrating (destination chosen) → done, or error; a returning
     * source marks a done one completed once it has cleaned up. `expectStatus` makes it a compare-and-swap.
     */
    async updateEvacuation(input: {
      migrationId: string;
      status: 'pre-migrating' | 'done' | 'error' | 'completed';
      destHost?: string;
      expectStatus?: string[];
    }): Promise<Awaited<ReturnType<InstanceRepository['updateMigration']>>> {
      const { migrationId, status, destHost, expectStatus } = parseOrInvalid(UpdateEvacuationSchema, input);
      return once((repo) =>
        repo.updateMigration(migrationId, { status, destHost }, { status: expectStatus, method: 'evacuate' })
      );
    },

    /**
     * Of the instances a returning compute host still has guests or allocations for, those evacuated away
     * from it: an evacuation from this host is `done` and the instance now lives on another host. With the
     * latest evacuate action, to record the clean-up on. NOTE(nova): _destroy_evacuated_instances looks up
     * evacuation migrations from this host the same way (in-progress ones are left alone here: the
     * evacuation may still fail and leave the instance on this host).
     */
    async findEvacuatedInstances(input: {
      host: string;
      instanceIds: string[];
    }): Promise<
      Array<{ instanceId: string; migrationId: string; currentHost: string | null; actionId: string | null }>
    > {
      const { host, instanceIds } = parseOrInvalid(
        z.object({ host: z.string().min(1).max(255), instanceIds: z.array(z.string().min(1).max(64)).max(100_000) }),
        input
      );
      const found = [];
      for (const instanceId of [...new Set(instanceIds)].sort()) {
        const instance = await instances.find(instanceId);
        if (!instance || instance.host === host) continue;
        const evacuations = (await instances.listMigrations(instanceId)).filter(
          (m) => m.migrationType === 'evacuation' && m.sourceHost === host && m.status === 'done'
        );
        if (evacuations.length === 0) continue;
        const actions = await instances.listActions(instanceId);
        const actionId = actions.filter((a) => a.action === 'evacuate').at(-1)?.actionId ?? null;
        for (const m of evacuations)
          found.push({ instanceId, migrationId: m.id, currentHost: instance.host, actionId });
      }
      return found;
    },
  };
}
