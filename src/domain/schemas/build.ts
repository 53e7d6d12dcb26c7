/** The `buildInstance` workflow's input (one instance or a multi-create batch). Built lazily: see index.ts. */
import { z } from 'zod';

import {
  AdminPasswordSchema,
  CatalogueNameSchema,
  ComputeTimeoutsSchema,
  DEFAULT_COMPUTE_TIMEOUTS,
  HostNameSchema,
  InstanceIdSchema,
  InstanceNameSchema,
  MAX_ATTEMPTS_LIMIT,
  SchedulerHintsSchema,
  UserDataSchema,
} from './common';

/** At most this many instances in one multi-create request. */
export const MAX_BATCH_SIZE = 50;
const BatchCountSchema = z.lazy(() => z.number().int().min(1).max(MAX_BATCH_SIZE));

/** A multi-create child's placement, chosen by its parent's one scheduler call. */
export const ScheduledPlacementSchema = z.lazy(() =>
  z
    .object({
      /** The chosen host (claimed) then the alternates. */
      hosts: z.array(HostNameSchema).min(1).max(10),
      resources: z
        .object({
          VCPU: z.number().int().nonnegative(),
          MEMORY_MB: z.number().int().nonnegative(),
          DISK_GB: z.number().int().nonnegative(),
        })
        .strict(),
      hostZones: z.record(z.string(), z.string()),
    })
    .strict()
);
export type ScheduledPlacement = z.output<typeof ScheduledPlacementSchema>;

/**
 * How many instances a build asks for (Nova's min_count / max_count): `count` is both; maxCount defaults
 * to minCount and minCount to 1; nothing given is one instance.
 */
export function batchSize(i: { count?: number; minCount?: number; maxCount?: number }): { min: number; max: number } {
  if (i.count !== undefined) return { min: i.count, max: i.count };
  const min = i.minCount ?? 1;
  return { min, max: i.maxCount ?? min };
}

export const BuildInstanceInputSchema = z.lazy(() =>
  z
    .object({
      name: InstanceNameSchema,
      flavor: CatalogueNameSchema,
      image: CatalogueNameSchema,
      /** Defaults to a fresh UUID. */
      instanceId: InstanceIdSchema.optional(),
      availabilityZone: z.string().min(1).max(255).optional(),
      schedulerHints: SchedulerHintsSchema.default({}),
      /** Build on this host, still checking the filters; no reschedule elsewhere. */
      host: HostNameSchema.optional(),
      /** Build on this host, bypassing the filters (Nova's forced host); no reschedule. */
      forceHost: HostNameSchema.optional(),
      /** Hosts tried at most, counting the first (Nova's [scheduler] max_attempts). */
      maxAttempts: z.number().int().min(1).max(MAX_ATTEMPTS_LIMIT).default(3),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
      /** Multi-create: exactly this many instances (Nova's min_count = max_count). */
      count: BatchCountSchema.optional(),
      /** Multi-create: build at least this many, or none (all or nothing). */
      minCount: BatchCountSchema.optional(),
      /** Multi-create: build at most this many, as many as there is room for (default: minCount). */
      maxCount: BatchCountSchema.optional(),
      /**
       * Set by a multi-create parent for each of its children, never by a caller: the hosts the one
       * scheduler call chose for this instance (the first already claimed), so the child does not schedule.
       */
      scheduled: ScheduledPlacementSchema.optional(),
      /** Nova's adminPass; every instance of a multi-create gets the same (as in Nova). */
      adminPassword: AdminPasswordSchema.optional(),
      /** Nova's user_data (base64). */
      userData: UserDataSchema.optional(),
    })
    .strict()
    .refine((i) => !(i.host && i.forceHost), { message: 'give host or forceHost, not both', path: ['forceHost'] })
    .refine((i) => i.count === undefined || (i.minCount === undefined && i.maxCount === undefined), {
      message: 'give count, or minCount and maxCount, not both',
      path: ['count'],
    })
    .refine((i) => i.minCount === undefined || i.maxCount === undefined || i.maxCount >= i.minCount, {
      message: 'maxCount must be at least minCount',
      path: ['maxCount'],
    })
    .refine((i) => batchSize(i).max === 1 || i.instanceId === undefined, {
      message: 'an instanceId names one instance; leave it out when building several',
      path: ['instanceId'],
    })
    .refine((i) => batchSize(i).max === 1 || i.name.length <= 250, {
      message: 'names of several instances take a suffix (-1, -2 …): at most 250 characters',
      path: ['name'],
    })
    .refine((i) => i.scheduled === undefined || i.instanceId !== undefined, {
      message: 'a pre-scheduled build names its instanceId',
      path: ['scheduled'],
    })
    .refine((i) => batchSize(i).max === 1 || i.scheduled === undefined, {
      message: 'a pre-scheduled build is one instance',
      path: ['scheduled'],
    })
);
export type BuildInstanceInput = z.input<typeof BuildInstanceInputSchema>;
export type BuildInstanceRequest = z.output<typeof BuildInstanceInputSchema>;
