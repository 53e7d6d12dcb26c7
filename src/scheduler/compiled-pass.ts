/**
 * The hot path of selectDestinations: the active filters and the default weighers compiled into two
 * linear passes with no allocation per host. It computes what DEFAULT_FILTERS followed by weighHosts
 * compute (the unit tests hold the two to the same answers on generated fleets): keep them in step
 * when either changes.
 *
 * Cost model (perf-reliability.md B3): a pass must stay within ~30x a bare loop that reads one field of
 * each host. So everything derived from the request is worked out once, into a FilterPlan; one loop
 * over the hosts runs the filters (those that look up sets only when the request has any, behind one
 * predictable branch) and writes the survivors' raw weights and their min/max into reused typed
 * arrays; a second loop over those arrays normalises, sums, and keeps the best
 * k = max(hostSubsetSize, maxAttempts) hosts by insertion into a k-slot list: O(N·k) with a tiny k,
 * never a sort of every host.
 */
import { AvailabilityZoneFilter } from './filters/availability-zone-filter';
import { ComputeFilter } from './filters/compute-filter';
import type { HostFilter } from './filters/host-filter';
import {
  DifferentHostFilter,
  IgnoreHostsFilter,
  RequestedHostFilter,
  SameHostFilter,
} from './filters/host-hint-filters';
import { ImagePropertiesFilter, imageFitsFlavor } from './filters/image-properties-filter';
import { requestedResources, ResourcesFilter } from './filters/resources-filter';
import { ServerGroupAffinityFilter, ServerGroupAntiAffinityFilter } from './filters/server-group-filters';
import { traitRequirements, TraitsFilter } from './filters/traits-filter';
import type { HostState, SchedulerConfig, SchedulingRequest } from './types';
import { BuildFailureWeigher } from './weighers/build-failure-weigher';
import { CPUWeigher, DiskWeigher, RAMWeigher } from './weighers/resource-weighers';

/**
 * What the plan is compiled from, read from the other modules once, at load. Under CommonJS (tsx,
 * which runs the workers) every read of an imported name goes through interop getters, and the
 * dozens of reads per pass would cost more than the rest of compiling the plan.
 */
const FROM = {
  compute: ComputeFilter,
  availabilityZone: AvailabilityZoneFilter,
  resources: ResourcesFilter,
  traits: TraitsFilter,
  image: ImagePropertiesFilter,
  ignoreHosts: IgnoreHostsFilter,
  requestedHost: RequestedHostFilter,
  antiAffinity: ServerGroupAntiAffinityFilter,
  affinity: ServerGroupAffinityFilter,
  sameHost: SameHostFilter,
  differentHost: DifferentHostFilter,
  ram: RAMWeigher,
  cpu: CPUWeigher,
  disk: DiskWeigher,
  buildFailure: BuildFailureWeigher,
  requestedResources,
  traitRequirements,
  imageFitsFlavor,
};

/** Whether a filter runs for this request (the same rule as filters/index.ts isFilterActive). */
function on(filter: HostFilter, req: SchedulingRequest): boolean {
  return (req.isRebuild !== true || filter.runOnRebuild) && filter.isActive(req);
}

/** What the active filters ask of a host, worked out once per request; `null` means "not checked". */
export interface FilterPlan {
  /** Some request-level check fails (the image does not fit the flavor): no host can pass. */
  readonly rejectsAll: boolean;
  /** Some filter that looks up sets (hints, groups, traits, ignored hosts) is active. */
  readonly refines: boolean;
  readonly requestedHost: string | null;
  readonly checkCompute: boolean;
  readonly availabilityZone: string | null;
  readonly architecture: string | null;
  readonly checkResources: boolean;
  readonly vcpus: number;
  readonly memoryMb: number;
  readonly diskGb: number;
  readonly ignoreHosts: ReadonlySet<string> | null;
  readonly requiredTraits: readonly string[] | null;
  readonly forbiddenTraits: readonly string[] | null;
  readonly antiAffinityHosts: ReadonlySet<string> | null;
  readonly affinityHosts: ReadonlySet<string> | null;
  readonly sameHostHosts: ReadonlySet<string> | null;
  readonly differentHostHosts: ReadonlySet<string> | null;
}

