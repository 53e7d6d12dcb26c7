/**
 * Tenancy: an instance belongs to the project and user of the token that created it (the API's
 * api_instance_owners); instances the API did not create (the conductor CLI's) belong to the admin
 * project. A member sees and acts on its project's instances only (404 for others'); an admin sees all.
 */
import type { FastifyRequest } from 'fastify';

import type { InstanceRecord } from '../../domain/instance';
import type { Owner } from '../../store/api';
import type { ApiDeps } from '../deps';
import { notFound } from '../errors';
import { keystoneId } from '../ids';
import { isAdmin } from '../tokens';
import { caller } from './common';

export const ADMIN_OWNER: Owner = { projectId: keystoneId('project', 'admin'), userId: keystoneId('user', 'admin') };

export const ownerOrAdmin = (owner: Owner | undefined): Owner => owner ?? ADMIN_OWNER;

export const instanceNotFound = (id: string) => notFound(`Instance ${id} could not be found.`);

/** The caller's instance (an admin: any), not deleted; 404 otherwise. */
export async function visibleServer(
  deps: ApiDeps,
  req: FastifyRequest,
  id: string
): Promise<{ record: InstanceRecord; owner: Owner }> {
  const record = await deps.instances.find(id).catch(() => undefined);
  if (!record || record.vmState === 'deleted') throw instanceNotFound(id);
  const owner = ownerOrAdmin(await deps.api.instanceOwner(id));
  const who = caller(req);
  if (!isAdmin(who) && owner.projectId !== who.projectId) throw instanceNotFound(id);
  return { record, owner };
}
