/**
 * placementAttempt: the one placement-attempt child workflow. Each run places one instance on one host
 * of the scheduler's list (run N on host N), and its RetryPolicy.maximumAttempts is the reschedule
 * budget; `kind` names the steps it runs there: `build` (claim an alternate, networks, block devices,
 * spawn: Nova's build_and_run_instance), `resize` (claim an alternate, prep_resize) or `unshelve` (claim
 * an alternate, spawn the guest from the shelved image: Nova's unshelve_instance on the compute). A live
 * migration checks its candidates in its own workflow (live/attempt.ts); its `live` kind went with the
 * retired patch `live-fewer-round-trips` (docs/versioning.md).
 *
 * It replaced `buildAttempt` and `resizeAttempt` behind the patch `one-placement-attempt`. `resizeAttempt`
 * stays registered, running the same steps, until no resize started before the patch can still be running;
 * `buildAttempt` went with the retired patch `batched-build` (docs/versioning.md).
 */
import { workflowInfo } from '@temporalio/workflow';

import type { BuildAttemptInput, BuildAttemptResult } from './build/attempt';
import { buildOnHost } from './build/attempt';
import type { ResizeAttemptInput } from './resize/attempt';
import { prepResizeOnHost } from './resize/attempt';
import type { UnshelveAttemptInput } from './unshelve/attempt';
import { unshelveOnHost } from './unshelve/attempt';

/** The patch id of the parents' switch from buildAttempt / resizeAttempt to placementAttempt. */
export const PATCH_ONE_PLACEMENT_ATTEMPT = 'one-placement-attempt';

export type PlacementAttemptInput =
  | ({ kind: 'build' } & BuildAttemptInput)
  | ({ kind: 'resize' } & ResizeAttemptInput)
  | ({ kind: 'unshelve' } & UnshelveAttemptInput);

/** The host this run placed the instance on, and the run's attempt number (a build's: more, see BuildAttemptResult). */
export interface PlacementAttemptResult extends BuildAttemptResult {
  host: string;
  attempt: number;
}

export async function placementAttempt(input: PlacementAttemptInput): Promise<PlacementAttemptResult> {
  if (input.kind === 'resize') return prepResizeOnHost(input);
  if (input.kind === 'unshelve') return unshelveOnHost(input);
  const built = await buildOnHost(input);
  return { ...built, attempt: workflowInfo().attempt };
}
