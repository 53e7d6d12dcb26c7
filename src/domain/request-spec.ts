import { z } from 'zod';

import { FlavorSchema, ImageSchema } from './catalogue';
import type { Flavor } from './catalogue';
import type { Resources } from './resources';
import { HostNameSchema, InstanceIdSchema, SchedulerHintsSchema } from './schemas';

/**
 * What the conductor asks the scheduler for (Nova's RequestSpec). Flavor and image are given by name
 * (resolved from the catalogue) or in full.
 */
export const RequestSpecSchema = z
  .object({
    instanceIds: z.array(InstanceIdSchema).min(1).max(100),
    flavor: z.union([z.string().min(1).max(255), FlavorSchema]),
    image: z.union([z.string().min(1).max(255), ImageSchema]),
    availabilityZone: z.string().min(1).max(255).optional(),
    schedulerHints: SchedulerHintsSchema.default({}),
    /** Never choose these (a migration's source). */
    ignoreHosts: z.array(HostNameSchema).max(10_000).default([]),
    requestedHost: HostNameSchema.optional(),
    forcedHost: HostNameSchema.optional(),
    /** Rebuild: only the filters that run on rebuild, and nothing claimed. */
    isRebuild: z.boolean().default(false),
    maxAttempts: z.number().int().min(1).max(10).default(3),
    /**
     * Multi-create: place at least this many of the instances (in order) or none; those after the first
     * minCount that find no host are left out. Default: every instance.
     */
    minCount: z.number().int().min(1).max(100).optional(),
  })
  .strict()
  .refine((s) => s.minCount === undefined || s.minCount <= s.instanceIds.length, {
    message: 'minCount is at most the number of instances',
    path: ['minCount'],
  });
export type RequestSpecInput = z.input<typeof RequestSpecSchema>;
export type RequestSpec = z.output<typeof RequestSpecSchema>;

/** The placement resources one instance of a flavor consumes. */
export function flavorResources(flavor: Pick<Flavor, 'vcpus' | 'memoryMb' | 'diskGb'>): Resources {
  return { VCPU: flavor.vcpus, MEMORY_MB: flavor.memoryMb, DISK_GB: flavor.diskGb };
}
