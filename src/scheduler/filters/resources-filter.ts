import type { Flavor } from '../../domain/catalogue';
import { capacity, RESOURCE_CLASSES, type Resources } from '../../domain/resources';
import type { HostFilter } from './host-filter';

/** The amounts a flavor asks of each resource class (a 0 GB root disk asks for no DISK_GB at all). */
export function requestedResources(flavor: Flavor): Resources {
  return { VCPU: flavor.vcpus, MEMORY_MB: flavor.memoryMb, DISK_GB: flavor.diskGb };
}

/**
 * Hosts with room for the flavor in every resource class: `used + requested <= capacity(inventory)`,
 * capacity being floor((total - reserved) * allocationRatio).
 *
 * NOTE(nova): Nova leaves this to placement's GET /allocation_candidates; we do the same maths
 * in-process. Like placement, a class requested at 0 is not part of the request, so a zero-disk
 * flavor passes even on a host without (or with over-committed) DISK_GB inventory.
 */
export const ResourcesFilter: HostFilter = {
  name: 'ResourcesFilter',
  runOnRebuild: false,
  isActive: () => true,
  hostPasses(host, req) {
    const requested = requestedResources(req.flavor);
    return RESOURCE_CLASSES.every(
      (rc) => requested[rc] === 0 || host.used[rc] + requested[rc] <= capacity(host.inventories[rc])
    );
  },
};
