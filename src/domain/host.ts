/**
 * A compute host as the conductor's domain sees it: its name (which becomes its task queue), its state
 * as the scheduler's filters and weighers read it (Nova's host_manager.HostState), and server groups.
 */
import type { Inventory, ResourceClass } from './resources';

/** Host names become task-queue names, so they are held to DNS-label rules (no arbitrary queue). */
export const HOST_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** One host as the filters and weighers see it. `used` is the sum of its current allocations. */
export interface HostState {
  host: string;
  availabilityZone: string;
  /** Host CPU architecture, matched against an image's hwArchitecture. */
  architecture: string;
  traits: ReadonlySet<string>;
  enabled: boolean;
  disabledReason: string | null;
  /** Nova's forced_down: an operator reports the host down whatever its liveness (`up` is then false). */
  forcedDown: boolean;
  /** A compute worker for this host is live (it polled recently or heartbeated its service record). */
  up: boolean;
  inventories: Record<ResourceClass, Inventory>;
  used: Record<ResourceClass, number>;
  /** Placement generation, for the compare-and-swap claim. */
  generation: number;
  /** Builds that failed on this host since its last success (Nova's failed_builds counter). */
  failedBuilds: number;
  /** Instances whose allocations are on this host (for same/different-host hints and server groups). */
  instances: ReadonlySet<string>;
}

export const ServerGroupPolicy = { Affinity: 'affinity', AntiAffinity: 'anti-affinity' } as const;
export type ServerGroupPolicy = (typeof ServerGroupPolicy)[keyof typeof ServerGroupPolicy];