/** Compile the request into a FilterPlan, from the same filter objects and helpers the named filters use. */
export function compileFilterPlan(req: SchedulingRequest): FilterPlan {
  const resources = FROM.requestedResources(req.flavor);
  const traits = on(FROM.traits, req) ? FROM.traitRequirements(req) : null;
  const image = on(FROM.image, req);
  const ignoreHosts = on(FROM.ignoreHosts, req) ? (req.ignoreHosts ?? null) : null;
  const requiredTraits = traits !== null && traits.required.length > 0 ? traits.required : null;
  const forbiddenTraits = traits !== null && traits.forbidden.length > 0 ? traits.forbidden : null;
  const group = req.serverGroup?.hosts ?? null;
  const antiAffinityHosts = on(FROM.antiAffinity, req) ? group : null;
  const affinityHosts = on(FROM.affinity, req) ? group : null;
  const sameHostHosts = on(FROM.sameHost, req) ? (req.sameHostHosts ?? null) : null;
  const differentHostHosts = on(FROM.differentHost, req) ? (req.differentHostHosts ?? null) : null;
  return {
    rejectsAll: image && !FROM.imageFitsFlavor(req.image, req.flavor),
    refines:
      ignoreHosts !== null ||
      requiredTraits !== null ||
      forbiddenTraits !== null ||
      antiAffinityHosts !== null ||
      affinityHosts !== null ||
      sameHostHosts !== null ||
      differentHostHosts !== null,
    requestedHost: on(FROM.requestedHost, req) ? (req.requestedHost ?? null) : null,
    checkCompute: on(FROM.compute, req),
    availabilityZone: on(FROM.availabilityZone, req) ? (req.availabilityZone ?? null) : null,
    architecture: image ? (req.image.properties.hwArchitecture ?? null) : null,
    checkResources: on(FROM.resources, req),
    vcpus: resources.VCPU,
    memoryMb: resources.MEMORY_MB,
    diskGb: resources.DISK_GB,
    ignoreHosts,
    requiredTraits,
    forbiddenTraits,
    antiAffinityHosts,
    affinityHosts,
    sameHostHosts,
    differentHostHosts,
  };
}

/** The multiplier of each default weigher, in DEFAULT_WEIGHERS order (the order their terms are summed). */
export interface WeightPlan {
  readonly ram: number;
  readonly cpu: number;
  readonly disk: number;
  readonly buildFailure: number;
}

export function compileWeightPlan(config: SchedulerConfig): WeightPlan {
  return {
    ram: FROM.ram.multiplier(config),
    cpu: FROM.cpu.multiplier(config),
    disk: FROM.disk.multiplier(config),
    buildFailure: FROM.buildFailure.multiplier(config),
  };
}

/**
 * Working memory reused across passes, grown on demand: for each candidate host, its index in the
 * host list and its four raw weights side by side. Sharing it is safe because a pass is synchronous
 * and never re-entered; nothing in it outlives the call that fills it.
 */
class Scratch {
  readonly index: Int32Array;
  /** Raw weights, RAW_STRIDE per candidate: free RAM, free vCPUs, free disk, minus failed builds. */
  readonly raw: Float64Array;
  constructor(readonly size: number) {
    this.index = new Int32Array(size);
    this.raw = new Float64Array(size * RAW_STRIDE);
  }
}
const RAW_STRIDE = 4;
let scratch = new Scratch(1024);
let topIndex = new Int32Array(16);
let topScore = new Float64Array(16);

/** Each weigher's lowest and highest raw weight over the candidates, for normalisation. */
interface Bounds {
  ramMin: number;
  ramMax: number;
  cpuMin: number;
  cpuMax: number;
  diskMin: number;
  diskMax: number;
  failMin: number;
  failMax: number;
}
const bounds: Bounds = { ramMin: 0, ramMax: 0, cpuMin: 0, cpuMax: 0, diskMin: 0, diskMax: 0, failMin: 0, failMax: 0 };

