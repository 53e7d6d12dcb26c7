/**
 * The names a live migration records.
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
