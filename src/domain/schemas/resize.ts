/** The `resizeMigrate` workflow's input. Built lazily: see index.ts. */
import { z } from 'zod';

import {
  CatalogueNameSchema,
  ComputeTimeoutsSchema,
  DEFAULT_COMPUTE_TIMEOUTS,
  HostNameSchema,
  InstanceIdSchema,
  MAX_ATTEMPTS_LIMIT,
} from './common';

// ----- resize / migrate -----

/** Seconds a resized instance waits for confirmResize / revertResize before it confirms itself. */
export const DEFAULT_RESIZE_CONFIRM_WINDOW_SECONDS = 86_400;

export const ResizeMigrateInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** The new flavor (a catalogue name): a resize. Absent, or the instance's own flavor: a cold migration. */
      flavor: CatalogueNameSchema.optional(),
      /** The requested destination; the filters still run and there is no reschedule elsewhere. */
      host: HostNameSchema.optional(),
      /** May the instance's own host be the destination (Nova's allow_resize_to_same_host, default False). */
      allowSameHost: z.boolean().default(false),
      /** Hosts tried at most, counting the first (Nova's [scheduler] max_attempts). */
      maxAttempts: z.number().int().min(1).max(MAX_ATTEMPTS_LIMIT).default(3),
      /**
       * Seconds the resized instance (VERIFY_RESIZE) waits for confirmResize or revertResize before it is
       * confirmed automatically; 0 waits indefinitely. NOTE(nova): resize_confirm_window, whose default
       * there is 0 (never auto-confirm).
       */
      confirmWindowSeconds: z
        .number()
        .int()
        .nonnegative()
        .max(365 * 86_400)
        .default(DEFAULT_RESIZE_CONFIRM_WINDOW_SECONDS),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type ResizeMigrateInput = z.input<typeof ResizeMigrateInputSchema>;
export type ResizeMigrateRequest = z.output<typeof ResizeMigrateInputSchema>;
