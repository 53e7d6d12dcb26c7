/**
 * os-instance-actions: the instance's actions (request id = the workflow id, also the write's
 * x-compute-request-id) and their events. Events are an admin's below 2.51; tracebacks are always an
 * admin's; updated_at from 2.58; a deleted instance's actions are listed from 2.21.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { InstanceAction } from '../../store/instances';
import type { Owner } from '../../store/api';
import type { ApiDeps } from '../deps';
import { notFound } from '../errors';
import { atLeast } from '../microversion';
import { isAdmin } from '../tokens';
import { caller, isoNaive } from './common';
import { instanceNotFound, ownerOrAdmin } from './tenancy';

function actionView(req: FastifyRequest, a: InstanceAction, owner: Owner) {
  const last = [a.finishedAt, ...a.events.map((e) => e.finishedAt ?? e.startedAt)]
    .filter((t): t is string => !!t)
    .sort()
    .pop();
  return {
    action: a.action,
    instance_uuid: a.instanceId,
    request_id: a.requestId,
    user_id: owner.userId,
    project_id: owner.projectId,
    start_time: isoNaive(a.startedAt),
    message: a.message,
    ...(atLeast(req.apiVersion, '2.58') ? { updated_at: isoNaive(last ?? a.startedAt) } : {}),
  };
}

/** The instance (deleted ones too from 2.21) when the caller may see it. */
async function ownerOfVisible(deps: ApiDeps, req: FastifyRequest, id: string): Promise<Owner> {
  const record = await deps.instances.find(id).catch(() => undefined);
  if (!record || (record.vmState === 'deleted' && !atLeast(req.apiVersion, '2.21'))) throw instanceNotFound(id);
  const owner = ownerOrAdmin(await deps.api.instanceOwner(id));
  const who = caller(req);
  if (!isAdmin(who) && owner.projectId !== who.projectId) throw instanceNotFound(id);
  return owner;
}

export function registerInstanceActions(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/servers/:id/os-instance-actions',
    { schema: { tags: ['servers'], summary: "List a server's actions", params: z.object({ id: z.string() }) } },
    async (req) => {
      const owner = await ownerOfVisible(deps, req, req.params.id);
      const actions = await deps.instances.listActions(req.params.id);
      return { instanceActions: [...actions].reverse().map((a) => actionView(req, a, owner)) };
    }
  );
  r.get(
    '/servers/:id/os-instance-actions/:requestId',
    {
      schema: {
        tags: ['servers'],
        summary: 'Show a server action with its events',
        params: z.object({ id: z.string(), requestId: z.string() }),
      },
    },
    async (req) => {
      const owner = await ownerOfVisible(deps, req, req.params.id);
      const action = (await deps.instances.listActions(req.params.id)).find(
        (a) => a.requestId === req.params.requestId
      );
      if (!action)
        throw notFound(`Action for request_id ${req.params.requestId} on instance ${req.params.id} not found`);
      const admin = isAdmin(caller(req));
      const showEvents = admin || atLeast(req.apiVersion, '2.51');
      return {
        instanceAction: {
          ...actionView(req, action, owner),
          ...(showEvents
            ? {
                events: action.events.map((e) => ({
                  event: e.event,
                  start_time: isoNaive(e.startedAt),
                  finish_time: e.finishedAt ? isoNaive(e.finishedAt) : null,
                  result: e.result,
                  ...(admin ? { traceback: e.result === 'Error' ? (e.details ?? null) : null } : {}),
                })),
              }
            : {}),
        },
      };
    }
  );
}
