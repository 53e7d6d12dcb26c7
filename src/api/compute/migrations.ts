/**
 * Migrations: `GET /os-migrations` (admin; filters, migration_type and links at 2.23, uuid and paging at
 * 2.59) and a server's live migrations (`GET /servers/{id}/migrations[/{mid}]` from 2.22, force_complete
 * at 2.22, abort at 2.24) through the liveMigrate workflow's Updates. Integer ids are kept by the API.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { MigrationRecord } from '../../store/instances';
import { abortLiveMigrationUpdate, forceCompleteUpdate } from '../../shared/messages';
import { typedFailureOf } from '../../workers/workflow-client';
import type { ApiDeps } from '../deps';
import { badRequest, conflict, faultOfFailure, notFound } from '../errors';
import { atLeast } from '../microversion';
import { isoNaive, page, parseLimit, requireAdmin } from './common';
import { visibleServer } from './tenancy';

const flavorIndex = (deps: ApiDeps, name: string) => deps.catalogue.flavors.findIndex((f) => f.name === name) + 1;

const IN_PROGRESS = new Set([
  'queued',
  'accepted',
  'preparing',
  'running',
  'post-migrating',
  'pre-migrating',
  'migrating',
]);

async function migrationView(deps: ApiDeps, req: FastifyRequest, m: MigrationRecord, perServer: boolean) {
  const v = req.apiVersion;
  const id = await deps.api.integerId('migration', m.id);
  const base = {
    created_at: isoNaive(m.createdAt),
    dest_compute: m.destHost,
    dest_host: m.destHost ? '127.0.0.1' : null,
    dest_node: m.destHost,
    id,
    instance_uuid: m.instanceId,
    source_compute: m.sourceHost,
    source_node: m.sourceHost,
    status: m.status,
    updated_at: isoNaive(m.updatedAt),
  };
  if (perServer) {
    return {
      ...base,
      server_uuid: m.instanceId,
      instance_uuid: undefined,
      memory_total_bytes: null,
      memory_processed_bytes: null,
      memory_remaining_bytes: null,
      disk_total_bytes: null,
      disk_processed_bytes: null,
      disk_remaining_bytes: null,
      ...(atLeast(v, '2.59') ? { uuid: m.id } : {}),
    };
  }
  const live = m.migrationType === 'live-migration';
  return {
    ...base,
    new_instance_type_id: flavorIndex(deps, m.newFlavor),
    old_instance_type_id: flavorIndex(deps, m.oldFlavor),
    ...(atLeast(v, '2.23')
      ? {
          migration_type: m.migrationType,
          ...(live && IN_PROGRESS.has(m.status)
            ? {
                links: [
                  { rel: 'self', href: `${deps.publicUrl}/compute/v2.1/servers/${m.instanceId}/migrations/${id}` },
                  { rel: 'bookmark', href: `${deps.publicUrl}/compute/servers/${m.instanceId}/migrations/${id}` },
                ],
              }
            : {}),
        }
      : {}),
    ...(atLeast(v, '2.59') ? { uuid: m.id } : {}),
  };
}

const ListQuery = z
  .object({
    instance_uuid: z.string().optional(),
    host: z.string().optional(),
    source_compute: z.string().optional(),
    status: z.string().optional(),
    migration_type: z.string().optional(),
    limit: z.string().optional(),
    marker: z.string().optional(),
    'changes-since': z.string().optional(),
  })
  .passthrough();

/** The migration of the server by its integer id (or UUID), a live one under way; 404 otherwise. */
async function serverMigration(deps: ApiDeps, req: FastifyRequest, serverId: string, mid: string) {
  const { record } = await visibleServer(deps, req, serverId);
  const key = /^\d+$/.test(mid) ? await deps.api.keyOfInteger('migration', Number(mid)) : mid;
  const m = key ? await deps.instances.findMigration(key) : undefined;
  if (!m || m.instanceId !== record.instanceId) throw notFound(`Migration ${mid} could not be found.`);
  return { record, migration: m };
}

