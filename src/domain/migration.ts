/** Migrations (resize, cold migration, evacuation, live migration): the record, its statuses, and what a move works from. */
import type { Flavor, Image } from './catalogue';
import type { InstanceRecord } from './instance';

export type MigrationType = 'resize' | 'migration' | 'evacuation' | 'live-migration';

export interface MigrationRecord {
  /** Also the placement consumer that holds the source allocation during a resize. */
  id: string;
  instanceId: string;
  sourceHost: string;
  destHost: string | null;
  oldFlavor: string;
  newFlavor: string;
  migrationType: MigrationType;
  /** Nova's statuses: pre-migrating, migrating, post-migrating, finished, confirming, confirmed, reverting, reverted, error, failed, done … */
  status: string;
  /** A completed live migration's switch-over pause (the guest paused on its source), ms. */
  downtimeMs?: number;
  createdAt: string;
  updatedAt: string;
}

/** Statuses a resize or cold migration goes through (Nova's, for this migration type). */
export const RESIZE_MIGRATION_STATUSES = [
  'pre-migrating',
  'migrating',
  'post-migrating',
  'finished',
  'confirming',
  'confirmed',
  'reverting',
  'reverted',
  'error',
] as const;
export type ResizeMigrationStatus = (typeof RESIZE_MIGRATION_STATUSES)[number];

/** Statuses a live migration goes through (Nova's, for live-migration). */
export const LIVE_MIGRATION_STATUSES = [
  'accepted',
  'preparing',
  'running',
  'post-migrating',
  'completed',
  'failed',
  'error',
  'cancelled',
] as const;
export type LiveMigrationStatus = (typeof LIVE_MIGRATION_STATUSES)[number];

/** What a resize or a cold migration works from, read before and again after the operation lock. */
export interface MigrationPlan {
  instance: InstanceRecord;
  /** The instance's own sizes (even if the catalogue changed since). */
  oldFlavor: Flavor;
  /** The requested flavor; the old one for a cold migration. */
  newFlavor: Flavor;
  image: Image;
  /** `resize` when the flavor changes, else `migration` (a cold migration). */
  migrationType: 'resize' | 'migration';
}

/** Migration statuses after which a migration holds nothing and nothing more happens to it. */
export const MIGRATION_FINISHED_STATUSES: readonly string[] = [
  'confirmed',
  'reverted',
  'error',
  'failed',
  'completed',
  // Nova's end states for evacuations (done) and aborted live migrations (cancelled).
  'done',
  'cancelled',
];

/** The actions that start each kind of migration. */
const MIGRATION_ACTIONS: Record<MigrationType, readonly string[]> = {
  resize: ['resize'],
  migration: ['migrate'],
  evacuation: ['evacuate'],
  'live-migration': ['live-migration'],
};

/**
 * The workflow that runs a migration: the request of the latest action of its kind started before it
 * (the migration is created by the operation that started that action); undefined when none is found.
 */
export function migrationWorkflowOf(
  migration: Pick<MigrationRecord, 'migrationType' | 'createdAt'>,
  actions: ReadonlyArray<{ action: string; requestId: string; startedAt: string }>
): string | undefined {
  return actions
    .filter((a) => MIGRATION_ACTIONS[migration.migrationType].includes(a.action) && a.startedAt <= migration.createdAt)
    .at(-1)?.requestId;
}
