import { NoValidHost } from '../domain/errors';
import { RESOURCE_CLASSES, type Resources } from '../domain/resources';
import { compileFilterPlan, compileWeightPlan, rankHosts } from './compiled-pass';
import { eliminatingFilter } from './explain';
import { requestedResources } from './filters/resources-filter';
import type { HostState, InstanceSelection, Rng, SchedulerConfig, SchedulingRequest } from './types';

/**
 * Choose a host, plus alternates, for every instance of the request (nova/scheduler/manager.py
 * _schedule): for each instance in order, filter, weigh, pick at random among the best
 * `hostSubsetSize` hosts, then debit the chosen host in a request-local copy so that the next instance
 * sees it fuller (and, for a server group, sees it in the group). Alternates are the next best hosts
 * that passed for that instance, up to `maxAttempts - 1`, best first.
 *
 * Pure: it claims nothing and never mutates `hosts` or `req`. All or nothing: it throws NoValidHost
 * naming the instance and the filter that returned 0 hosts, and the caller releases any claims.
 * A `forcedHost` bypasses the filters (it must still be in `hosts`) and gets no alternates.
 * With `minCount` below the number of instances, the first instance after minCount that finds no host
 * ends the request: the selections so far are returned (at least minCount of them).
 */
export function selectDestinations(
  hosts: readonly HostState[],
  req: SchedulingRequest,
  config: SchedulerConfig,
  rng: Rng
): InstanceSelection[] {
  if (req.instanceIds.length === 0) return [];
  if (req.forcedHost !== undefined) return selectForcedHost(hosts, req, req.forcedHost);

  // NOTE(nova): Nova treats host_subset_size < 1 as 1; max_attempts has a minimum of 1.
  const subsetSize = Math.max(1, Math.floor(config.hostSubsetSize));
  const maxAttempts = Math.max(1, Math.floor(req.maxAttempts));
  // The chosen host is among the first subsetSize; the alternates are the best others, so the best
  // max(subsetSize, maxAttempts) hosts always contain both.
  const keep = Math.max(subsetSize, maxAttempts);
  const weights = compileWeightPlan(config);
  const requested = requestedResources(req.flavor);

  let view: readonly HostState[] = hosts;
  let local: HostState[] | null = null;
  let spec = req;
  const selections: InstanceSelection[] = [];
  const count = req.instanceIds.length;
  const atLeast = Math.min(count, Math.max(1, req.minCount ?? count));
  for (let n = 0; n < count; n++) {
    const instanceId = req.instanceIds[n]!;
    const ranked = rankHosts(view, compileFilterPlan(spec), weights, keep);
    if (ranked.length === 0) {
      // NOTE(nova): Nova places max_count or fails; here maxCount is a ceiling and minCount the floor.
      if (n >= atLeast) break;
      throw new NoValidHost(noHostReason(view, spec, instanceId));
    }

    const pool = Math.min(subsetSize, ranked.length);
    // The rng is only consulted when there is a choice to make.
    const pick = pool === 1 ? 0 : Math.min(pool - 1, Math.floor(rng() * pool));
    const chosen = ranked[pick]!;
    const chosenHosts = [view[chosen]!.host];
    for (let r = 0; r < ranked.length && chosenHosts.length < maxAttempts; r++) {
      if (r !== pick) chosenHosts.push(view[ranked[r]!]!.host);
    }
    selections.push({ instanceId, hosts: chosenHosts });

    // NOTE(nova): a rebuild re-checks the instance's current host and claims nothing. After the last
    // instance there is nobody left to see the consumption, so it is skipped.
    if (req.isRebuild === true || n === count - 1) continue;
    local ??= hosts.slice();
    view = local;
    local[chosen] = consumeFromRequest(local[chosen]!, requested, instanceId);
    const group = spec.serverGroup;
    const chosenName = local[chosen].host;
    if (group !== undefined && !group.hosts.has(chosenName)) {
      spec = { ...spec, serverGroup: { ...group, hosts: new Set(group.hosts).add(chosenName) } };
    }
  }
  return selections;
}

/** A copy of the host with the instance's resources debited (nova HostState.consume_from_request). */
export function consumeFromRequest(host: HostState, requested: Resources, instanceId: string): HostState {
  const used = { ...host.used };
  for (const rc of RESOURCE_CLASSES) used[rc] += requested[rc];
  return { ...host, used, instances: new Set(host.instances).add(instanceId) };
}

/**
 * NOTE(nova): force_hosts skips every filter, but Nova strips ignore_hosts first, so a forced host that
 * is also ignored (or absent) yields no host.
 */
function selectForcedHost(hosts: readonly HostState[], req: SchedulingRequest, forced: string): InstanceSelection[] {
  const first = req.instanceIds[0]!;
  if (!hosts.some((h) => h.host === forced))
    throw new NoValidHost(`Forced host ${forced} is not in the host list for instance ${first}`);
  if (req.ignoreHosts?.has(forced) === true)
    throw new NoValidHost(`Forced host ${forced} is among the ignored hosts for instance ${first}`);
  return req.instanceIds.map((instanceId) => ({ instanceId, hosts: [forced] }));
}

function noHostReason(hosts: readonly HostState[], req: SchedulingRequest, instanceId: string): string {
  if (hosts.length === 0) return `There are no hosts to choose from for instance ${instanceId}`;
  const filter = eliminatingFilter(hosts, req);
  return filter === null
    ? `No host passed the filters for instance ${instanceId}`
    : `Filter ${filter} returned 0 hosts for instance ${instanceId}`;
}
