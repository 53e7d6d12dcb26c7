/** The `reconcile` and `resetState` workflows' inputs. Built lazily: see index.ts. */
import { z } from 'zod';

import { ComputeTimeoutsSchema, DEFAULT_COMPUTE_TIMEOUTS, InstanceIdSchema } from './common';

// ----- reconcile / reset-state -----

/** Instances (and hosts) the reconciler reads and heals per batch. */
export const DEFAULT_RECONCILE_BATCH_SIZE = 100;

export const ReconcileInputSchema = z.lazy(() =>
  z
    .object({
      /** Decide and report, change nothing. */
      dryRun: z.boolean().default(false),
      /** Instances, then hosts, read per batch; the workflow continues as new when its history grows. */
      batchSize: z.number().int().min(1).max(1000).default(DEFAULT_RECONCILE_BATCH_SIZE),
      /** Batches one run of the workflow handles before it continues as new (its history stays bounded). */
      batchesPerRun: z.number().int().min(1).max(1000).default(50),
      /** Compute-queue timeouts of the clean-up calls (a down host gives up within the clean-up bound). */
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
      /** Set by the workflow itself when it continues as new: where it was, and what it decided so far. */
      resume: z
        .object({
          phase: z.enum(['instances', 'hosts']),
          after: z.string().max(255).nullable(),
          decisions: z.array(z.looseObject({ kind: z.string(), subject: z.string() })).max(10_000),
          dropped: z.number().int().nonnegative(),
          batches: z.number().int().nonnegative(),
        })
        .strict()
        .optional(),
    })
    .strict()
);
export type ReconcileInput = z.input<typeof ReconcileInputSchema>;
export type ReconcileRequest = z.output<typeof ReconcileInputSchema>;

export const ResetStateInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** Nova's reset-state: `error` (the default there) or `active` (its --active). */
      state: z.enum(['active', 'error']),
    })
    .strict()
);
export type ResetStateInput = z.input<typeof ResetStateInputSchema>;
