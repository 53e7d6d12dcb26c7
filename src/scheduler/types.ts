/**
 * The pure scheduler's vocabulary (mirrors nova/scheduler/host_manager.py HostState and RequestSpec).
 * Nothing here does I/O: the scheduler activity loads HostStates from placement, resolves instance
 * ids to hosts, and passes an injected random source.
 */
import type { Flavor, Image } from '../domain/catalogue';
import { ServerGroupPolicy } from '../domain/host';
import type { HostState } from '../domain/host';

export { ServerGroupPolicy };
export type { HostState };

/** What the scheduler is asked for, with every reference already resolved. */
export interface SchedulingRequest {
  /** One id per instance to place; the request places all of them or none (but see minCount). */
  instanceIds: readonly string[];
  /**
   * Multi-create: at least this many (the first ones) or none; the instances after them are placed while
   * hosts remain and left out once one finds no host. Default: all of them.
   */
  minCount?: number;
  flavor: Flavor;
  image: Image;
  availabilityZone?: string;
  /** Hosts the instances of `sameHost` hint live on (SameHostFilter): the chosen host must be one of them. */
  sameHostHosts?: ReadonlySet<string>;
  /** Hosts of the `differentHost` hint (DifferentHostFilter): never chosen. */
  differentHostHosts?: ReadonlySet<string>;
  serverGroup?: { name: string; policy: ServerGroupPolicy; hosts: ReadonlySet<string> };
  /** Hosts never to choose (a migration's source, hosts already tried). */
  ignoreHosts?: ReadonlySet<string>;
  /** Restrict to this host, still running the filters (Nova's requested_destination). */
  requestedHost?: string;
  /** Use this host bypassing the filters, except that it must exist (Nova's force_hosts). */
  forcedHost?: string;
  /** The rebuild path: only filters that run on rebuild, and no claim. */
  isRebuild?: boolean;
  /** Hosts to return per instance: the chosen one plus up to maxAttempts-1 alternates. */
  maxAttempts: number;
}

/** Scheduler knobs (Nova's [filter_scheduler] options). */
export interface SchedulerConfig {
  /** Pick at random among the best N hosts (host_subset_size). */
  hostSubsetSize: number;
  ramWeightMultiplier: number;
  cpuWeightMultiplier: number;
  diskWeightMultiplier: number;
  buildFailureWeightMultiplier: number;
}

export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = {
  hostSubsetSize: 1,
  ramWeightMultiplier: 1.0,
  cpuWeightMultiplier: 1.0,
  diskWeightMultiplier: 1.0,
  buildFailureWeightMultiplier: 1000000.0,
};

/** A random source in [0, 1), injected so tests get deterministic picks. */
export type Rng = () => number;

/** The outcome for one instance: the host to claim, then alternates in preference order. */
export interface InstanceSelection {
  instanceId: string;
  hosts: string[];
}
