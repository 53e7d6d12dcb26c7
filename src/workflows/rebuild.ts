/**
 * rebuild: Nova's ComputeTaskManager.rebuild_instance plus the compute's rebuild_instance, made durable.
 * One workflow type serves both of Nova's cases, as one RPC method does in Nova:
 *
 * - **Rebuild** (default): re-create the instance on its own host, with a new image or the same one.
 * - **Evacuate** (`evacuate: true`): Nova's rebuild_instance with `recreate=True`. Evacuate is an option of
 *   this workflow type, not a type of its own, so the four contract types users start (buildInstance,
 *   rebuild, resizeMigrate, stop) stay as they are. Its instance action is `evacuate`.
 *
 * Rebuild, on the instance's host (Nova's §1.3 table):
 * 1. Refusals that change nothing: an unknown image or one the flavor is too small for (InvalidRequest
 *    naming `image`), a vm state other than active / stopped / error (InstanceInvalidState), then the
 *    operation lock: the task-state compare-and-swap, failing at once with InstanceInvalidState naming the
 *    state when another operation holds the instance.
 * 2. `rebuild_server` (conductor). The same image skips the scheduler and placement. A new image is checked
 *    against the current host by the scheduler (`scheduler_select_destinations`: isRebuild, requestedHost
 *    = the host; only the filters that run on rebuild, such as ImagePropertiesFilter; nothing claimed):
 *    NoValidHost when the host's architecture does not fit.
 * 3. On the host: `rebuild_block_device_mapping` (the old guest removed, the port kept, the root disk laid
 *    out from the image), then `rebuild_spawning` (boot, heartbeated). A stopped instance stays stopped.
 * 4. Done: active (an error instance too, as in Nova) or stopped, with the new image.
 *    Failed: error with a fault, the original image kept (Nova rolls image_ref back) and the allocation
 *    kept (the instance is still on its host; a later rebuild or a delete takes it from there).
 *
 * Evacuate, away from a host that is down:
 * 1. Refusals that change nothing: the instance's vm state (active / stopped / error; any task state:
 *    evacuate is the one operation that may take over an instance another operation holds, e.g. a stop
 *    stuck on the dead host, Nova bug 1978983), an instance with no host, a source host that is up
 *    (`ComputeServiceInUse`: "Compute service of <host> is still in use."; up = a live worker and not
 *    forced down), a requested host that is the source (InvalidRequest) or unknown or down.
 * 2. A migration record (type `evacuation`, `accepted`). The destination: the scheduler picks one other
 *    than the source (`scheduler_select_destinations` with ignoreHosts [source], the instance's
 *    availability zone and server group; a requested host restricts it to that host, whose filters must
 *    pass: Nova's 2.29+ evacuate) and claims it; a forced host (`force`, Nova's 2.29–2.67 `force`, and
 *    every requested host below 2.29) is claimed directly (`conductor_claim_requested_host`; a full host
 *    is NoValidHost). The destination claim is for the instance itself, whose source allocation stays:
 *    the instance holds allocations on both hosts, as in Nova. maxAttempts 1: an evacuation is never
 *    retried elsewhere. For an instance in a server group, the late check of its policy on the
 *    destination (`compute_validate_instance_group_policy`, Nova's _validate_instance_group_policy in
 *    rebuild_instance): a violation fails the evacuation as BuildAborted (Nova: BuildAbortException, no
 *    other host tried). Both behind the patch `evacuate-destination-checked`: before it, every requested
 *    host was claimed directly and no late check ran.
 * 3. On the destination (its own task queue): `rebuild_block_device_mapping`, `rebuild_spawning`.
 * 4. Done: host = destination, its zone; active, or stopped if it was stopped (Nova 2.95 ends every
 *    evacuation stopped; here the power state is kept); migration `done`. The source allocation and the
 *    source's guest stay until the source compute returns: its start-up reconciliation (the
 *    `reconcileHost` workflow) destroys the guest, releases the allocation, marks the migration
 *    `completed`.
 *    Failed or cancelled: the destination's half-made guest destroyed, its claim released, migration
 *    `error`, and the instance keeps its previous state (not error) with a fault. (Nova restores the
 *    state only for a claim failure on the destination and sets ERROR otherwise; the issue asks for the
 *    previous state every time.)
 *
 * Both run on the frame (lib/define-operation.ts): the reads and refusals before the lock, the steps with
 * their undos, one failure writer. Compensations run in non-cancellable scopes. Cancelling leaves a stable state: a rebuild cancelled
 * before the host removed the old guest keeps its previous state; after that it ends error (no guest, the
 * original image kept) with a fault. Either way the result, or the failure, carries the instance record.
 */
