/**
 * Scheduler and placement activities, on the `scheduler` queue. The conductor calls them and waits
 * (Nova's synchronous select_destinations call). Models nova/scheduler/manager.py and the placement
 * calls of nova/scheduler/client/report.py.
 */
import { log } from '@temporalio/activity';
import { z } from 'zod';

import type { Catalogue } from '../../domain/catalogue';
import { resolveFlavor, resolveImage } from '../../domain/catalogue';
import type { ClaimFailed } from '../../domain/errors';
import { FailureType, NoValidHost } from '../../domain/errors';
import type { HostSpec } from '../../domain/fleet';
import { HostSpecSchema } from '../../domain/fleet';
import { flavorResources, RequestSpecSchema } from '../../domain/request-spec';
import type { RequestSpecInput } from '../../domain/request-spec';
import type { Resources } from '../../domain/resources';
import { HostNameSchema } from '../../domain/schemas';
import { parseOrInvalid } from '../../domain/validation';
import { selectDestinations as selectHosts } from '../../scheduler/select-destinations';
import type { InstanceSelection, Rng, SchedulerConfig, SchedulingRequest } from '../../scheduler/types';
import type { InstanceRepository } from '../../store/instances';
import type { PlacementRepository } from '../../store/placement';
import type { HostLiveness } from './liveness';
import { createReconcileReads } from './reconcile';

export interface SchedulerDeps {
  placement: PlacementRepository;
  instances: InstanceRepository;
  catalogue: Catalogue;
  liveness: HostLiveness;
  config: SchedulerConfig;
  rng: Rng;
}

/** Selections whose chosen hosts could not all be claimed are re-selected on fresh host states. */
const SELECTION_ROUNDS = 3;

const ClaimInputSchema = z.object({
  consumerId: z.string().min(1).max(64),
  host: HostNameSchema,
  resources: z.object({
    VCPU: z.number().int().nonnegative(),
    MEMORY_MB: z.number().int().nonnegative(),
    DISK_GB: z.number().int().nonnegative(),
  }),
});
const ReleaseInputSchema = z.object({ consumerId: z.string().min(1).max(64), host: HostNameSchema.optional() });
const MoveInputSchema = z.object({ from: z.string().min(1).max(64), to: z.string().min(1).max(64) });
const BuildResultSchema = z.object({ host: HostNameSchema, success: z.boolean() });
const HostFlagSchema = z.object({ host: HostNameSchema, value: z.boolean(), reason: z.string().max(255).optional() });

export interface SelectDestinationsResult {
  selections: InstanceSelection[];
  /** The resources claimed on each chosen host (per instance). */
  resources: Resources;
  /** The availability zone of every host in the selections (the instance takes its host's zone). */
  hostZones: Record<string, string>;
}