/**
 * Filter and weigh `hosts` for one instance and return the indexes of the best `k` hosts that pass,
 * best first (higher weight, then lower host name). Empty when no host passes.
 */
export function rankHosts(hosts: readonly HostState[], plan: FilterPlan, weights: WeightPlan, k: number): number[] {
  if (plan.rejectsAll || k < 1) return [];
  let from = 0;
  let to = hosts.length;
  if (plan.requestedHost !== null) {
    // Only one host can pass RequestedHostFilter: find it rather than test every host's name.
    from = indexOfHost(hosts, plan.requestedHost);
    if (from < 0) return [];
    to = from + 1;
  }
  if (scratch.size < to - from) scratch = new Scratch(2 ** Math.ceil(Math.log2(to - from)));
  const count = scanHosts(hosts, from, to, plan, scratch, bounds);
  return count === 0 ? [] : bestCandidates(hosts, count, weights, k, scratch, bounds);
}

function indexOfHost(hosts: readonly HostState[], name: string): number {
  for (let i = 0; i < hosts.length; i++) if (hosts[i]!.host === name) return i;
  return -1;
}

/**
 * The one loop over the hosts: every active filter, then the raw weights of the hosts that pass (as
 * RAMWeigher, CPUWeigher, DiskWeigher and BuildFailureWeigher compute them) and their bounds. Returns
 * how many hosts passed.
 */
function scanHosts(
  hosts: readonly HostState[],
  from: number,
  to: number,
  plan: FilterPlan,
  s: Scratch,
  b: Bounds
): number {
  const { index, raw } = s;
  const { checkCompute, availabilityZone, architecture, checkResources, vcpus, memoryMb, diskGb, refines } = plan;
  let ramMin = Infinity;
  let ramMax = -Infinity;
  let cpuMin = Infinity;
  let cpuMax = -Infinity;
  let diskMin = Infinity;
  let diskMax = -Infinity;
  let failMin = Infinity;
  let failMax = -Infinity;
  let count = 0;
  for (let i = from; i < to; i++) {
    const h = hosts[i]!;
    if (checkCompute && !(h.up && h.enabled)) continue;
    if (availabilityZone !== null && h.availabilityZone !== availabilityZone) continue;
    if (architecture !== null && h.architecture !== architecture) continue;
    const inv = h.inventories;
    const used = h.used;
    const cpuInv = inv.VCPU;
    const ramInv = inv.MEMORY_MB;
    const diskInv = inv.DISK_GB;
    // capacity(inventory) - used, with capacity() from domain/resources inlined.
    const cpu = Math.floor((cpuInv.total - cpuInv.reserved) * cpuInv.allocationRatio) - used.VCPU;
    const ram = Math.floor((ramInv.total - ramInv.reserved) * ramInv.allocationRatio) - used.MEMORY_MB;
    const disk = Math.floor((diskInv.total - diskInv.reserved) * diskInv.allocationRatio) - used.DISK_GB;
    // used + requested <= capacity, for each class the flavor asks for.
    if (
      checkResources &&
      ((vcpus !== 0 && vcpus > cpu) || (memoryMb !== 0 && memoryMb > ram) || (diskGb !== 0 && diskGb > disk))
    )
      continue;
    // The set-based filters cost nothing unless the request has one.
    if (refines && !passesSetFilters(h, plan)) continue;

    const failed = -h.failedBuilds;
    const at = count * RAW_STRIDE;
    index[count] = i;
    raw[at] = ram;
    raw[at + 1] = cpu;
    raw[at + 2] = disk;
    raw[at + 3] = failed;
    count++;
    if (ram < ramMin) ramMin = ram;
    if (ram > ramMax) ramMax = ram;
    if (cpu < cpuMin) cpuMin = cpu;
    if (cpu > cpuMax) cpuMax = cpu;
    if (disk < diskMin) diskMin = disk;
    if (disk > diskMax) diskMax = disk;
    if (failed < failMin) failMin = failed;
    if (failed > failMax) failMax = failed;
  }
  b.ramMin = ramMin;
  b.ramMax = ramMax;
  b.cpuMin = cpuMin;
  b.cpuMax = cpuMax;
  b.diskMin = diskMin;
  b.diskMax = diskMax;
  b.failMin = failMin;
  b.failMax = failMax;
  return count;
}

