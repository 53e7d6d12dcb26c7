/**
 * GET /limits: NOTE(nova): there are no quotas here yet; every maximum is -1 (unlimited), as Nova shows
 * an unlimited quota, and the usage is the caller's project's (instances, cores, RAM, server groups).
 * Keys per microversion: 2.36 drops the network and security-group ones, 2.39 maxImageMeta, 2.57 the
 * personality ones.
 */
import type { FastifyInstance } from 'fastify';

import type { ApiDeps } from '../deps';
import { atLeast } from '../microversion';
import { caller } from './common';
import { ownerOrAdmin } from './tenancy';

export function registerLimits(app: FastifyInstance, deps: ApiDeps): void {
  app.get(
    '/limits',
    { schema: { tags: ['limits'], summary: 'Absolute limits (no quotas: unlimited) and usage' } },
    async (req) => {
      const v = req.apiVersion;
      const project = caller(req).projectId;
      const owners = await deps.api.instanceOwners();
      const mine = (await deps.instances.list()).filter(
        (i) => i.vmState !== 'deleted' && ownerOrAdmin(owners.get(i.instanceId)).projectId === project
      );
      const groups = [...(await deps.api.serverGroupOwners()).values()].filter((o) => o.projectId === project);
      const absolute: Record<string, number> = {
        maxServerMeta: -1,
        maxTotalCores: -1,
        maxTotalInstances: -1,
        maxTotalKeypairs: -1,
        maxTotalRAMSize: -1,
        maxServerGroups: -1,
        maxServerGroupMembers: -1,
        totalCoresUsed: mine.reduce((n, i) => n + i.vcpus, 0),
        totalInstancesUsed: mine.length,
        totalRAMUsed: mine.reduce((n, i) => n + i.memoryMb, 0),
        totalServerGroupsUsed: groups.length,
      };
      if (!atLeast(v, '2.39')) absolute.maxImageMeta = -1;
      if (!atLeast(v, '2.57')) Object.assign(absolute, { maxPersonality: -1, maxPersonalitySize: -1 });
      if (!atLeast(v, '2.36'))
        Object.assign(absolute, {
          maxSecurityGroupRules: -1,
          maxSecurityGroups: -1,
          maxTotalFloatingIps: -1,
          totalFloatingIpsUsed: 0,
          totalSecurityGroupsUsed: 0,
        });
      return { limits: { absolute, rate: [] } };
    }
  );
}
