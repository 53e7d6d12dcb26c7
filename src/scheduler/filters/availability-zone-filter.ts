import type { HostFilter } from './host-filter';

/** Only hosts in the requested availability zone, when one is requested. */
export const AvailabilityZoneFilter: HostFilter = {
  name: 'AvailabilityZoneFilter',
  runOnRebuild: false,
  isActive: (req) => req.availabilityZone !== undefined,
  hostPasses: (host, req) => req.availabilityZone === undefined || host.availabilityZone === req.availabilityZone,
};
