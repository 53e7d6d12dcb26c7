import { ServerGroupPolicy } from '../types';
import type { HostFilter } from './host-filter';

// Read once: under CommonJS every read of an imported name goes through an interop getter.
const { Affinity, AntiAffinity } = ServerGroupPolicy;

/**
 * Affinity: once the group has members, only the hosts they are on (a first member goes anywhere).
 * The engine adds each chosen host to the group, so the instances of one request land together.
 */
export const ServerGroupAffinityFilter: HostFilter = {
  name: 'ServerGroupAffinityFilter',
  runOnRebuild: false,
  isActive: (req) => req.serverGroup?.policy === Affinity && req.serverGroup.hosts.size > 0,
  hostPasses(host, req) {
    const group = req.serverGroup;
    if (group?.policy !== Affinity || group.hosts.size === 0) return true;
    return group.hosts.has(host.host);
  },
};

/**
 * Anti-affinity: never a host a group member is on. The engine adds each chosen host to the group, so
 * the instances of one request land on different hosts.
 */
export const ServerGroupAntiAffinityFilter: HostFilter = {
  name: 'ServerGroupAntiAffinityFilter',
  runOnRebuild: false,
  isActive: (req) => req.serverGroup?.policy === AntiAffinity && req.serverGroup.hosts.size > 0,
  hostPasses(host, req) {
    const group = req.serverGroup;
    if (group?.policy !== AntiAffinity) return true;
    return !group.hosts.has(host.host);
  },
};
