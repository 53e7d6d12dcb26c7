/**
 * The names a live migration records and the retired patches it still asks (docs/versioning.md).
 * Kept apart from the workflow so that every part of it (src/workflows/live/) can import them.
 */

/** The events of the live migration's steps, as Nova names them (wrap_instance_event). */
export const LIVE_EVENTS = {
  select: 'conductor_live_migrate_instance',
  pre: 'compute_pre_live_migration',
  copy: 'compute_live_migration',
  postDest: 'compute_post_live_migration_at_destination',
  postSource: 'compute_post_live_migration',
  rollbackDest: 'compute_rollback_live_migration_at_destination',
  rollbackSource: 'compute_rollback_live_migration',
  abort: 'compute_live_migration_abort',
  forceComplete: 'compute_live_migration_force_complete',
} as const;

/*
 * Retired patches (docs/versioning.md, step 1): each is asked with deprecatePatch where patched() was
 * asked, so that migrations started by the release before replay; only the new branch is left. Step 2,
 * a release later, removes the calls and these ids.
 */

/** The copy's cancellation waits for the source's answer; the abort says whether it happened. */
export const PATCH_LIVE_ABORT_ANSWERS_OUTCOME = 'live-abort-answers-outcome';

/** The abort and force-complete Updates record their step (and their notifications). */
export const PATCH_LIVE_ABORT_FORCE_EVENTS = 'live-abort-force-complete-events';

/** After the switch-over the destination's receiving is cancelled, not waited for. */
export const PATCH_LIVE_RECEIVER_NOT_AWAITED = 'live-receiver-not-awaited';

/** A failure after the switch-over still removes the source's paused guest. */
export const PATCH_LIVE_ERROR_CLEANS_SOURCE = 'live-error-after-switch-cleans-source';

/** The plan, the lock and the end local; liveness asked beside the lock; pre-checks in this workflow. */
export const PATCH_LIVE_FEWER_ROUND_TRIPS = 'live-fewer-round-trips';

/**
 * The patches moveLive asked, in the order it asked them: the migration's writes and events local
 * (`live-local-writes`), the source's checks beside the selection (`live-checks-side-by-side`), each
 * event beside the next write (`live-events-beside-writes`), the allocation's move a local activity
 * (`live-local-allocation-move`), the action finished by the instance's last write (`live-one-write-end`).
 */
export const RETIRED_MOVE_PATCHES = [
  'live-local-writes',
  'live-checks-side-by-side',
  'live-events-beside-writes',
  'live-local-allocation-move',
  'live-one-write-end',
] as const;
