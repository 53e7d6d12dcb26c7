import { activeFilters, DEFAULT_FILTERS, firstRejectingFilter, type HostFilter } from './filters';
import type { HostState, SchedulingRequest } from './types';

/** Why one host is or is not a candidate: the first filter that rejects it, or null if it passes. */
export interface HostVerdict {
  host: string;
  rejectedBy: string | null;
}

/**
 * For debugging and the CLI: which filter rejects each host, running only the filters active for the
 * request, in order, and stopping at the first rejection (no weighing). A forced host bypasses the
 * filters in selectDestinations; this still reports what the filters would say about it.
 */
export function explainRejections(
  hosts: readonly HostState[],
  req: SchedulingRequest,
  filters: readonly HostFilter[] = DEFAULT_FILTERS
): HostVerdict[] {
  const active = activeFilters(req, filters);
  return hosts.map((host) => ({ host: host.host, rejectedBy: firstRejectingFilter(host, req, active) }));
}

/**
 * The filter that removed the last candidates (Nova logs "Filter X returned 0 hosts"): filters run in
 * order over the surviving hosts, so it is the latest-placed first rejection among all hosts. Null when
 * there are no hosts at all, or when some host passes.
 */
export function eliminatingFilter(
  hosts: readonly HostState[],
  req: SchedulingRequest,
  filters: readonly HostFilter[] = DEFAULT_FILTERS
): string | null {
  const active = activeFilters(req, filters);
  let last = -1;
  for (const host of hosts) {
    const at = active.findIndex((f) => !f.hostPasses(host, req));
    if (at < 0) return null;
    if (at > last) last = at;
  }
  return active[last]?.name ?? null;
}
