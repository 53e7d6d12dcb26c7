import type { HostState, SchedulingRequest } from '../types';
import { AvailabilityZoneFilter } from './availability-zone-filter';
import { ComputeFilter } from './compute-filter';
import type { HostFilter } from './host-filter';
import { DifferentHostFilter, IgnoreHostsFilter, RequestedHostFilter, SameHostFilter } from './host-hint-filters';
import { ImagePropertiesFilter } from './image-properties-filter';
import { ResourcesFilter } from './resources-filter';
import { ServerGroupAffinityFilter, ServerGroupAntiAffinityFilter } from './server-group-filters';
import { TraitsFilter } from './traits-filter';

export type { HostFilter } from './host-filter';
export { AvailabilityZoneFilter } from './availability-zone-filter';
export { ComputeFilter } from './compute-filter';
export { DifferentHostFilter, IgnoreHostsFilter, RequestedHostFilter, SameHostFilter } from './host-hint-filters';
export { ImagePropertiesFilter, imageFitsFlavor } from './image-properties-filter';
export { ResourcesFilter, requestedResources } from './resources-filter';
export { ServerGroupAffinityFilter, ServerGroupAntiAffinityFilter } from './server-group-filters';
export { TraitsFilter, traitRequirements, type TraitRequirements } from './traits-filter';

/**
 * Every filter, in the order they run. The order only decides which filter a NoValidHost reason
 * names: host-list restrictions first (Nova strips ignored and requested hosts before filtering),
 * then what placement would refuse, then the policy filters.
 */
export const DEFAULT_FILTERS: readonly HostFilter[] = [
  IgnoreHostsFilter,
  RequestedHostFilter,
  ComputeFilter,
  AvailabilityZoneFilter,
  ResourcesFilter,
  TraitsFilter,
  ImagePropertiesFilter,
  ServerGroupAntiAffinityFilter,
  ServerGroupAffinityFilter,
  SameHostFilter,
  DifferentHostFilter,
];

/** Whether a filter runs for this request: it has something to check, and it runs on rebuild if this is one. */
export function isFilterActive(filter: HostFilter, req: SchedulingRequest): boolean {
  return (req.isRebuild !== true || filter.runOnRebuild) && filter.isActive(req);
}

/** The filters that run for this request, in order. */
export function activeFilters(req: SchedulingRequest, filters: readonly HostFilter[] = DEFAULT_FILTERS): HostFilter[] {
  return filters.filter((f) => isFilterActive(f, req));
}

/** The first of `filters` that rejects the host, or null when it passes them all. */
export function firstRejectingFilter(
  host: HostState,
  req: SchedulingRequest,
  filters: readonly HostFilter[]
): string | null {
  for (const filter of filters) if (!filter.hostPasses(host, req)) return filter.name;
  return null;
}
