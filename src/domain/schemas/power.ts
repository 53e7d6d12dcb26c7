/** The `stop` and `start` workflows' inputs, and Nova's shutdown defaults. Built lazily: see index.ts. */
import { z } from 'zod';

import { ComputeTimeoutsSchema, DEFAULT_COMPUTE_TIMEOUTS, InstanceIdSchema } from './common';

/** Nova's `[DEFAULT] shutdown_timeout`: seconds a graceful shutdown may take before a forced power-off. */
export const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 60;
/** Nova's `[compute] shutdown_retry_interval`: seconds between ACPI shutdown requests. */
export const DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS = 10;

const ShutdownTimeoutSchema = z.lazy(() => z.number().int().nonnegative().max(3600));

export const StopInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** Overrides the image's and the default timeout (60 s). 0 powers off at once (Nova's clean_shutdown=False). */
      shutdownTimeoutSeconds: ShutdownTimeoutSchema.optional(),
      /**
       * The image's `os_shutdown_timeout` (catalogue `properties.osShutdownTimeout`), which wins over the
       * default. NOTE(nova): Nova copies it into the instance's system metadata at build; the instance
       * record here keeps only the image's name, so the caller passes it.
       */
      imageOsShutdownTimeoutSeconds: ShutdownTimeoutSchema.optional(),
      /** Seconds between ACPI shutdown requests (and power-state checks). */
      shutdownRetryIntervalSeconds: z
        .number()
        .int()
        .positive()
        .max(3600)
        .default(DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type StopInput = z.input<typeof StopInputSchema>;
export type StopRequest = z.output<typeof StopInputSchema>;

export const StartInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type StartInput = z.input<typeof StartInputSchema>;
