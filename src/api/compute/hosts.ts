/**
 * os-services and os-hypervisors (admin), from placement and the hosts' liveness, as `hosts` shows them.
 * One nova-compute service and one hypervisor per compute host. Services: list, and disable (with a
 * reason), enable and force down (2.11) in both forms: `PUT /os-services/{uuid}` from 2.53, `PUT
 * /os-services/{disable,disable-log-reason,enable,force-down}` below, through the setHostService
 * workflow. Integer ids below 2.53 are kept by the API.
 * NOTE(nova): the conductor, scheduler and API processes are not listed as services.
 */
import os from 'node:os';

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { HostState } from '../../domain/host';
import { workflowIds } from '../../shared/task-queues';
import type { ApiDeps } from '../deps';
import { badRequest, notFound } from '../errors';
import { hypervisorId, serviceId } from '../ids';
import { atLeast } from '../microversion';
import { execute } from '../operations';
import { isoNaive, page, parseLimit, requireAdmin } from './common';
import { requestIdOf } from './request-id';

const BINARY = 'nova-compute';

const capacity = (h: HostState, rc: 'VCPU' | 'MEMORY_MB' | 'DISK_GB') => {
  const inv = h.inventories[rc];
  return inv.total - inv.reserved;
};

async function serviceView(deps: ApiDeps, req: FastifyRequest, h: HostState) {
  const v = req.apiVersion;
  return {
    id: atLeast(v, '2.53') ? serviceId(h.host) : await deps.api.integerId('service', h.host),
    binary: BINARY,
    host: h.host,
    zone: h.availabilityZone,
    status: h.enabled ? 'enabled' : 'disabled',
    state: h.up ? 'up' : 'down',
    updated_at: isoNaive(new Date().toISOString()),
    disabled_reason: h.disabledReason,
    ...(atLeast(v, '2.11') ? { forced_down: h.forcedDown } : {}),
  };
}

async function hypervisorView(deps: ApiDeps, req: FastifyRequest, h: HostState, detail: boolean) {
  const v = req.apiVersion;
  const ids = atLeast(v, '2.53');
  const base = {
    id: ids ? hypervisorId(h.host) : await deps.api.integerId('hypervisor', h.host),
    hypervisor_hostname: h.host,
    state: h.up ? 'up' : 'down',
    status: h.enabled ? 'enabled' : 'disabled',
  };
  if (!detail) return base;
  const arch = {
    arch: h.architecture,
    model: 'fake',
    vendor: 'fake',
    features: [],
    topology: { cores: 1, threads: 1, sockets: capacity(h, 'VCPU') },
  };
  return {
    ...base,
    cpu_info: atLeast(v, '2.28') ? arch : JSON.stringify(arch),
    current_workload: 0,
    disk_available_least: capacity(h, 'DISK_GB') - h.used.DISK_GB,
    host_ip: '127.0.0.1',
    free_disk_gb: capacity(h, 'DISK_GB') - h.used.DISK_GB,
    free_ram_mb: capacity(h, 'MEMORY_MB') - h.used.MEMORY_MB,
    hypervisor_type: 'fake',
    hypervisor_version: 1000,
    local_gb: capacity(h, 'DISK_GB'),
    local_gb_used: h.used.DISK_GB,
    memory_mb: capacity(h, 'MEMORY_MB'),
    memory_mb_used: h.used.MEMORY_MB,
    running_vms: h.instances.size,
    service: {
      host: h.host,
      id: ids ? serviceId(h.host) : await deps.api.integerId('service', h.host),
      disabled_reason: h.disabledReason,
    },
    vcpus: capacity(h, 'VCPU'),
    vcpus_used: h.used.VCPU,
  };
}

