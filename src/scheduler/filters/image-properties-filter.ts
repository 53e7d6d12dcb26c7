import type { Flavor, Image } from '../../domain/catalogue';
import type { HostFilter } from './host-filter';

/**
 * Whether the flavor is big enough for the image (a request-level check: when it fails, every host
 * fails). NOTE(nova): a flavor with a 0 GB root disk takes the image's size, so the image's minDisk is
 * not checked against it (nova/compute/api.py _validate_flavor_image_nostatus).
 */
export function imageFitsFlavor(image: Image, flavor: Flavor): boolean {
  return image.minRamMb <= flavor.memoryMb && (flavor.diskGb === 0 || image.minDiskGb <= flavor.diskGb);
}

/**
 * Hosts whose architecture matches the image's hwArchitecture, if the image names one; and no host at
 * all when the image does not fit the flavor (nova/scheduler/filters/image_props_filter.py). Runs on
 * rebuild, where it is what checks a new image against the instance's current host.
 */
export const ImagePropertiesFilter: HostFilter = {
  name: 'ImagePropertiesFilter',
  runOnRebuild: true,
  isActive: (req) => req.image.properties.hwArchitecture !== undefined || !imageFitsFlavor(req.image, req.flavor),
  hostPasses(host, req) {
    const arch = req.image.properties.hwArchitecture;
    return imageFitsFlavor(req.image, req.flavor) && (arch === undefined || host.architecture === arch);
  },
};
