import type { HostFilter } from './host-filter';

/** Only hosts whose compute service is enabled and up (nova/scheduler/filters/compute_filter.py). */
export const ComputeFilter: HostFilter = {
  name: 'ComputeFilter',
  runOnRebuild: false,
  isActive: () => true,
  hostPasses: (host) => host.up && host.enabled,
};
