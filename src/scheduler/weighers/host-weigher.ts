import type { HostState, SchedulerConfig, SchedulingRequest } from '../types';

/**
 * One weigher (nova/weights.py BaseWeigher): a raw number per host, higher is better. Raw weights are
 * min-max normalised over the candidate hosts, then multiplied by `multiplier(config)` and summed.
 * A positive multiplier prefers hosts with more of the thing (spread), a negative one fewer (stack).
 */
export interface HostWeigher {
  readonly name: string;
  weigh(host: HostState, req: SchedulingRequest): number;
  multiplier(config: SchedulerConfig): number;
}
