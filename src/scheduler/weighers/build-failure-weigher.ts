import type { HostWeigher } from './host-weigher';

/**
 * Minus the host's recent failed builds (nova/scheduler/weights/compute.py BuildFailureWeigher). With
 * the default multiplier of 1e6, one failure sinks a host below every healthy one: a host that fails
 * every build would otherwise attract every build (the "build magnet", bug 1742102).
 */
export const BuildFailureWeigher: HostWeigher = {
  name: 'BuildFailureWeigher',
  weigh: (host) => -host.failedBuilds,
  multiplier: (config) => config.buildFailureWeightMultiplier,
};