export function createSchedulerActivities(deps: SchedulerDeps) {
  const { placement, instances, catalogue, liveness, config, rng } = deps;

  /** Resolves the instance ids of hints into the hosts they live on. */
  async function hostsOf(instanceIds: readonly string[] | undefined): Promise<Set<string> | undefined> {
    if (!instanceIds?.length) return undefined;
    const hosts = new Set<string>();
    for (const id of instanceIds) for (const a of await placement.getAllocations(id)) hosts.add(a.host);
    return hosts;
  }

  /**
   * A consumer's allocations anywhere but its instance's current host can only be left over from an
   * earlier attempt of this same selection (a claim whose answer was lost): release them, so a retried
   * selection never leaves the instance holding two claims. An evacuating instance keeps its source.
   */
  async function releaseLeftoverClaims(instanceIds: readonly string[]): Promise<void> {
    for (const instanceId of instanceIds) {
      const home = (await instances.find(instanceId))?.host ?? null;
      for (const { host } of await placement.getAllocations(instanceId)) {
        if (host !== home) await placement.releaseConsumer(instanceId, host);
      }
    }
  }

  /** Claims the first of the selection's hosts (chosen, then alternates) that still has room. */
  async function claimFirstWithRoom(selection: InstanceSelection, resources: Resources): Promise<string> {
    let failure: unknown;
    for (const host of selection.hosts) {
      try {
        await placement.claim(selection.instanceId, host, resources);
        return host;
      } catch (err) {
        if ((err as Error).name !== FailureType.ClaimFailed) throw err;
        failure = err;
        log.info('claim lost a race; claiming the next alternate', { host, reason: (err as Error).message });
      }
    }
    throw failure;
  }

  return {
    // The reconciler's reads of placement (src/activities/scheduler/reconcile.ts).
    ...createReconcileReads(deps),
    /**
     * Filters and weighs the hosts, claims the chosen host of every instance (all or nothing) and
     * returns it followed by up to maxAttempts-1 alternates. With `minCount`, the instances after the
     * first minCount are placed while there is room (the selections list only those placed). Throws
     * NoValidHost, InvalidRequest.
     */
    async selectDestinations(input: RequestSpecInput): Promise<SelectDestinationsResult> {
      const spec = parseOrInvalid(RequestSpecSchema, input);
      const flavor = typeof spec.flavor === 'string' ? resolveFlavor(catalogue, spec.flavor) : spec.flavor;
      const image = typeof spec.image === 'string' ? resolveImage(catalogue, spec.image) : spec.image;
      const hints = spec.schedulerHints;
      const group = hints.group ? await instances.getServerGroup(hints.group) : undefined;
      if (hints.group && !group) throw new NoValidHost(`Server group ${hints.group} does not exist.`);
      const request: SchedulingRequest = {
        instanceIds: spec.instanceIds,
        flavor,
        image,
        availabilityZone: spec.availabilityZone,
        sameHostHosts: await hostsOf(hints.sameHost),
        differentHostHosts: await hostsOf(hints.differentHost),
        serverGroup: group ? { name: group.name, policy: group.policy, hosts: new Set(group.hosts) } : undefined,
        ignoreHosts: spec.ignoreHosts.length ? new Set(spec.ignoreHosts) : undefined,
        requestedHost: spec.requestedHost,
        forcedHost: spec.forcedHost,
        isRebuild: spec.isRebuild,
        maxAttempts: spec.maxAttempts,
        minCount: spec.minCount,
      };
      const resources = flavorResources(flavor);
      if (!spec.isRebuild) await releaseLeftoverClaims(spec.instanceIds);
      let lastFailure: ClaimFailed | undefined;
      for (let round = 0; round < SELECTION_ROUNDS; round++) {
        const hosts = await placement.listHostStates((h) => liveness.isUp(h));
        const selections = selectHosts(hosts, request, config, rng);
        const selected = new Set(selections.flatMap((s) => s.hosts));
        const hostZones = Object.fromEntries(
          hosts.filter((h) => selected.has(h.host)).map((h) => [h.host, h.availabilityZone])
        );
        if (spec.isRebuild) return { selections, resources, hostZones };
        const claimed: InstanceSelection[] = [];
        try {
          for (const selection of selections) {
            // NOTE(nova): a host that filled up since it was weighed gives way to the next ranked one,
            // as the conductor claims alternates; several instances keep the pass's placement (group
            // policies) and re-select instead.
            let host = selection.hosts[0]!;
            if (selections.length === 1) host = await claimFirstWithRoom(selection, resources);
            else await placement.claim(selection.instanceId, host, resources);
            selection.hosts = [host, ...selection.hosts.filter((h) => h !== host)];
            claimed.push(selection);
          }
          return { selections, resources, hostZones };
        } catch (err) {
          // All or nothing: a request that cannot place every instance holds no claim.
          for (const s of claimed) await placement.releaseConsumer(s.instanceId, s.hosts[0]);
          if ((err as Error).name !== FailureType.ClaimFailed) throw err;
          lastFailure = err as ClaimFailed;
          log.info('claim lost a race; selecting again', { round, reason: lastFailure.message });
        }
      }
      throw new NoValidHost(`Hosts filled up while claiming: ${lastFailure?.message ?? 'unknown'}`);
    },

    /** Claims an alternate host for a reschedule; ClaimFailed when it filled up meanwhile. */
    async claimResources(input: z.input<typeof ClaimInputSchema>): Promise<void> {
      const { consumerId, host, resources } = parseOrInvalid(ClaimInputSchema, input);
      await placement.claim(consumerId, host, resources);
    },

    /** Releases a consumer's allocations (on one host, or everywhere). Idempotent. */
    async releaseAllocations(input: z.input<typeof ReleaseInputSchema>): Promise<{ released: number }> {
      const { consumerId, host } = parseOrInvalid(ReleaseInputSchema, input);
      return { released: await placement.releaseConsumer(consumerId, host) };
    },

    /** Moves every allocation of one consumer to another, atomically (resize: instance <-> migration). */
    async moveAllocations(input: z.input<typeof MoveInputSchema>): Promise<void> {
      const { from, to } = parseOrInvalid(MoveInputSchema, input);
      await placement.moveAllocations(from, to);
    },

    /** Feeds the build-failure weigher: a failure sinks the host, a success resets it. */
    async recordBuildResult(input: z.input<typeof BuildResultSchema>): Promise<void> {
      const { host, success } = parseOrInvalid(BuildResultSchema, input);
      await placement.recordBuildResult(host, success);
    },

    /** A compute host reports its inventory at start-up (it holds no database credentials itself). */
    async registerHost(input: z.input<typeof HostSpecSchema>): Promise<HostSpec> {
      const spec = parseOrInvalid(HostSpecSchema, input);
      await placement.upsertProvider(spec);
      return spec;
    },

    async setHostDisabled(input: z.input<typeof HostFlagSchema>): Promise<void> {
      const { host, value, reason } = parseOrInvalid(HostFlagSchema, input);
      await placement.setDisabled(host, value, reason);
    },

    async setHostForcedDown(input: z.input<typeof HostFlagSchema>): Promise<void> {
      const { host, value } = parseOrInvalid(HostFlagSchema, input);
      await placement.setForcedDown(host, value);
    },

    /** Orphaned allocations and hosts over capacity (Nova's `nova-manage placement audit`). */
    async auditPlacement(): Promise<Awaited<ReturnType<PlacementRepository['audit']>>> {
      return placement.audit();
    },

    /** Where an instance holds allocations (for checks and tests). */
    async getAllocations(input: {
      consumerId: string;
    }): Promise<Awaited<ReturnType<PlacementRepository['getAllocations']>>> {
      const { consumerId } = parseOrInvalid(ReleaseInputSchema.pick({ consumerId: true }), input);
      return placement.getAllocations(consumerId);
    },

    // ----- host services, rebuild / evacuate ------------------------------------------------------

    /**
     * A compute host's service as the scheduler sees it: `up = !forcedDown && liveness.isUp(host)` (Nova's
     * servicegroup API with forced_down), whether it is enabled (the ComputeFilter skips a disabled host)
     * and why. An evacuation is allowed only while its source is down; `setHostService` returns this.
     * `known` is false for a host placement does not know (then it is not up either).
     */
    async isHostUp(input: { host: string }): Promise<HostUpResult> {
      const { host } = parseOrInvalid(z.object({ host: HostNameSchema }), input);
      // A down verdict looked at again first: a delete must not leave the guest to a host whose worker
      // came back since the last refresh (it would not reconcile again until its next restart).
      if (!liveness.isUp(host)) await liveness.recheck?.(host).catch(() => undefined);
      const state = (await placement.listHostStates((h) => liveness.isUp(h))).find((h) => h.host === host);
      const alive = liveness.isUp(host);
      if (!state)
        return {
          host,
          known: false,
          up: false,
          reason: 'not a registered compute host',
          availabilityZone: null,
          enabled: false,
          disabledReason: null,
          forcedDown: false,
          alive,
        };
      const reason = state.up ? 'up' : state.forcedDown ? 'forced down' : 'no live compute worker';
      return {
        host,
        known: true,
        up: state.up,
        reason,
        availabilityZone: state.availabilityZone,
        enabled: state.enabled,
        disabledReason: state.disabledReason,
        forcedDown: state.forcedDown,
        alive,
      };
    },

    /** The consumers holding allocations on a host: what a returning host reconciles (evacuated instances). */
    async listHostConsumers(input: { host: string }): Promise<{ consumerIds: string[] }> {
      const { host } = parseOrInvalid(z.object({ host: HostNameSchema }), input);
      return { consumerIds: (await placement.allocationsByHost(host)).map((a) => a.consumerId) };
    },
  };
}

/** A compute host's service for the conductor: up or down and why, enabled or disabled and why. */
export interface HostUpResult {
  host: string;
  known: boolean;
  /** Schedulable and evacuation-proof: not forced down and a live compute worker. */
  up: boolean;
  reason: 'up' | 'forced down' | 'no live compute worker' | 'not a registered compute host';
  availabilityZone: string | null;
  /** The ComputeFilter passes only enabled hosts (Nova's service disable). */
  enabled: boolean;
  disabledReason: string | null;
  /** Nova's forced_down, set by an operator: down whatever its liveness. */
  forcedDown: boolean;
  /** A compute worker polls the host's queue (Temporal's view, with hysteresis), forced down or not. */
  alive: boolean;
}

export type SchedulerActivities = ReturnType<typeof createSchedulerActivities>;
