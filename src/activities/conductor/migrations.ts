/** Conductor activities of resize and cold migration: plan, create and move the migration record on. */
import { z } from 'zod';

import type { Flavor, Image } from '../../domain/catalogue';
import { checkImageFitsFlavor } from '../../domain/catalogue';
import type { MigrationPlan } from '../../domain/migration';
import { LIVE_MIGRATION_STATUSES, RESIZE_MIGRATION_STATUSES } from '../../domain/migration';
import { InstanceIdSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import type { InstanceRepository } from '../../store/instances';
import { resolveAnyFlavor } from '../../store/instances';
import type { ConductorDeps } from './deps';
import { onceWriter } from './deps';

const MigrationIdSchema = z.string().min(1).max(64);
const FlavorNameSchema = z.string().min(1).max(255);

const PlanMigrationSchema = z.object({ instanceId: InstanceIdSchema, flavor: FlavorNameSchema.optional() });

const CreateMigrationSchema = z.object({
  migrationId: MigrationIdSchema,
  instanceId: InstanceIdSchema,
  sourceHost: z.string().min(1).max(255),
  oldFlavor: FlavorNameSchema,
  newFlavor: FlavorNameSchema,
  migrationType: z.enum(['resize', 'migration', 'live-migration']),
});

const ReplaceAllocationSchema = z.object({ instanceId: InstanceIdSchema, migrationId: MigrationIdSchema });

const MOVE_STATUSES = [...new Set([...RESIZE_MIGRATION_STATUSES, ...LIVE_MIGRATION_STATUSES])] as [string, ...string[]];

const UpdateMigrationSchema = z.object({
  migrationId: MigrationIdSchema,
  status: z.enum(MOVE_STATUSES),
  destHost: z.string().min(1).max(255).optional(),
  /** Compare-and-swap: the update applies only from these statuses. */
  expectStatus: z.array(z.enum(MOVE_STATUSES)).min(1).optional(),
  /** The operation asking, named in the MigrationError. */
  method: z.string().min(1).max(64).default('resizeMigrate'),
  /** A live migration's switch-over pause, recorded as it completes. */
  downtimeMs: z.number().int().nonnegative().optional(),
});

export function createMigrationActivities(deps: ConductorDeps) {
  const { instances, catalogue } = deps;
  const once = onceWriter(deps);
  return {
    /**
     * Resolves a resize or cold migration of an instance: its flavor, the requested one (an unknown one is
     * an InvalidRequest naming `flavor`), its image. Read-only, so a bad request is refused before anything
     * is written. NOTE(nova): the API refuses a flavor below the image's min_ram / min_disk.
     */
    async planMigration(input: z.input<typeof PlanMigrationSchema>): Promise<MigrationPlan> {
      const req = parseOrInvalid(PlanMigrationSchema, input);
      const instance = await instances.get(req.instanceId);
      const known = await resolveAnyFlavor(catalogue, instances, instance.flavor, { includeDeleted: true }).catch(
        () => undefined
      );
      const oldFlavor: Flavor = {
        name: instance.flavor,
        vcpus: instance.vcpus,
        memoryMb: instance.memoryMb,
        diskGb: instance.diskGb,
        extraSpecs: known?.extraSpecs ?? {},
      };
      const newFlavor =
        req.flavor === undefined || req.flavor === instance.flavor
          ? oldFlavor
          : await resolveAnyFlavor(catalogue, instances, req.flavor);
      // An image gone from the catalogue since the build is no reason to refuse a move.
      const image: Image = catalogue.images.find((i) => i.name === instance.image) ?? {
        name: instance.image,
        sizeGb: 0,
        minDiskGb: 0,
        minRamMb: 0,
        properties: { traitsRequired: [] },
      };
      checkImageFitsFlavor(newFlavor, image, 'flavor');
      const migrationType = newFlavor.name === oldFlavor.name ? 'migration' : 'resize';
      return { instance, oldFlavor, newFlavor, image, migrationType };
    },

    /** Creates the migration record (status pre-migrating, no destination yet). Idempotent on its id. */
    async createMigration(
      input: z.input<typeof CreateMigrationSchema>
    ): Promise<Awaited<ReturnType<InstanceRepository['createMigration']>>> {
      const req = parseOrInvalid(CreateMigrationSchema, input);
      return instances.createMigration({
        id: req.migrationId,
        instanceId: req.instanceId,
        sourceHost: req.sourceHost,
        destHost: null,
        oldFlavor: req.oldFlavor,
        newFlavor: req.newFlavor,
        migrationType: req.migrationType,
        // NOTE(nova): a live migration starts `accepted`, a resize or cold migration `pre-migrating`.
        status: req.migrationType === 'live-migration' ? 'accepted' : 'pre-migrating',
      });
    },

    /**
     * The instance's allocation (its source host's) moved to its migration, as Nova's conductor does itself
     * (replace_allocation_with_migration, a placement call from the conductor, not the scheduler's RPC): a
     * live migration runs it as a local activity. Idempotent: a retry
     * after the move applied finds nothing left under the instance. Other moves stay the scheduler's.
     */
    async replaceAllocationWithMigration(input: z.input<typeof ReplaceAllocationSchema>): Promise<void> {
      const req = parseOrInvalid(ReplaceAllocationSchema, input);
      if (!deps.placement)
        throw new Error('replaceAllocationWithMigration: the conductor activities were made without placement');
      await deps.placement.moveAllocations(req.instanceId, req.migrationId);
    },

    /**
     * Moves the migration on (status, and the destination once chosen), as a compare-and-swap from
     * `expectStatus` (MigrationError naming the current status otherwise). Idempotent: a retry whose update
     * applied already finds the migration in the target state and returns it.
     */
    async updateMigration(
      input: z.input<typeof UpdateMigrationSchema>
    ): Promise<Awaited<ReturnType<InstanceRepository['updateMigration']>>> {
      const req = parseOrInvalid(UpdateMigrationSchema, input);
      const patch = {
        status: req.status,
        ...(req.destHost === undefined ? {} : { destHost: req.destHost }),
        ...(req.downtimeMs === undefined ? {} : { downtimeMs: req.downtimeMs }),
      };
      try {
        return await once((repo) =>
          repo.updateMigration(req.migrationId, patch, { status: req.expectStatus, method: req.method })
        );
      } catch (err) {
        const current = await instances.findMigration(req.migrationId);
        if (current?.status === req.status && (req.destHost === undefined || current.destHost === req.destHost))
          return current;
        throw err;
      }
    },
  };
}
