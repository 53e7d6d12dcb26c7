/** Inputs of the per-host workflows: reconcileHost, setHostService, hostGuests, consoleOutput. Built lazily: see index.ts. */
import { z } from 'zod';

import { ComputeTimeoutsSchema, DEFAULT_COMPUTE_TIMEOUTS, HostNameSchema, InstanceIdSchema } from './common';

export const ReconcileHostInputSchema = z.lazy(() =>
  z
    .object({
      host: HostNameSchema,
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type ReconcileHostInput = z.input<typeof ReconcileHostInputSchema>;

/**
 * An operator's switch on a compute host's service (Nova's `openstack compute service set`): `disabled`
 * (the scheduler's ComputeFilter skips the host; a reason only with `disabled: true`) and `forcedDown`
 * (reported down whatever its liveness, so its instances may be evacuated). Neither: the state as it is.
 */
export const SetHostServiceInputSchema = z.lazy(() =>
  z
    .object({
      host: HostNameSchema,
      disabled: z.boolean().optional(),
      disabledReason: z.string().min(1).max(255).optional(),
      forcedDown: z.boolean().optional(),
    })
    .strict()
    .refine((i) => i.disabledReason === undefined || i.disabled === true, {
      message: 'a reason is given only to disable a host',
      path: ['disabledReason'],
    })
);
export type SetHostServiceInput = z.input<typeof SetHostServiceInputSchema>;

export const HostGuestsInputSchema = z.lazy(() =>
  z
    .object({
      hosts: z.array(HostNameSchema).max(10_000),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type HostGuestsInput = z.input<typeof HostGuestsInputSchema>;

/** The longest console tail a caller may ask for (Nova's console log `--length`). */
export const MAX_CONSOLE_LINES = 10_000;

export const ConsoleOutputInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** Only the last N lines of the guest's console; all of it when absent. */
      lines: z.number().int().nonnegative().max(MAX_CONSOLE_LINES).optional(),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type ConsoleOutputInput = z.input<typeof ConsoleOutputInputSchema>;
