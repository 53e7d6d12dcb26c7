/**
 * The decision of a resized instance (VERIFY_RESIZE), each its own operation on the frame (a staged
 * operation: its steps, then its success write; a failure ends it through the one failure writer):
 * confirm (the source guest goes and the migration's allocation is freed) or revert (the destination guest
 * goes and the instance is back on its source as it was). And the check a user's confirm makes first.
 */
import { patched } from '@temporalio/workflow';

import { InstanceInvalidState } from '../../domain/errors';
import { PowerState, VmState } from '../../domain/instance';
import type { ResizeOutcome } from '../../shared/messages';
import { runStep } from '../lib/kernel';
import { computeOn, scheduler } from '../lib/proxies';
import { runStagedOperation } from '../lib/staged-operation';
import type { Moved } from './move';
import type { ResizeMove } from './steps';
import {
  destroyTarget,
  markMigrationFailed,
  restorePatch,
  restoreSource,
  setMigrationStatus,
  sourceLost,
  sourceLostFailure,
} from './steps';

/** The patch id of the confirm's check that the source host is up (Nova refuses a confirm otherwise). */
export const PATCH_CONFIRM_SOURCE_UP = 'confirm-checks-source-up';

/**
 * NOTE(nova): the API refuses a confirm while the source's compute service is down (ServiceUnavailable,
 * 409): a typed refusal, nothing changed; the resize still awaits its decision. Versioned.
 */
export async function checkSourceUp({ source, instanceId }: ResizeMove): Promise<void> {
  if (!patched(PATCH_CONFIRM_SOURCE_UP)) return;
  const state = await scheduler.isHostUp({ host: source });
  if (state.up) return;
  const why = `: the compute service of its source host ${source} is down (${state.reason}). Service is unavailable at this time.`;
  throw new InstanceInvalidState(instanceId, 'vmState', VmState.Resized, 'confirmResize', why);
}

/** confirmResize (user or automatic): the source guest goes and the migration's allocation is freed. */
// NOTE(nova): an automatic confirm or a delete's confirm while the source is down fails
// ComputeHostUnavailable (the instance stays on its destination with the fault; the source's
// reconcileHost removes the aside guest); a user's confirm is refused first (checkSourceUp).
export function confirmMove({ move, instance: resized, attempt }: Moved, automatic: boolean): Promise<ResizeOutcome> {
  const { instanceId, migrationId, source, req } = move;
  const label = automatic ? 'confirming automatically (confirm window over)' : 'confirming';
  // NOTE(nova): confirm leaves the instance stopped when its guest is shut down, else active.
  const vmState = resized.powerState === PowerState.Shutdown ? VmState.Stopped : VmState.Active;
  const released = () => scheduler.releaseAllocations({ consumerId: migrationId });
  return runStagedOperation({
    begin: { instanceId, transition: 'confirmResize', operation: 'resizeMigrate' },
    steps: async (c) => {
      c.progress.step = label;
      await setMigrationStatus(move, 'confirming', ['finished']);
      await runStep(c, {
        event: 'compute_confirm_resize',
        label,
        host: source,
        compute: source,
        attempt,
        run: () => computeOn(source, req.timeouts).short.confirmResize({ instanceId, migrationId }),
      });
    },
    commit: async () => {
      await released();
      const migration = await setMigrationStatus(move, 'confirmed', ['confirming']);
      return { done: { vmState }, result: (instance) => ({ decision: 'confirmed', automatic, instance, migration }) };
    },
    // NOTE(nova): the migration's allocation is deleted even when the confirm fails
    // (_delete_allocation_after_move); the instance lives on, on its destination.
    stableState: async () => {
      await released();
      await markMigrationFailed(move);
      return { vmState, powerState: resized.powerState };
    },
  });
}

/**
 * revertResize: the destination guest goes, the instance is back on its source as it was. A source that
 * cannot take it back leaves it in ERROR there with no allocation (sourceLost).
 */
export function revertMove({ move, dest, attempt }: Moved, automatic: boolean): Promise<ResizeOutcome> {
  return runStagedOperation({
    begin: { instanceId: move.instanceId, transition: 'revertResize', operation: 'resizeMigrate' },
    steps: async (r) => {
      r.progress.step = 'reverting';
      await setMigrationStatus(move, 'reverting', ['finished']);
      await destroyTarget(move, r, dest, attempt);
      // NOTE(nova): finish_revert_resize moves the migration's allocation back to the instance, which
      // replaces the instance's allocation on the destination.
      await move.revertAllocation();
      return restoreSource(move, r, move.powerOn, attempt);
    },
    commit: async (_r, powerState) => {
      const migration = await setMigrationStatus(move, 'reverted', ['reverting']);
      return {
        done: restorePatch(move, powerState),
        result: (instance) => ({ decision: 'reverted', automatic, instance, migration }),
      };
    },
    failure: (err) => sourceLostFailure(move, err, err),
    // Back on the source (only the migration record's last write failed), or not taken back there.
    stableState: async (_r, err, powerState) =>
      powerState === undefined ? sourceLost(move, err) : restorePatch(move, powerState),
  });
}
