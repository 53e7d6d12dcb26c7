/**
 * An evacuation (Nova's rebuild_instance with recreate=True): the `rebuild` workflow with `evacuate: true`.
 * See rebuild.ts for what it does.
 */
import { log, uuid4 } from '@temporalio/workflow';

import {
  BuildAborted,
  ComputeHostUnavailable,
  ComputeServiceInUse,
  FailureType,
  InstanceInvalidState,
  InvalidRequest,
  NoValidHost,
} from '../../domain/errors';
import { VmState } from '../../domain/instance';
import type { ComputeTimeoutsInput, RebuildRequest } from '../../domain/schemas';
import { RebuildInputSchema } from '../../domain/schemas';
import { REBUILD_TASK_STATES } from '../../domain/transitions';
import type { OperationRun } from '../lib/define-operation';
import { defineOperation, step } from '../lib/define-operation';
import { failureMessage, isFailureOfType } from '../lib/failures';
import type { KernelOperation, StepSpec } from '../lib/kernel';
import { runStep } from '../lib/kernel';
import { computeOn, conductor, scheduler } from '../lib/proxies';
import type { GuestOutcome, HostState, RebuildSpec } from './shared';
import { classify, guestSteps, refused, resolveSpec, sharedChecks } from './shared';

/** The event of the late server-group check (Nova's _validate_instance_group_policy). */
const GROUP_CHECK_EVENT = 'compute_validate_instance_group_policy';

/** What an evacuation reads before the lock: the rebuild's spec, and the requested host's state (read once, when asked). */
interface EvacuateFound {
  spec: RebuildSpec;
  requested: () => Promise<HostState>;
}

/** What an evacuation's steps learn: its migration, the destination once claimed and its zone, the guest's power state. */
interface Evacuation extends GuestOutcome {
  migrationId: string;
  source: string;
  dest?: string;
  zone: string | null;
}

/** An evacuation (Nova's rebuild_instance with recreate=True) away from the instance's host, which must be down. */
export const evacuateOperation = defineOperation({
  name: 'rebuild',
  input: RebuildInputSchema,
  transition: 'evacuate',
  lookup: async (req): Promise<EvacuateFound> => {
    const spec = await resolveSpec(req);
    let state: Promise<HostState> | undefined;
    return { spec, requested: () => (state ??= scheduler.isHostUp({ host: req.host! }).catch(refused)) };
  },
  checks: {
    ...sharedChecks<EvacuateFound>('evacuate', (found) => found.spec),
    checkTaskState: (_req, { spec: { instance } }) => {
      if (instance.taskState !== null && REBUILD_TASK_STATES.includes(instance.taskState))
        throw new InstanceInvalidState(instance.instanceId, 'taskState', instance.taskState, 'evacuate');
    },
    checkSourceDown: async (_req, { spec: { instance } }) => {
      const source = instance.host!;
      if ((await scheduler.isHostUp({ host: source }).catch(refused)).up) throw new ComputeServiceInUse(source);
    },
    checkRequestedHost: async (req, found) => {
      if (req.host === undefined) return;
      if (req.host === found.spec.instance.host)
        throw new InvalidRequest('host', `the destination must not be the instance's own host ${req.host}`);
      const wanted = await found.requested();
      if (!wanted.known) throw new InvalidRequest('host', `unknown compute host '${req.host}'`);
      if (!wanted.up) throw new ComputeHostUnavailable(req.host, wanted.reason);
    },
  },
  // Evacuate may take over an instance another operation holds (Nova bug 1978983): the one it was read with.
  expectOwner: ({ spec }) => spec.instance.taskOwner,
  prepare: async (op, req, { spec: { instance, flavor } }): Promise<Evacuation> => {
    const source = instance.host!;
    const migrationId = uuid4();
    if (op.before.host !== source)
      throw InstanceInvalidState.changedMeanwhile(
        op.instanceId,
        'evacuate',
        `moved to ${op.before.host ?? 'no host'}`,
        'evacuation'
      );
    await conductor.createEvacuation({
      migrationId,
      instanceId: op.instanceId,
      sourceHost: source,
      destHost: req.host ?? null,
      flavor: flavor.name,
    });
    op.compensations.push('mark the evacuation failed', async () => {
      await conductor.updateEvacuation({ migrationId, status: 'error' });
    });
    return { migrationId, source, zone: null, powerState: op.before.powerState };
  },
  steps: (run) => {
    const { req, op, ctx: evacuation, found } = run;
    const dest = (): string => evacuation.dest!;
    const [prepareDisk, spawn] = [0, 1].map((i) => () => guestSteps(op, req, dest(), found.spec, evacuation)[i]!) as [
      () => StepSpec<unknown>,
      () => StepSpec<unknown>,
    ];
    return [
      step({
        event: 'rebuild_server',
        label: 'evacuating',
        host: evacuation.source,
        run: () => chooseDestination(run),
      }),
      () => ({
        ...prepareDisk(),
        before: async () => {
          await conductor.updateEvacuation({
            migrationId: evacuation.migrationId,
            status: 'pre-migrating',
            destHost: dest(),
          });
          op.progress.hostsTried = [dest()];
        },
        undo: () => destroyOnDestination(op, dest(), req.timeouts),
      }),
      spawn,
    ];
  },
  cancellation: 'steps',
  done: async ({ op, ctx: evacuation }) => {
    await conductor.updateEvacuation({ migrationId: evacuation.migrationId, status: 'done' });
    return {
      vmState: op.before.vmState === VmState.Stopped ? VmState.Stopped : VmState.Active,
      powerState: evacuation.powerState,
      host: evacuation.dest!,
      availabilityZone: evacuation.zone ?? op.before.availabilityZone,
    };
  },
  // The instance keeps its previous state (vm and power state, host), with a fault.
  failure: ({ ctx }, err) => classify(err, ctx?.dest),
});

