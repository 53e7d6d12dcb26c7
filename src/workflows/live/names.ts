/**
 * The names a live migration records and the patches that version its commands (docs/versioning.md).
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

/**
 * The copy's cancellation waits for the source's answer, and `abortLiveMigration` answers what happened:
 * `aborted: false` when the copy switched over before the cancel reached it (it then finishes).
 */
export const PATCH_LIVE_ABORT_ANSWERS_OUTCOME = 'live-abort-answers-outcome';

/**
 * The abort and the force-complete Updates record their step (`compute_live_migration_abort`,
 * `compute_live_migration_force_complete`), which writes Nova's live_migration_abort and
 * live_migration_force_complete notifications. Histories recorded before it record no such step.
 */
export const PATCH_LIVE_ABORT_FORCE_EVENTS = 'live-abort-force-complete-events';

/**
 * After the switch-over the workflow goes on at once: the destination's receiving step is cancelled but
 * not waited for (its worker learns of the cancel on its next heartbeat, up to a second later, and it
 * only watched the incoming QEMU). Before it, every switch-over waited that second.
 */
export const PATCH_LIVE_RECEIVER_NOT_AWAITED = 'live-receiver-not-awaited';

/**
 * A failure after the switch-over (the destination's post step lost with its killed worker) still removes
 * the source's paused guest before the instance goes to error on the destination, as Nova's
 * _post_live_migration cleans the source whether or not post_live_migration_at_destination succeeded.
 * Histories recorded before it leave the source guest to the host's reconciliation.
 */
export const PATCH_LIVE_ERROR_CLEANS_SOURCE = 'live-error-after-switch-cleans-source';

/**
 * The destination attempt checks the instance's server-group policy on its host (Nova's
 * _validate_instance_group_policy in check_can_live_migrate_destination): a violation fails that
 * destination and the next is tried. Attempts started before it do not check.
 */
export const PATCH_LIVE_LATE_GROUP_CHECK = 'live-late-group-check';

/**
 * Fewer server round trips on the live path (issue 22): the migration's own writes (its record, its
 * statuses) and its steps' events are local activities, run inside the workflow task that asks for them
 * instead of one workflow task each; after the switch-over the source's cleanup and the release of the
 * migration's allocation run at once. The same writes, in the same order, as before.
 */
export const PATCH_LIVE_LOCAL_WRITES = 'live-local-writes';

/**
 * Fewer server round trips again (issue 22's benchmark): the request's plan and the lock are local
 * activities; the source's liveness is asked beside the lock instead of after it; the destinations'
 * pre-checks run in the migration's own workflow (live/attempt.ts checkLiveInline) instead of one
 * placementAttempt child run per candidate (its start, its workflow tasks, its signals to the parent);
 * the instance's last write and the action's end are local activities. The same checks, claims, records
 * and events, in the same order; only a failed candidate's successor starts at once, not after the
 * child's 1 s retry backoff.
 */
export const PATCH_LIVE_FEWER_ROUND_TRIPS = 'live-fewer-round-trips';

/**
 * Scheduler calls and checks side by side (issue 22's benchmark): the source's liveness answer and the
 * move of its allocation to the migration are awaited together (the migration's record, and the move,
 * before the answer: a source that is down then fails the migration `error` with the move undone, as
 * Nova's migration, created before its _check_host_is_up, ends `error`), and the first destination's
 * source check (check_can_live_migrate_source, which asks nothing of the destination) runs beside
 * selectDestinations instead of after it. The same steps, claims, events and undos; two server round
 * trips fewer before the destination's check.
 */
export const PATCH_LIVE_CHECKS_SIDE_BY_SIDE = 'live-checks-side-by-side';

/**
 * A step's event written beside the migration's next write (issue 22's benchmark): the event's local
 * activity is started when its step ends and awaited with the next status write (or the end's), so the
 * two run together instead of one after the other; every event is still written before the migration's
 * next status, and all of them before the instance's last write. Runs before it awaited each event.
 */
export const PATCH_LIVE_EVENTS_BESIDE_WRITES = 'live-events-beside-writes';

/**
 * The source allocation's move to the migration made by the conductor itself (issue 22's benchmark):
 * a local activity (`replaceAllocationWithMigration`, as Nova's conductor calls placement itself) run in
 * the first workflow task right after the migration's record, instead of the scheduler's
 * `moveAllocations` beside the liveness question; the selection and the first source check are then
 * started in that same task, beside the liveness question, and its answer is awaited with the selection
 * (a source found down releases the selection's claim and cancels the source check). One activity round
 * trip fewer before the destination's check.
 */
export const PATCH_LIVE_LOCAL_ALLOCATION_MOVE = 'live-local-allocation-move';

/**
 * The instance's last write and the action's end in one local activity (issue 22's benchmark):
 * updateInstance finishes the action in the same transaction, once the instance is `active` on the
 * destination, instead of a second local activity after it. The same writes in the same order; one
 * local activity fewer in the migration's last workflow task.
 */
export const PATCH_LIVE_ONE_WRITE_END = 'live-one-write-end';
