/**
 * Placement: resource providers (one per compute host), inventories, traits and allocations, with
 * claims as compare-and-swap on the provider generation (nova/scheduler/client/report.py and the
 * placement service it talks to, in one small repository).
 *
 * Consistency rules (every write follows them, in this order, inside one transaction):
 * 1. lock the provider rows it touches by updating them, in host-name order: allocation, inventory and
 *    trait writes bump `generation` (a claim as `... WHERE generation = <read value>`: 0 rows means a
 *    concurrent write, retry), host flags and failed_builds only touch their columns;
 * 2. write inventories / traits / allocations;
 * 3. bump the single `placement_state.version` row and stamp it on the touched providers
 *    (`changed_version`). That row is always locked last, so versions are handed out in commit order.
 *
 * The modules: ./providers (registration, host flags, failed builds), ./claims (claims under
 * contention), ./allocations (release, move, read), ./audit, ./host-states (listHostStates and its
 * cache, which relies on rule 3), ./common (steps 1 and 3, conflict retries).
 */
import type { HostSpec } from '../../domain/fleet';
import type { Resources } from '../../domain/resources';
import type { HostState } from '../../domain/host';
import type { Store } from '../db';
import { type ConsumerAllocation, createAllocationAccess, type HostAllocation } from './allocations';
import { createAudit, type PlacementAudit } from './audit';
import { createClaim } from './claims';
import { createHostStates } from './host-states';
import { createProviderWrites } from './providers';

export { type ConsumerAllocation, type HostAllocation } from './allocations';
export { MIGRATION_FINISHED_STATUSES, type PlacementAudit } from './audit';
export { OPTIMISTIC_CLAIM_ATTEMPTS } from './claims';
export { CLAIM_ATTEMPTS } from './common';
export { INCREMENTAL_REFRESH_LIMIT } from './host-states';

export interface PlacementRepository {
  /**
   * Registers or updates a host's provider: VCPU/MEMORY_MB/DISK_GB inventories (total, reserved,
   * ratio), traits (replaced), availability zone and architecture. Bumps the generation only when
   * something changed (a new provider starts at generation 1). Idempotent.
   */
  upsertProvider(spec: HostSpec): Promise<void>;
  /** upsertProvider for many hosts; new providers are inserted in batches (fleet registration, benchmarks). */
  upsertProviders(specs: readonly HostSpec[]): Promise<void>;
  /** Disables (with a reason) or enables a host; enabling clears the reason. InvalidRequest for an unknown host. */
  setDisabled(host: string, disabled: boolean, reason?: string | null): Promise<void>;
  /** Nova's forced_down: the host is reported down whatever its liveness. InvalidRequest for an unknown host. */
  setForcedDown(host: string, forcedDown: boolean): Promise<void>;
  /** Every provider as the scheduler sees it; `up = !forcedDown && isUp(host)`. Sorted by host name. */
  listHostStates(isUp: (host: string) => boolean): Promise<HostState[]>;
  /**
   * Claims `resources` on `host` for the consumer: capacity check and allocation write under a
   * compare-and-swap of the provider generation, retried on conflict (CLAIM_ATTEMPTS, jittered), then
   * ConcurrentUpdate. ClaimFailed (naming the resource class) when the host lacks room, ClaimFailed for
   * an unknown host. Idempotent: holding exactly these resources there already is a no-op. Holding
   * different amounts there replaces them (placement's PUT semantics, checked as a delta). A consumer may
   * hold allocations on several hosts (an evacuation holds source and destination).
   */
  claim(consumerId: string, host: string, resources: Resources): Promise<void>;
  /** Deletes the consumer's allocations (on `host` only, when given). Returns how many hosts it released. Idempotent. */
  releaseConsumer(consumerId: string, host?: string): Promise<number>;
  /**
   * Atomically gives `toConsumer` everything `fromConsumer` holds (replacing what `toConsumer` held)
   * and leaves `fromConsumer` with nothing. A no-op when `fromConsumer` holds nothing (already moved).
   */
  moveAllocations(fromConsumer: string, toConsumer: string): Promise<void>;
  getAllocations(consumerId: string): Promise<ConsumerAllocation[]>;
  allocationsByHost(host: string): Promise<HostAllocation[]>;
  /** Nova's failed_builds counter: +1 on a failure, reset to 0 on a success. InvalidRequest for an unknown host. */
  recordBuildResult(host: string, success: boolean): Promise<void>;
  /** Nova's `nova-manage placement audit`: orphaned allocations and over-committed hosts. Read-only. */
  audit(): Promise<PlacementAudit>;
}

export interface PlacementRepositoryOptions {
  /** Cache host states between listHostStates calls, validated by the placement version (default true). */
  cacheHostStates?: boolean;
}

export function createPlacementRepository(store: Store, options: PlacementRepositoryOptions = {}): PlacementRepository {
  return {
    ...createProviderWrites(store),
    listHostStates: createHostStates(store, options.cacheHostStates ?? true),
    claim: createClaim(store),
    ...createAllocationAccess(store),
    audit: createAudit(store),
  };
}
