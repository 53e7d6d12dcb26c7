import type { HostFilter } from './host-filter';

/**
 * The `same_host` hint: only hosts where one of the hinted instances lives. NOTE(nova): as in Nova, a
 * hint whose instances live nowhere (an empty set) matches no host; no hint at all is `undefined`.
 */
export const SameHostFilter: HostFilter = {
  name: 'SameHostFilter',
  runOnRebuild: false,
  isActive: (req) => req.sameHostHosts !== undefined,
  hostPasses: (host, req) => req.sameHostHosts === undefined || req.sameHostHosts.has(host.host),
};

/** The `different_host` hint: never a host where one of the hinted instances lives. */
export const DifferentHostFilter: HostFilter = {
  name: 'DifferentHostFilter',
  runOnRebuild: false,
  isActive: (req) => req.differentHostHosts !== undefined && req.differentHostHosts.size > 0,
  hostPasses: (host, req) => req.differentHostHosts === undefined || !req.differentHostHosts.has(host.host),
};

/** Hosts the caller excludes (a migration's source, hosts already tried). */
export const IgnoreHostsFilter: HostFilter = {
  name: 'IgnoreHostsFilter',
  runOnRebuild: false,
  isActive: (req) => req.ignoreHosts !== undefined && req.ignoreHosts.size > 0,
  hostPasses: (host, req) => req.ignoreHosts === undefined || !req.ignoreHosts.has(host.host),
};

/**
 * Only the requested destination (Nova's requested_destination), which must still pass every other
 * filter. NOTE(nova): Nova narrows the host list before filtering; it also holds on rebuild, where
 * the request names the instance's current host.
 */
export const RequestedHostFilter: HostFilter = {
  name: 'RequestedHostFilter',
  runOnRebuild: true,
  isActive: (req) => req.requestedHost !== undefined,
  hostPasses: (host, req) => req.requestedHost === undefined || host.host === req.requestedHost,
};
