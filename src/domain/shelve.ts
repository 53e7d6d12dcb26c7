/**
 * The inputs of shelve, shelveOffload and unshelve (Nova's API actions `shelve`, `shelveOffload`,
 * `unshelve`), and the name of a shelved instance's image.
 */
import { z } from 'zod';

import {
  ComputeTimeoutsSchema,
  DEFAULT_COMPUTE_TIMEOUTS,
  HostNameSchema,
  InstanceIdSchema,
  MAX_ATTEMPTS_LIMIT,
} from './schemas';

/** Nova's `[DEFAULT] shelved_offload_time`: 0 offloads at once, -1 never, N after N seconds. */
export const DEFAULT_SHELVED_OFFLOAD_TIME_SECONDS = 0;

const ShutdownTimeoutSchema = z.lazy(() => z.number().int().nonnegative().max(3600));

/**
 * NOTE(nova): the shelved image is named `<instance name>-shelved` in Glance; here image names are unique
 * and file-safe, so it is `shelved-<instance id>`.
 */
export function shelvedImageName(instanceId: string): string {
  return `shelved-${instanceId}`;
}

export const ShelveInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** Seconds until the shelved instance is offloaded: 0 at once (the default, as Nova's), -1 never. */
      shelvedOffloadTimeSeconds: z
        .number()
        .int()
        .min(-1)
        .max(30 * 24 * 3600)
        .default(DEFAULT_SHELVED_OFFLOAD_TIME_SECONDS),
      /** The graceful shutdown's timeout (default: the image's os_shutdown_timeout, else 60 s); 0 forces it. */
      shutdownTimeoutSeconds: ShutdownTimeoutSchema.optional(),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type ShelveInput = z.input<typeof ShelveInputSchema>;

export const ShelveOffloadInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** Waits this long first (a shelve's automatic offload, Nova's _poll_shelved_instances). */
      afterSeconds: z
        .number()
        .int()
        .nonnegative()
        .max(30 * 24 * 3600)
        .default(0),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type ShelveOffloadInput = z.input<typeof ShelveOffloadInputSchema>;

/**
 * The input of `unshelve` (Nova's API action `unshelve`): a shelved-offloaded instance goes to a host the
 * scheduler picks, within `availabilityZone` or on `host` when given (a requested host still goes through
 * the filters, and is never rescheduled elsewhere); a shelved one is powered on where it is.
 */
export const UnshelveInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      availabilityZone: z.string().min(1).max(255).optional(),
      host: HostNameSchema.optional(),
      /** Hosts tried at most, counting the first (Nova's [scheduler] max_attempts). */
      maxAttempts: z.number().int().min(1).max(MAX_ATTEMPTS_LIMIT).default(3),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type UnshelveInput = z.input<typeof UnshelveInputSchema>;
