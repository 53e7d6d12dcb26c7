/** Queries, signals and updates, defined apart from workflow bodies so clients can import them. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

import type { InstanceRecord, PowerState, TaskState, VmState } from '../domain/instance';
import type { MigrationRecord } from '../domain/migration';

/** Live progress of an operation: what `temporal workflow query --name getProgress` prints. */
export interface OperationProgress {
  instanceId: string;
  operation: string;
  vmState: VmState;
  taskState: TaskState | null;
  powerState: PowerState;
  host: string | null;
  /** 1-based placement attempt (0 before the first). */
  attempt: number;
  /** The step in progress, e.g. "spawn on compute-a". */
  step: string;
  hostsTried: string[];
}

export const getProgressQuery = defineQuery<OperationProgress>('getProgress');

/** A placement attempt (child workflow run) tells its parent which host and step it is on. */
export interface PlacementProgress {
  attempt: number;
  host: string;
  taskState: TaskState;
  step: string;
}

export const placementProgressSignal = defineSignal<[PlacementProgress]>('placementProgress');

// ----- resize / migrate -----

/** What confirming or reverting a resize returns; also the resizeMigrate workflow's result. */
export interface ResizeOutcome {
  /** confirmed: the instance stays on the destination (new flavor); reverted: it is back on the source. */
  decision: 'confirmed' | 'reverted';
  /** True when nobody decided within the confirm window and the workflow confirmed by itself. */
  automatic: boolean;
  instance: InstanceRecord;
  migration: MigrationRecord;
}

/**
 * What resizeMigrate returns: the instance record, as every operation does, with how its resize ended.
 */
export type ResizeMigrateResult = InstanceRecord & { resize: Omit<ResizeOutcome, 'instance'> };

/** The workflow's result for a decision's outcome. */
export function resizeResult(outcome: ResizeOutcome): ResizeMigrateResult {
  const { instance, ...resize } = outcome;
  return { ...instance, resize };
}

/**
 * Confirms a resized instance (VERIFY_RESIZE): the source guest is deleted and the source allocation
 * freed. Rejected by its validator (InstanceInvalidState) before the resize has finished and after a
 * revert; a repeated confirm is accepted and returns the same outcome, changing nothing.
 * `temporal workflow update execute --workflow-id <id> --name confirmResize`
 */
export const confirmResizeUpdate = defineUpdate<ResizeOutcome>('confirmResize');

/**
 * Reverts a resized instance (VERIFY_RESIZE): the destination guest is destroyed and the instance is back
 * on its source with its old flavor and allocation, running if it was. Rejected like confirmResize (before
 * the resize has finished, after a confirm); a repeated revert returns the same outcome.
 */
export const revertResizeUpdate = defineUpdate<ResizeOutcome>('revertResize');

/**
 * Sent by a delete to a resize awaiting its confirmation (VERIFY_RESIZE): the resize is confirmed (the
 * source's moved-aside guest deleted, the source allocation freed) and ends, then the delete goes on.
 * NOTE(nova): the API's delete calls _confirm_resize_on_deleting. A resize that has already decided (or
 * is not awaiting a decision) ignores it.
 */
export const confirmBeforeDeleteSignal = defineSignal('confirmBeforeDelete');

// ----- live migration -----

/** How a live migration ended, with its copy's figures. */
export interface LiveMigrationOutcome {
  migration: MigrationRecord;
  /** The switch-over pause, ms. */
  downtimeMs: number;
  rounds: number;
  copiedMb: number;
  /** The operator forced the completion. */
  forced: boolean;
}

export type LiveMigrateResult = InstanceRecord & { liveMigration: LiveMigrationOutcome };

/**
 * Forces a live migration under way to complete: the guest is paused on the source so the copy
 * converges (Nova's live_migration_force_complete). Accepted only while the memory is being copied.
 */
export const forceCompleteUpdate = defineUpdate<{ forced: boolean }>('forceComplete');

/**
 * Aborts a live migration under way (Nova's live_migration_abort): the copy stops, the destination is
 * cleaned, the instance keeps running on its source. Accepted only while the memory is being copied;
 * returns once the copy has been told to stop (the workflow then rolls back and fails LiveMigrationAborted).
 */
export const abortLiveMigrationUpdate = defineUpdate<{ aborted: boolean }>('abortLiveMigration');