type EvacuateRun = OperationRun<RebuildRequest, Evacuation, EvacuateFound>;

/**
 * The destination of an evacuation, claimed for the instance (its source allocation stays): the
 * scheduler's choice other than the source, restricted to a requested host; a forced host claimed
 * directly. Then, for an instance in a server group, the late check of its policy there.
 */
async function chooseDestination({ req, op, ctx: evacuation, found }: EvacuateRun): Promise<void> {
  if (req.host !== undefined && req.force) await claimForcedHost(op, req.host, evacuation, found);
  else await selectDestination(op, req, evacuation, found.spec);
  const group = op.before.serverGroup;
  if (group === null) return;
  const host = evacuation.dest!;
  // NOTE(nova): a violation on the destination aborts the evacuation (BuildAbortException), no other host tried.
  await runStep(op, {
    event: GROUP_CHECK_EVENT,
    label: `checking server group ${group} on ${host}`,
    host,
    run: () =>
      conductor.checkServerGroupPolicy({ instanceId: op.instanceId, host }).catch((err: unknown) => {
        if (!isFailureOfType(err, FailureType.GroupAffinityViolation)) throw err;
        throw new BuildAborted(op.instanceId, failureMessage(err));
      }),
  });
}

/** The destination claimed for the instance; only its claim is undone (the source allocation stays). */
function claimed(op: KernelOperation, evacuation: Evacuation, host: string): void {
  evacuation.dest = host;
  op.compensations.push('release the destination claim', async () => {
    await scheduler.releaseAllocations({ consumerId: op.instanceId, host });
  });
}

/** A forced host (Nova's force, 2.29–2.67): claimed directly, no scheduler; a full host is NoValidHost. */
async function claimForcedHost(op: KernelOperation, host: string, evacuation: Evacuation, found: EvacuateFound) {
  const { vcpus, memoryMb, diskGb } = op.before;
  await runStep(op, {
    event: 'conductor_claim_requested_host',
    label: `claiming the requested host ${host}`,
    host,
    run: () =>
      scheduler.claimResources({
        consumerId: op.instanceId,
        host,
        resources: { VCPU: vcpus, MEMORY_MB: memoryMb, DISK_GB: diskGb },
      }),
  });
  claimed(op, evacuation, host);
  evacuation.zone = (await found.requested()).availabilityZone;
}

/** The scheduler's destination other than the source (the requested one, when given), claimed. */
async function selectDestination(op: KernelOperation, req: RebuildRequest, evacuation: Evacuation, spec: RebuildSpec) {
  const { instanceId } = op;
  await runStep(op, {
    event: 'scheduler_select_destinations',
    label: req.host
      ? `checking the requested host ${req.host}`
      : `selecting a destination other than ${evacuation.source}`,
    run: async () => {
      const selected = await scheduler.selectDestinations({
        instanceIds: [instanceId],
        flavor: spec.flavor,
        image: spec.image,
        availabilityZone: op.before.availabilityZone ?? undefined,
        schedulerHints: op.before.serverGroup ? { group: op.before.serverGroup } : {},
        ignoreHosts: [evacuation.source],
        ...(req.host !== undefined ? { requestedHost: req.host } : {}),
        // NOTE(nova): no alternates, no reschedule for an evacuation.
        maxAttempts: 1,
      });
      const chosen = selected.selections[0]?.hosts[0];
      if (chosen === undefined) throw new NoValidHost(`No host was selected for ${instanceId}`);
      claimed(op, evacuation, chosen);
      evacuation.zone = selected.hostZones[chosen] ?? null;
    },
  });
}

/** Undoes a guest the destination may have started: a host that never picked a step up has none. */
async function destroyOnDestination(op: KernelOperation, host: string, timeouts: ComputeTimeoutsInput): Promise<void> {
  if (!op.journal.reachedHost(host)) return;
  await computeOn(host, timeouts)
    .cleanup.destroyInstance({ instanceId: op.instanceId })
    .catch((e: unknown) =>
      log.warn('could not destroy the guest on the evacuation destination; it cleans up when it reconciles', {
        host,
        error: failureMessage(e),
      })
    );
}