/** The hypervisor of an id: its UUID from 2.53, its integer id below; 404 in Nova's words otherwise. */
async function hypervisorById(deps: ApiDeps, req: FastifyRequest, id: string): Promise<HostState> {
  const hosts = await sorted(deps);
  let h: HostState | undefined;
  if (atLeast(req.apiVersion, '2.53')) h = hosts.find((x) => hypervisorId(x.host) === id);
  else if (/^\d+$/.test(id)) {
    const host = await deps.api.keyOfInteger('hypervisor', Number(id));
    h = hosts.find((x) => x.host === host);
  }
  if (!h) throw notFound(`Hypervisor with ID '${id}' could not be found.`);
  return h;
}

/** Nova's os-hypervisors/statistics: the sums over every hypervisor. */
export function statistics(hosts: readonly HostState[]) {
  const sum = (f: (h: HostState) => number) => hosts.reduce((n, h) => n + f(h), 0);
  return {
    count: hosts.length,
    current_workload: 0,
    disk_available_least: sum((h) => capacity(h, 'DISK_GB') - h.used.DISK_GB),
    free_disk_gb: sum((h) => capacity(h, 'DISK_GB') - h.used.DISK_GB),
    free_ram_mb: sum((h) => capacity(h, 'MEMORY_MB') - h.used.MEMORY_MB),
    local_gb: sum((h) => capacity(h, 'DISK_GB')),
    local_gb_used: sum((h) => h.used.DISK_GB),
    memory_mb: sum((h) => capacity(h, 'MEMORY_MB')),
    memory_mb_used: sum((h) => h.used.MEMORY_MB),
    running_vms: sum((h) => h.instances.size),
    vcpus: sum((h) => capacity(h, 'VCPU')),
    vcpus_used: sum((h) => h.used.VCPU),
  };
}

/**
 * The line `uptime` prints on the machine the compute hosts run on (Nova's get_host_uptime runs
 * `uptime` on the compute host): " 10:12:01 up 3 days,  4:05,  0 users,  load average: 0.20, 0.12, 0.14".
 */
export function uptimeLine(now = new Date(), seconds = os.uptime(), load = os.loadavg()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const clock = `${pad(now.getUTCHours())}:${pad(now.getUTCMinutes())}:${pad(now.getUTCSeconds())}`;
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const up = `${days > 0 ? `${days} day${days === 1 ? '' : 's'}, ` : ''}${String(hours).padStart(2)}:${pad(minutes)}`;
  const averages = load.map((l) => l.toFixed(2)).join(', ');
  return ` ${clock} up ${up},  0 users,  load average: ${averages}`;
}

const sorted = async (deps: ApiDeps) => [...(await deps.hostStates())].sort((a, b) => (a.host < b.host ? -1 : 1));

/** Runs setHostService for the host and answers the service as it now is. */
async function setService(
  deps: ApiDeps,
  req: FastifyRequest,
  host: string,
  change: { disabled?: boolean; disabledReason?: string; forcedDown?: boolean }
) {
  const workflowId = workflowIds.setHostService(host, requestIdOf());
  req.requestId = workflowId;
  await execute(deps, 'setHostService', workflowId, { host, ...change });
  const h = (await deps.hostStates()).find((s) => s.host === host);
  if (!h) throw notFound(`Compute host ${host} could not be found.`);
  return serviceView(deps, req, h);
}

const LegacyBody = z
  .object({
    host: z.string(),
    binary: z.string(),
    disabled_reason: z.string().optional(),
    forced_down: z.boolean().optional(),
  })
  .passthrough();
const UpdateBody = z
  .object({
    status: z.enum(['enabled', 'disabled']).optional(),
    disabled_reason: z.string().optional(),
    forced_down: z.boolean().optional(),
  })
  .strict();