export function registerMigrations(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/os-migrations',
    { schema: { tags: ['migrations'], summary: 'List migrations (admin)', querystring: ListQuery } },
    async (req) => {
      requireAdmin(req, 'os_compute_api:os-migrations:index');
      const q = req.query;
      const instances = q.instance_uuid ? [q.instance_uuid] : (await deps.instances.list()).map((i) => i.instanceId);
      let all = (await Promise.all(instances.map((id) => deps.instances.listMigrations(id)))).flat();
      if (q.host) all = all.filter((m) => m.sourceHost === q.host || m.destHost === q.host);
      if (q.source_compute) all = all.filter((m) => m.sourceHost === q.source_compute);
      if (q.status) all = all.filter((m) => m.status === q.status);
      if (q.migration_type) all = all.filter((m) => m.migrationType === q.migration_type);
      if (q['changes-since']) {
        const since = Date.parse(q['changes-since']);
        if (Number.isNaN(since)) throw badRequest(`Invalid changes-since ${q['changes-since']}`);
        all = all.filter((m) => Date.parse(m.updatedAt) >= since);
      }
      all.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1));
      const paged = atLeast(req.apiVersion, '2.59')
        ? page(all, (m) => m.id, parseLimit(q.limit), q.marker)
        : { items: all, markerMissing: false, more: false };
      if (paged.markerMissing) throw notFound(`Marker ${q.marker} could not be found.`);
      return { migrations: await Promise.all(paged.items.map((m) => migrationView(deps, req, m, false))) };
    }
  );

  r.get(
    '/servers/:id/migrations',
    {
      schema: {
        tags: ['migrations'],
        summary: "A server's live migrations under way (2.22)",
        params: z.object({ id: z.string() }),
      },
    },
    async (req) => {
      requireAdmin(req, 'os_compute_api:servers:migrations:index');
      if (!atLeast(req.apiVersion, '2.23')) throw notFound('The resource could not be found.');
      const { record } = await visibleServer(deps, req, req.params.id);
      const live = (await deps.instances.listMigrations(record.instanceId)).filter(
        (m) => m.migrationType === 'live-migration' && IN_PROGRESS.has(m.status)
      );
      return { migrations: await Promise.all(live.map((m) => migrationView(deps, req, m, true))) };
    }
  );
  r.get(
    '/servers/:id/migrations/:mid',
    {
      schema: {
        tags: ['migrations'],
        summary: 'A live migration under way',
        params: z.object({ id: z.string(), mid: z.string() }),
      },
    },
    async (req) => {
      requireAdmin(req, 'os_compute_api:servers:migrations:show');
      if (!atLeast(req.apiVersion, '2.23')) throw notFound('The resource could not be found.');
      const { migration } = await serverMigration(deps, req, req.params.id, req.params.mid);
      if (migration.migrationType !== 'live-migration' || !IN_PROGRESS.has(migration.status))
        throw notFound(`In-progress live migration ${req.params.mid} is not found for server ${req.params.id}.`);
      return { migration: await migrationView(deps, req, migration, true) };
    }
  );

  /** An Update on the live migration's workflow (the instance's task owner); its rejection as a fault. */
  async function liveUpdate(req: FastifyRequest, serverId: string, mid: string, abort: boolean): Promise<void> {
    const { record, migration } = await serverMigration(deps, req, serverId, mid);
    if (migration.migrationType !== 'live-migration' || !IN_PROGRESS.has(migration.status) || !record.taskOwner)
      throw (abort ? notFound : conflict)(
        `Migration ${mid} of instance ${serverId} is not a live migration under way (status ${migration.status}).`
      );
    req.requestId = record.taskOwner;
    const handle = (await deps.temporal()).workflow.getHandle(record.taskOwner);
    try {
      if (abort) await handle.executeUpdate(abortLiveMigrationUpdate);
      else await handle.executeUpdate(forceCompleteUpdate);
    } catch (err) {
      const failure = typedFailureOf(err);
      if (failure)
        throw failure.type === 'InvalidRequest'
          ? conflict(failure.message)
          : faultOfFailure(failure.type, failure.message);
      throw err;
    }
  }

  r.post(
    '/servers/:id/migrations/:mid/action',
    {
      schema: {
        tags: ['migrations'],
        summary: 'Force a live migration to complete (2.22)',
        params: z.object({ id: z.string(), mid: z.string() }),
        body: z.object({ force_complete: z.null() }),
      },
    },
    async (req, reply) => {
      requireAdmin(req, 'os_compute_api:servers:migrations:force_complete');
      if (!atLeast(req.apiVersion, '2.22')) throw notFound('The resource could not be found.');
      await liveUpdate(req, req.params.id, req.params.mid, false);
      return reply.status(202).send();
    }
  );
  r.delete(
    '/servers/:id/migrations/:mid',
    {
      schema: {
        tags: ['migrations'],
        summary: 'Abort a live migration (2.24)',
        params: z.object({ id: z.string(), mid: z.string() }),
      },
    },
    async (req, reply) => {
      requireAdmin(req, 'os_compute_api:servers:migrations:delete');
      if (!atLeast(req.apiVersion, '2.24')) throw notFound('The resource could not be found.');
      await liveUpdate(req, req.params.id, req.params.mid, true);
      return reply.status(202).send();
    }
  );
}