/**
 * IgnoreHostsFilter, TraitsFilter, the server-group filters and the same/different-host filters: the
 * ones that look up sets, for requests that have any of them.
 */
function passesSetFilters(h: HostState, plan: FilterPlan): boolean {
  const { ignoreHosts, requiredTraits, forbiddenTraits, antiAffinityHosts, affinityHosts } = plan;
  const { sameHostHosts, differentHostHosts } = plan;
  const name = h.host;
  if (ignoreHosts !== null && ignoreHosts.has(name)) return false;
  if (requiredTraits !== null) for (const t of requiredTraits) if (!h.traits.has(t)) return false;
  if (forbiddenTraits !== null) for (const t of forbiddenTraits) if (h.traits.has(t)) return false;
  if (antiAffinityHosts !== null && antiAffinityHosts.has(name)) return false;
  if (affinityHosts !== null && !affinityHosts.has(name)) return false;
  if (sameHostHosts !== null && !sameHostHosts.has(name)) return false;
  if (differentHostHosts !== null && differentHostHosts.has(name)) return false;
  return true;
}

/**
 * Normalise each weigher over the candidates and sum, as weighHosts does (multiplier * (raw - min) /
 * (max - min), in DEFAULT_WEIGHERS order, multiplier / (max - min) worked out once; all-equal values
 * normalise to 0 and add nothing), keeping the best k by insertion into a k-slot list.
 */
function bestCandidates(
  hosts: readonly HostState[],
  count: number,
  weights: WeightPlan,
  k: number,
  s: Scratch,
  b: Bounds
): number[] {
  const { index, raw } = s;
  const { ramMin, cpuMin, diskMin, failMin } = b;
  const ramScale = b.ramMax > ramMin ? weights.ram / (b.ramMax - ramMin) : 0;
  const cpuScale = b.cpuMax > cpuMin ? weights.cpu / (b.cpuMax - cpuMin) : 0;
  const diskScale = b.diskMax > diskMin ? weights.disk / (b.diskMax - diskMin) : 0;
  const failScale = b.failMax > failMin ? weights.buildFailure / (b.failMax - failMin) : 0;

  const best = Math.min(k, count);
  if (topIndex.length < best) {
    topIndex = new Int32Array(best);
    topScore = new Float64Array(best);
  }
  let kept = 0;
  // The score a host must beat to enter a full list.
  let worst = -Infinity;
  for (let c = 0; c < count; c++) {
    const at = c * RAW_STRIDE;
    const score =
      (raw[at]! - ramMin) * ramScale +
      (raw[at + 1]! - cpuMin) * cpuScale +
      (raw[at + 2]! - diskMin) * diskScale +
      (raw[at + 3]! - failMin) * failScale;
    if (score < worst) continue;
    const i = index[c]!;
    let slot: number;
    if (kept < best) {
      slot = kept++;
    } else {
      if (score === worst && !(hosts[i]!.host < hosts[topIndex[best - 1]!]!.host)) continue;
      slot = best - 1;
    }
    while (slot > 0) {
      const above = topScore[slot - 1]!;
      if (score < above || (score === above && !(hosts[i]!.host < hosts[topIndex[slot - 1]!]!.host))) break;
      topScore[slot] = above;
      topIndex[slot] = topIndex[slot - 1]!;
      slot--;
    }
    topScore[slot] = score;
    topIndex[slot] = i;
    if (kept === best) worst = topScore[best - 1]!;
  }
  const ranked = new Array<number>(kept);
  for (let r = 0; r < kept; r++) ranked[r] = topIndex[r]!;
  return ranked;
}
