/**
 * The placement attempts of a live migration, one destination each, run by the migration's own workflow
 * (the frame's inline mode): Nova's LiveMigrationTask._find_destination loop body. The first host was
 * claimed by the scheduler; an alternate is claimed here. Then the pre-checks as calls on the hosts'
 * queues: the source's (check_can_live_migrate_source: the guest is there and can move; it returns the
 * source's CPU) and the destination's (check_can_live_migrate_destination: the server group's policy on
 * the destination, as Nova's _validate_instance_group_policy there, then CPU model and features,
 * storage). A failed check releases the claim on that host and the next alternate is tried (bounded by
 * migrate_max_retries).
 */
import type { ComputeActivities } from '../../activities/compute';
import type { Flavor, Image } from '../../domain/catalogue';
import { FailureType } from '../../domain/errors';
import { TaskState as Task, VmState } from '../../domain/instance';
import type { Resources } from '../../domain/resources';
import type { ComputeTimeoutsInput } from '../../domain/schemas';
import type { StepRunner } from '../lib/kernel';
import type { HostAttempt } from '../lib/placement-attempt';
import { GROUP_CHECK_EVENT, hostAttempt } from '../lib/placement-attempt';
import { computeOn, conductor } from '../lib/proxies';

/** Failure types that end the search at once: no other destination can fix them. */
export const LIVE_ABORT_TYPES = [
  FailureType.InvalidRequest,
  FailureType.InstanceNotFound,
  FailureType.InstanceInvalidState,
  FailureType.MigrationError,
];

export interface LiveAttemptInput {
  instanceId: string;
  migrationId: string;
  actionId: string;
  /** The chosen host then the alternates; run N uses hosts[N-1]. */
  hosts: string[];
  sourceHost: string;
  flavor: Flavor;
  image: Image;
  resources: Resources;
  /** As requested: `'auto'` is resolved by the destination against its driver's storage (Nova's block_migration='auto'). */
  blockMigration: boolean | 'auto';
  timeouts: ComputeTimeoutsInput;
  /** The instance's server group, when it has one: its policy is checked again on the destination. */
  serverGroup?: string;
}

/**
 * Each candidate in turn, run by the live migration's own workflow: hostAttempt's inline mode. No child
 * to start, no parent to signal, each step's event a local write of the migration's operation. Run N
 * claims hosts[N-1] when N > 1, checks the source, the group's policy there (when the instance has a
 * group), the destination; a failure releases the claim on that host, an abort type ends the search at
 * once, anything else moves to the next host at once. Every host failing throws the last run's
 * `Rescheduled`, which the caller names MigrationPreCheckError.
 */
export function checkLiveInline(
  op: StepRunner,
  input: LiveAttemptInput,
  firstSourceCheck?: FirstSourceCheck
): Promise<{ host: string; attempt: number }> {
  return hostAttempt({ ...liveAttempt(input, firstSourceCheck), inline: op });
}

/**
 * The source's check of the first attempt, already started beside the selection; the first attempt's
 * step takes its answer instead of asking again.
 */
export type FirstSourceCheck = ReturnType<ComputeActivities['checkCanLiveMigrateSource']>;

/** The live migration's attempt on one destination: its claim, its pre-checks, how it fails. */
function liveAttempt(
  input: LiveAttemptInput,
  firstSourceCheck?: FirstSourceCheck
): HostAttempt<{ host: string; attempt: number }> {
  const { instanceId, sourceHost } = input;
  return {
    instanceId,
    actionId: input.actionId,
    selection: { hosts: input.hosts, resources: input.resources, hostZones: {} },
    task: `the live migration of instance ${instanceId}`,
    operation: 'liveMigrate',
    vmState: VmState.Active,
    taskState: Task.Migrating,
    release: 'release the claim on the destination',
    ending: {
      operation: 'Live migration',
      abortTypes: LIVE_ABORT_TYPES,
      abortDefault: FailureType.MigrationPreCheckError,
    },
    steps: async (placement, op) => {
      const { host, attempt } = placement;
      const { cpu } = await placement.step(op, Task.Migrating, {
        event: 'compute_check_can_live_migrate_source',
        host: sourceHost,
        compute: sourceHost,
        run: () =>
          attempt === 1 && firstSourceCheck
            ? firstSourceCheck
            : computeOn(sourceHost, input.timeouts).short.checkCanLiveMigrateSource({ instanceId }),
      });
      // The group's members as they are now, which a migration or a build finished since the scheduler
      // chose may have changed: a violation fails this destination (Rescheduled), the next is tried.
      // NOTE(nova): Nova checks again, definitively, in pre_live_migration (a violation there fails the
      // migration, the instance stays active); here the check runs once, in the attempt, just before it.
      if (input.serverGroup !== undefined)
        await placement.step(op, Task.Migrating, {
          event: GROUP_CHECK_EVENT,
          host,
          run: () => conductor.checkServerGroupPolicy({ instanceId, host }),
        });
      await placement.step(op, Task.Migrating, {
        event: 'compute_check_can_live_migrate_destination',
        host,
        compute: host,
        run: () =>
          computeOn(host, input.timeouts).short.checkCanLiveMigrateDestination({
            instanceId,
            sourceHost,
            sourceCpu: cpu,
            blockMigration: input.blockMigration,
          }),
      });
      return { host, attempt };
    },
  };
}
