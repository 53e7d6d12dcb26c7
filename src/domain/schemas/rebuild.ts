/** The `rebuild` and `evacuate` workflows' input. Built lazily: see index.ts. */
import { z } from 'zod';

import {
  AdminPasswordSchema,
  CatalogueNameSchema,
  ComputeTimeoutsSchema,
  DEFAULT_COMPUTE_TIMEOUTS,
  HostNameSchema,
  InstanceIdSchema,
  UserDataSchema,
} from './common';

// ----- rebuild / evacuate -----

export const RebuildInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** The image to rebuild with (a catalogue name); defaults to the instance's current image. */
      image: CatalogueNameSchema.optional(),
      /**
       * Evacuate (Nova's rebuild_instance with recreate=True): re-create the instance on another host because
       * its own host is down. Rebuilds with the current image.
       */
      evacuate: z.boolean().default(false),
      /**
       * Evacuate only: the requested destination (never the instance's own host), which the scheduler's
       * filters must pass (Nova 2.29+), unless `force`.
       */
      host: HostNameSchema.optional(),
      /**
       * Evacuate with a host only: claim it directly, no scheduler (Nova's `force`, API 2.29–2.67; below
       * 2.29 every requested host is forced).
       */
      force: z.boolean().optional(),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
      /** Nova's adminPass for the rebuilt guest (rebuild and evacuate). */
      adminPassword: AdminPasswordSchema.optional(),
      /**
       * Nova's user_data for the rebuilt guest. NOTE(nova): Nova keeps user_data in the instance record
       * and a rebuild without it reuses the stored one; here it is never stored, so a rebuild gets only
       * what it is given.
       */
      userData: UserDataSchema.optional(),
    })
    .strict()
    .refine((i) => i.evacuate || i.host === undefined, { message: 'a host is given only to evacuate', path: ['host'] })
    .refine((i) => !i.force || i.host !== undefined, {
      message: "can't force to a non-provided destination",
      path: ['force'],
    })
    .refine((i) => !(i.evacuate && i.image !== undefined), {
      message: 'an evacuation re-creates the instance from its current image; give no image',
      path: ['image'],
    })
);
export type RebuildInput = z.input<typeof RebuildInputSchema>;
export type RebuildRequest = z.output<typeof RebuildInputSchema>;
