/**
 * The input of pause, unpause, suspend and resume (Nova's API actions `pause`, `unpause`, `suspend`,
 * `resume`, each with no argument): the instance, and the compute timeouts a caller may shorten.
 */
import { z } from 'zod';

import { ComputeTimeoutsSchema, DEFAULT_COMPUTE_TIMEOUTS, InstanceIdSchema } from './schemas';

export const PauseInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
/** The input of `pause`, `unpause`, `suspend` and `resume` alike. */
export type PauseInput = z.input<typeof PauseInputSchema>;
