/** The `deleteInstance` workflow's input. Built lazily: see index.ts. */
import { z } from 'zod';

import { ComputeTimeoutsSchema, DEFAULT_COMPUTE_TIMEOUTS, InstanceIdSchema } from './common';

/** Nova's terminate_instance: the seconds a delete waits for the operation it cancelled to let go. */
export const DEFAULT_HOLDER_WAIT_SECONDS = 300;

export const DeleteInstanceInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /**
       * How long to wait for the operation holding the instance to roll back once cancelled; after that
       * the delete takes the instance over anyway (the operation's later writes then fail their
       * compare-and-swap, and whatever it leaves on a host the host's reconciliation destroys).
       */
      holderWaitSeconds: z.number().int().positive().max(86_400).default(DEFAULT_HOLDER_WAIT_SECONDS),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type DeleteInstanceInput = z.input<typeof DeleteInstanceInputSchema>;