export function registerHosts(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/os-services',
    {
      schema: {
        tags: ['services'],
        summary: 'List compute services (admin)',
        querystring: z.object({ host: z.string().optional(), binary: z.string().optional() }).passthrough(),
      },
    },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-services:list');
      let hosts = await sorted(deps);
      if (req.query.host) hosts = hosts.filter((h) => h.host === req.query.host);
      if (req.query.binary && req.query.binary !== BINARY) hosts = [];
      return { services: await Promise.all(hosts.map((h) => serviceView(deps, req, h))) };
    }
  );
  r.put(
    '/os-services/:id',
    {
      schema: {
        tags: ['services'],
        summary: 'Update a compute service (2.53: by id; below: disable, disable-log-reason, enable, force-down)',
        params: z.object({ id: z.string() }),
        body: z.record(z.string(), z.unknown()),
      },
    },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-services:update');
      const v = req.apiVersion;
      const hosts = await sorted(deps);
      if (atLeast(v, '2.53')) {
        const h = hosts.find((x) => serviceId(x.host) === req.params.id);
        if (!h) throw notFound(`Service ${req.params.id} could not be found.`);
        const parsed = UpdateBody.safeParse(req.body);
        if (!parsed.success)
          throw badRequest(`Invalid input for the service update: ${parsed.error.issues[0]?.message ?? ''}`);
        const b = parsed.data;
        if (b.status === undefined && b.forced_down === undefined)
          throw badRequest('No updates were requested. Fields status or forced_down should be specified.');
        if (b.disabled_reason !== undefined && b.status !== 'disabled')
          throw badRequest('Specifying a disabled_reason is only supported when the status is disabled.');
        const service = await setService(deps, req, h.host, {
          ...(b.status ? { disabled: b.status === 'disabled' } : {}),
          ...(b.disabled_reason ? { disabledReason: b.disabled_reason } : {}),
          ...(b.forced_down !== undefined ? { forcedDown: b.forced_down } : {}),
        });
        return { service };
      }
      const action = req.params.id;
      const parsed = LegacyBody.safeParse(req.body);
      if (!parsed.success)
        throw badRequest(`Invalid input for the service update: ${parsed.error.issues[0]?.message ?? ''}`);
      const { host, binary } = parsed.data;
      if (!hosts.some((h) => h.host === host) || binary !== BINARY)
        throw notFound(`Service ${binary} on host ${host} could not be found.`);
      if (action === 'enable' || action === 'disable') {
        await setService(deps, req, host, { disabled: action === 'disable' });
        return { service: { host, binary, status: action === 'disable' ? 'disabled' : 'enabled' } };
      }
      if (action === 'disable-log-reason') {
        const reason = parsed.data.disabled_reason;
        if (!reason) throw badRequest('Missing disabled reason field');
        await setService(deps, req, host, { disabled: true, disabledReason: reason });
        return { service: { host, binary, status: 'disabled', disabled_reason: reason } };
      }
      if (action === 'force-down' && atLeast(v, '2.11')) {
        const forced = parsed.data.forced_down;
        if (forced === undefined) throw badRequest('Missing forced_down field');
        await setService(deps, req, host, { forcedDown: forced });
        return { service: { host, binary, forced_down: forced } };
      }
      throw notFound('Unknown action');
    }
  );

  const list =
    (detail: boolean) =>
    async (
      req: FastifyRequest<{ Querystring: { limit?: string; marker?: string; hypervisor_hostname_pattern?: string } }>
    ) => {
      requireAdmin(req, 'os_compute_api:os-hypervisors:list');
      let hosts = await sorted(deps);
      const pattern = req.query.hypervisor_hostname_pattern;
      if (pattern !== undefined && atLeast(req.apiVersion, '2.53'))
        hosts = hosts.filter((h) => h.host.includes(pattern));
      // The marker is the hypervisor's id: its UUID from 2.53, its integer id below.
      const ids = new Map<string, string>();
      for (const h of hosts)
        ids.set(
          h.host,
          atLeast(req.apiVersion, '2.53')
            ? hypervisorId(h.host)
            : String(await deps.api.integerId('hypervisor', h.host))
        );
      const paged = atLeast(req.apiVersion, '2.33')
        ? page(hosts, (h) => ids.get(h.host)!, parseLimit(req.query.limit), req.query.marker)
        : { items: hosts, markerMissing: false, more: false };
      if (paged.markerMissing) throw badRequest(`marker [${req.query.marker}] not found`);
      return { hypervisors: await Promise.all(paged.items.map((h) => hypervisorView(deps, req, h, detail))) };
    };
  const HypervisorQuery = z
    .object({
      limit: z.string().optional(),
      marker: z.string().optional(),
      hypervisor_hostname_pattern: z.string().optional(),
    })
    .passthrough();
  r.get(
    '/os-hypervisors',
    { schema: { tags: ['hypervisors'], summary: 'List hypervisors (admin)', querystring: HypervisorQuery } },
    list(false)
  );
  r.get(
    '/os-hypervisors/detail',
    {
      schema: { tags: ['hypervisors'], summary: 'List hypervisors with details (admin)', querystring: HypervisorQuery },
    },
    list(true)
  );
  r.get(
    '/os-hypervisors/statistics',
    { schema: { tags: ['hypervisors'], summary: 'Totals over every hypervisor (admin; below 2.88)' } },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-hypervisors:statistics');
      return { hypervisor_statistics: statistics(await sorted(deps)) };
    }
  );
  // Below 2.53: the hypervisors whose hostname contains the pattern (404 when none), with their servers.
  const byPattern = async (pattern: string) => {
    const hosts = (await sorted(deps)).filter((h) => h.host.includes(pattern));
    if (hosts.length === 0) throw notFound(`No hypervisor matching '${pattern}' could be found.`);
    return hosts;
  };
  r.get(
    '/os-hypervisors/:pattern/search',
    {
      schema: {
        tags: ['hypervisors'],
        summary: 'Hypervisors whose hostname contains the pattern (admin; below 2.53)',
        params: z.object({ pattern: z.string() }),
      },
    },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-hypervisors:search');
      if (atLeast(req.apiVersion, '2.53')) throw notFound('Unknown resource');
      const hosts = await byPattern(req.params.pattern);
      return { hypervisors: await Promise.all(hosts.map((h) => hypervisorView(deps, req, h, false))) };
    }
  );
  r.get(
    '/os-hypervisors/:pattern/servers',
    {
      schema: {
        tags: ['hypervisors'],
        summary: 'Hypervisors whose hostname contains the pattern, with their servers (admin; below 2.53)',
        params: z.object({ pattern: z.string() }),
      },
    },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-hypervisors:servers');
      if (atLeast(req.apiVersion, '2.53')) throw notFound('Unknown resource');
      const hosts = await byPattern(req.params.pattern);
      const hypervisors = [];
      for (const h of hosts) {
        const servers = [];
        for (const id of [...h.instances].sort()) {
          const record = await deps.instances.find(id);
          if (record && record.vmState !== 'deleted') servers.push({ uuid: id, name: record.name });
        }
        hypervisors.push({ ...(await hypervisorView(deps, req, h, false)), ...(servers.length ? { servers } : {}) });
      }
      return { hypervisors };
    }
  );
  r.get(
    '/os-hypervisors/:id/uptime',
    {
      schema: {
        tags: ['hypervisors'],
        summary: "The hypervisor's uptime (admin; below 2.88)",
        params: z.object({ id: z.string() }),
      },
    },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-hypervisors:uptime');
      const h = await hypervisorById(deps, req, req.params.id);
      if (!h.up || !h.enabled)
        throw badRequest(`Cannot get the uptime of hypervisor ${h.host}: its compute service is down or disabled.`);
      return { hypervisor: { ...(await hypervisorView(deps, req, h, false)), uptime: uptimeLine() } };
    }
  );
  r.get(
    '/os-hypervisors/:id',
    { schema: { tags: ['hypervisors'], summary: 'Show a hypervisor (admin)', params: z.object({ id: z.string() }) } },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-hypervisors:show');
      return { hypervisor: await hypervisorView(deps, req, await hypervisorById(deps, req, req.params.id), true) };
    }
  );
}
