/** The reboot's input (Nova's API `reboot` action: `{"reboot": {"type": "SOFT" | "HARD"}}`). */
import { z } from 'zod';

import { ComputeTimeoutsSchema, DEFAULT_COMPUTE_TIMEOUTS, InstanceIdSchema } from './schemas';

/**
 * Nova's `[libvirt] wait_soft_reboot_seconds`: how long a soft reboot waits for the guest to shut down
 * after its ACPI request before it falls back to a hard reboot.
 */
export const DEFAULT_SOFT_REBOOT_SECONDS = 120;

export const RebootTypeSchema = z.enum(['SOFT', 'HARD']);
export type RebootType = z.infer<typeof RebootTypeSchema>;

export const RebootInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** SOFT: the guest's own shutdown (ACPI), then a start; HARD: powered off by force and started. */
      type: RebootTypeSchema.default('SOFT'),
      /** How long a soft reboot waits for the guest to shut down before it reboots it hard. */
      softRebootSeconds: z.number().int().nonnegative().max(3600).default(DEFAULT_SOFT_REBOOT_SECONDS),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type RebootInput = z.input<typeof RebootInputSchema>;
