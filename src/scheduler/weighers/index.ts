import type { HostState, SchedulerConfig, SchedulingRequest } from '../types';
import { BuildFailureWeigher } from './build-failure-weigher';
import type { HostWeigher } from './host-weigher';
import { normalize } from './normalize';
import { CPUWeigher, DiskWeigher, RAMWeigher } from './resource-weighers';

export type { HostWeigher } from './host-weigher';
export { BuildFailureWeigher } from './build-failure-weigher';
export { normalize } from './normalize';
export { CPUWeigher, DiskWeigher, RAMWeigher } from './resource-weighers';

/** Every weigher, in the order their contributions are summed. */
export const DEFAULT_WEIGHERS: readonly HostWeigher[] = [RAMWeigher, CPUWeigher, DiskWeigher, BuildFailureWeigher];

export interface WeighedHost {
  host: HostState;
  weight: number;
}

/** Best first: higher weight, then host name, so that equal weights still give one order. */
export function compareWeighedHosts(a: WeighedHost, b: WeighedHost): number {
  if (a.weight !== b.weight) return b.weight - a.weight;
  return a.host.host < b.host.host ? -1 : a.host.host > b.host.host ? 1 : 0;
}

/**
 * Weigh and rank hosts the plain way (nova/weights.py get_weighed_objects): for each weigher,
 * normalise its raw weights over the hosts, multiply, and sum. This is the readable reference (and
 * what a CLI shows); selectDestinations computes the same figures in a compiled single pass.
 */
export function weighHosts(
  hosts: readonly HostState[],
  req: SchedulingRequest,
  config: SchedulerConfig,
  weighers: readonly HostWeigher[] = DEFAULT_WEIGHERS
): WeighedHost[] {
  const weighed = hosts.map((host) => ({ host, weight: 0 }));
  for (const weigher of weighers) {
    const multiplier = weigher.multiplier(config);
    const normalised = normalize(hosts.map((host) => weigher.weigh(host, req)));
    weighed.forEach((w, i) => (w.weight += multiplier * (normalised[i] ?? 0)));
  }
  return weighed.sort(compareWeighedHosts);
}
