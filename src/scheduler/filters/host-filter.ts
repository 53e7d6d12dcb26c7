import type { HostState, SchedulingRequest } from '../types';

/**
 * One scheduler filter (nova/scheduler/filters/__init__.py BaseHostFilter): a host either passes or
 * it does not. Filters are stateless objects; the request carries everything they look at.
 */
export interface HostFilter {
  /** The Nova-style class name, used in "Filter X returned 0 hosts" reasons. */
  readonly name: string;
  /** Whether the filter still runs when a rebuild re-checks the instance's current host (RUN_ON_REBUILD). */
  readonly runOnRebuild: boolean;
  /**
   * False when the request asks nothing of this filter, so that every host would pass it (no AZ asked,
   * no server group): the engine then skips the filter entirely.
   */
  isActive(req: SchedulingRequest): boolean;
  hostPasses(host: HostState, req: SchedulingRequest): boolean;
}