import { isCancellation } from '@temporalio/workflow';

import { InstanceInvalidState } from '../domain/errors';
import type { InstanceRecord } from '../domain/instance';
import { VmState } from '../domain/instance';
import type { RebuildInput } from '../domain/schemas';
import { RebuildInputSchema } from '../domain/schemas';
import { defineOperation, step } from './lib/define-operation';
import { parseInput } from './lib/failures';
import { runStep } from './lib/kernel';
import { scheduler } from './lib/proxies';
import { evacuateOperation } from './rebuild/evacuate';
import type { GuestOutcome, RebuildSpec } from './rebuild/shared';
import { classify, currentPowerState, guestSteps, resolveSpec, sharedChecks } from './rebuild/shared';

/** Rebuilds (or evacuates) one instance and returns its record. See the module comment. */
export async function rebuild(input: RebuildInput): Promise<InstanceRecord> {
  return parseInput(RebuildInputSchema, input).evacuate ? evacuateOperation(input) : rebuildOperation(input);
}

/** A same-host rebuild (Nova's rebuild_instance with recreate=False). */
const rebuildOperation = defineOperation({
  name: 'rebuild',
  input: RebuildInputSchema,
  transition: 'rebuild',
  lookup: resolveSpec,
  checks: sharedChecks<RebuildSpec>('rebuild', (found) => found),
  // The lock was taken after the pre-check: the instance may have moved or changed flavor meanwhile.
  prepare: (op, _req, { instance, flavor }): GuestOutcome => {
    if (op.before.host !== instance.host || op.before.flavor !== flavor.name)
      throw InstanceInvalidState.changedMeanwhile(
        op.instanceId,
        'rebuild',
        `changed (host ${op.before.host ?? 'None'}, flavor ${op.before.flavor})`
      );
    return { powerState: op.before.powerState };
  },
  steps: ({ req, op, host, ctx, found: { flavor, image } }) => [
    step({
      event: 'rebuild_server',
      label: 'rebuilding',
      // NOTE(nova): the same image skips the scheduler and placement; a new image is checked against
      // the current host by the filters that run on rebuild, and nothing is claimed.
      run: async () => {
        if (image.name === op.before.image) return;
        await runStep(op, {
          event: 'scheduler_select_destinations',
          label: `checking image ${image.name} against ${host}`,
          host,
          run: () =>
            scheduler.selectDestinations({
              instanceIds: [op.instanceId],
              flavor,
              image,
              requestedHost: host,
              isRebuild: true,
              maxAttempts: 1,
            }),
        });
      },
    }),
    ...guestSteps(op, req, host, { flavor, image }, ctx),
  ],
  cancellation: 'steps',
  done: ({ op, ctx, found }) => ({
    vmState: op.before.vmState === VmState.Stopped ? VmState.Stopped : VmState.Active,
    powerState: ctx.powerState,
    image: found.image.name,
  }),
  failure: ({ host }, err) => classify(err, host),
  // Refused once locked (prepare), or cancelled before the host removed the old guest: as it was.
  // NOTE(nova): a failed rebuild ends ERROR with a fault; the original image is kept (never written).
  stableState: async ({ req, op, host, ctx }, err) => {
    if (ctx === undefined) return undefined;
    const untouched = !op.journal.reachedHost(host);
    if (isCancellation(err) && untouched) return undefined;
    const powerState = untouched ? op.before.powerState : await currentPowerState(host, req.timeouts, op.instanceId);
    return { vmState: VmState.Error, powerState };
  },
});
