/**
 * POST /servers/{id}/action: os-stop, os-start, reboot, pause, unpause, suspend, resume, createImage, shelve,
 * shelveOffload, unshelve, rebuild, evacuate, resize, confirmResize, revertResize,
 * migrate, os-migrateLive, os-resetState, each through the workflow (or Update) the CLIs use, answered
 * once the workflow holds the instance. Nova's other actions answer 501; an unknown one 400.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import { FailureType } from '../../domain/errors';
import type { InstanceRecord } from '../../domain/instance';
import { confirmResizeUpdate, revertResizeUpdate } from '../../shared/messages';
import { workflowIds } from '../../shared/task-queues';
import { typedFailureOf } from '../../workers/workflow-client';
import type { ApiDeps } from '../deps';
import { badRequest, conflict, faultOfFailure, notImplemented } from '../errors';
import { imageId } from '../ids';
import { findImage } from '../images';
import type { Microversion } from '../microversion';
import { atLeast } from '../microversion';
import { execute, heldBy, startAndAccept } from '../operations';
import { requireAdmin, requireMember } from './common';
import { requestIdOf } from './request-id';
import { findApiFlavor } from './flavors';
import { attributesOf } from './server-attributes';
import { checkMetadata, checkMetadataQuota } from './server-metadata';
import { rebuildView } from './server-view';
import { renameServer, ServerName } from './servers-write';
import { showServer } from './servers-read';
import { visibleServer } from './tenancy';
import { unshelveInput } from './unshelve';

/** NOTE(nova): Nova's server actions this conductor does not have answer 501 notImplemented. */
const NOT_IMPLEMENTED = new Set([
  'lock',
  'unlock',
  'rescue',
  'unrescue',
  'createBackup',
  'changePassword',
  'os-getConsoleOutput',
  'os-getVNCConsole',
  'os-getSPICEConsole',
  'os-getSerialConsole',
  'os-getRDPConsole',
  'addFloatingIp',
  'removeFloatingIp',
  'addFixedIp',
  'removeFixedIp',
  'addSecurityGroup',
  'removeSecurityGroup',
  'trigger_crash_dump',
  'resetNetwork',
  'forceDelete',
  'restore',
]);

type Handler = (ctx: {
  deps: ApiDeps;
  req: FastifyRequest;
  reply: FastifyReply;
  record: InstanceRecord;
  arg: unknown;
}) => Promise<unknown>;

const obj = (arg: unknown): Record<string, unknown> =>
  arg !== null && typeof arg === 'object' && !Array.isArray(arg) ? (arg as Record<string, unknown>) : {};

/** Starts an operation on the instance under a fresh workflow id and answers 202 once it holds the instance. */
async function operate<
  K extends
    | 'stop'
    | 'start'
    | 'reboot'
    | 'pause'
    | 'unpause'
    | 'suspend'
    | 'resume'
    | 'snapshot'
    | 'shelve'
    | 'shelveOffload'
    | 'unshelve'
    | 'rebuild'
    | 'resizeMigrate'
    | 'liveMigrate',
>(deps: ApiDeps, req: FastifyRequest, type: K, instanceId: string, input: Record<string, unknown>): Promise<void> {
  const id = requestIdOf();
  const workflowId = {
    stop: workflowIds.stop,
    start: workflowIds.start,
    reboot: workflowIds.reboot,
    pause: workflowIds.pause,
    unpause: workflowIds.unpause,
    suspend: workflowIds.suspend,
    resume: workflowIds.resume,
    snapshot: workflowIds.snapshot,
    shelve: workflowIds.shelve,
    shelveOffload: workflowIds.shelveOffload,
    unshelve: workflowIds.unshelve,
    rebuild: workflowIds.rebuild,
    resizeMigrate: workflowIds.resizeMigrate,
    liveMigrate: workflowIds.liveMigrate,
  }[type](instanceId, id);
  req.requestId = workflowId;
  await startAndAccept(deps, type, workflowId, { instanceId, ...input }, heldBy(deps, instanceId, workflowId));
}

/**
 * The resize or cold migration of the instance waiting for a decision: the workflow of its latest resize or
 * migrate action (the action's request id), still running. 409 in Nova's form otherwise.
 */
async function pendingResize(deps: ApiDeps, record: InstanceRecord, method: string): Promise<string> {
  const refused = () =>
    conflict(`Cannot '${method}' instance ${record.instanceId} while it is in vm_state ${record.vmState}`);
  if (record.vmState !== 'resized') throw refused();
  const actions = await deps.instances.listActions(record.instanceId);
  const latest = [...actions].reverse().find((a) => a.action === 'resize' || a.action === 'migrate');
  if (!latest) throw refused();
  const { status } = await (await deps.temporal()).workflow.getHandle(latest.requestId).describe();
  if (status.name !== 'RUNNING') throw refused();
  return latest.requestId;
}

async function decide(deps: ApiDeps, req: FastifyRequest, record: InstanceRecord, confirm: boolean): Promise<void> {
  const workflowId = await pendingResize(deps, record, confirm ? 'confirmResize' : 'revertResize');
  req.requestId = workflowId;
  const handle = (await deps.temporal()).workflow.getHandle(workflowId);
  const deadline = Date.now() + DECISION_OPEN_WAIT_MS;
  for (;;) {
    try {
      await handle.executeUpdate(confirm ? confirmResizeUpdate : revertResizeUpdate);
      return;
    } catch (err) {
      const failure = typedFailureOf(err);
      // The record says VERIFY_RESIZE a moment before the workflow opens its decision (its next workflow
      // task): an Update in between is refused as "no resize awaits confirmation". Ask again meanwhile.
      const early =
        failure?.type === FailureType.InstanceInvalidState && failure.message.includes('no resize awaits confirmation');
      if (early && Date.now() < deadline && (await deps.instances.find(record.instanceId))?.vmState === 'resized') {
        await delay(100);
        continue;
      }
      if (failure) throw faultOfFailure(failure.type, failure.message);
      throw err;
    }
  }
}

/** How long a confirm or revert waits for the resize workflow to open its decision (see decide). */
export const DECISION_OPEN_WAIT_MS = 5_000;

const hostArg = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * Whether an evacuation's requested host is forced (claimed with no scheduler), as Nova's evacuate API
 * decides it: below 2.29 every requested host is forced (the API had no `force`); from 2.29 to 2.67
 * `force: true` asks for it, and forcing with no host is refused; from 2.68 `force` is not accepted
 * (the host is validated by the scheduler).
 */
function evacuateForce(apiVersion: Microversion, a: Record<string, unknown>, host: string | undefined): boolean {
  if (!atLeast(apiVersion, '2.29')) return host !== undefined;
  if (a.force === undefined) return false;
  if (atLeast(apiVersion, '2.68'))
    throw badRequest(
      "Invalid input for field/attribute evacuate. Additional properties are not allowed ('force' was unexpected)"
    );
  if (typeof a.force !== 'boolean')
    throw badRequest(`Invalid input for field/attribute force. Value: ${JSON.stringify(a.force)}.`);
  if (a.force && host === undefined) throw badRequest("Can't force to a non-provided destination");
  return a.force;
}

async function checkHost(deps: ApiDeps, host: string | undefined): Promise<void> {
  if (host && !(await deps.hostStates()).some((h) => h.host === host))
    throw badRequest(`Compute host ${host} could not be found.`);
}

const ACTIONS: Record<string, Handler> = {
  'os-stop': async ({ deps, req, reply, record }) => {
    await operate(deps, req, 'stop', record.instanceId, {});
    return reply.status(202).send();
  },
  'os-start': async ({ deps, req, reply, record }) => {
    await operate(deps, req, 'start', record.instanceId, {});
    return reply.status(202).send();
  },
  // Nova's reboot action: {"reboot": {"type": "SOFT" | "HARD"}} (the type is required, either case).
  reboot: async ({ deps, req, reply, record, arg }) => {
    const type = obj(arg).type;
    if (typeof type !== 'string' || !['SOFT', 'HARD'].includes(type.toUpperCase()))
      throw badRequest("Invalid input for field/attribute type. Value: must be one of 'SOFT', 'HARD'");
    await operate(deps, req, 'reboot', record.instanceId, { type: type.toUpperCase() });
    return reply.status(202).send();
  },
  // NOTE(nova): there is no network to inject into a guest here; like a driver without
  // inject_network_info, the request is accepted (admin only) and changes nothing.
  injectNetworkInfo: async ({ req, reply }) => {
    requireAdmin(req, 'os_compute_api:os-admin-actions:inject_network_info');
    return reply.status(202).send();
  },
  // Nova's createImage ({"createImage": {"name": …}}: 202, the image's id in the body from 2.45, else in
  // Location), shelve and shelveOffload (no argument).
  createImage: async ({ deps, req, reply, record, arg }) => {
    const a = obj(arg);
    if (typeof a.name !== 'string' || a.name === '')
      throw badRequest("Invalid input for field/attribute createImage. 'name' is a required property");
    await operate(deps, req, 'snapshot', record.instanceId, { name: a.name });
    const id = imageId(a.name);
    reply.header('Location', `${deps.publicUrl}/image/v2/images/${id}`);
    return reply.status(202).send(atLeast(req.apiVersion, '2.45') ? { image_id: id } : undefined);
  },
  shelve: async ({ deps, req, reply, record }) => {
    await operate(deps, req, 'shelve', record.instanceId, {});
    return reply.status(202).send();
  },
  shelveOffload: async ({ deps, req, reply, record }) => {
    requireAdmin(req, 'os_compute_api:os-shelve:shelve_offload');
    await operate(deps, req, 'shelveOffload', record.instanceId, {});
    return reply.status(202).send();
  },
  // Nova's unshelve: {"unshelve": null}, with an availability zone from 2.77 and a host from 2.91.
  unshelve: async ({ deps, req, reply, record, arg }) => {
    await operate(deps, req, 'unshelve', record.instanceId, await unshelveInput(deps, req, arg));
    return reply.status(202).send();
  },
  // Nova's pause, unpause, suspend and resume actions: {"pause": null} and so on, no argument.
  pause: async ({ deps, req, reply, record }) => {
    await operate(deps, req, 'pause', record.instanceId, {});
    return reply.status(202).send();
  },
  unpause: async ({ deps, req, reply, record }) => {
    await operate(deps, req, 'unpause', record.instanceId, {});
    return reply.status(202).send();
  },
  suspend: async ({ deps, req, reply, record }) => {
    await operate(deps, req, 'suspend', record.instanceId, {});
    return reply.status(202).send();
  },
  resume: async ({ deps, req, reply, record }) => {
    await operate(deps, req, 'resume', record.instanceId, {});
    return reply.status(202).send();
  },
  rebuild: async ({ deps, req, reply, record, arg }) => {
    const a = obj(arg);
    if (typeof a.imageRef !== 'string')
      throw badRequest("Invalid input for field/attribute rebuild. 'imageRef' is a required property");
    const ref = a.imageRef.split('/').pop() ?? a.imageRef;
    const image = findImage(deps, ref);
    if (!image) throw badRequest(`Image ${ref} could not be found.`);
    // Nova's rebuild also sets the name and replaces the metadata when given (checked before anything starts).
    const name = a.name === undefined ? undefined : ServerName.safeParse(a.name);
    if (name && !name.success)
      throw badRequest('Invalid input for field/attribute name. Value: must be 1-255 characters');
    const metadata = a.metadata === undefined ? undefined : checkMetadata(a.metadata);
    if (metadata) checkMetadataQuota(metadata);
    const attributes = attributesOf(a);
    // As Nova with enable_instance_password: a password is set (generated unless given) and returned.
    const adminPass = typeof a.adminPass === 'string' ? a.adminPass : randomBytes(9).toString('base64url');
    await operate(deps, req, 'rebuild', record.instanceId, { image: image.name, adminPassword: adminPass });
    if (name?.data !== undefined) await renameServer(deps, record.instanceId, name.data);
    if (metadata) await deps.api.writeInstanceMetadata(record.instanceId, metadata, { replace: true });
    await deps.api.setInstanceAttributes(record.instanceId, attributes);
    const server = await showServer(deps, req, record.instanceId);
    // As Nova, whose API sets the instance's image before it casts the rebuild: the answer names the new
    // image, though the rebuild workflow has not yet changed the record (Tempest checks it at once).
    const id = imageId(image.name);
    server.image = { id, links: [{ rel: 'bookmark', href: `${deps.publicUrl}/compute/images/${id}` }] };
    return reply.status(202).send({ server: rebuildView(server, adminPass) });
  },
  evacuate: async ({ deps, req, reply, record, arg }) => {
    requireAdmin(req, 'os_compute_api:os-evacuate');
    const a = obj(arg);
    const host = hostArg(a.host);
    const force = evacuateForce(req.apiVersion, a, host);
    await checkHost(deps, host);
    const adminPass = typeof a.adminPass === 'string' ? a.adminPass : undefined;
    await operate(deps, req, 'rebuild', record.instanceId, {
      evacuate: true,
      ...(host ? { host } : {}),
      ...(force ? { force } : {}),
      ...(adminPass ? { adminPassword: adminPass } : {}),
    });
    // Nova answers 200: with the password below 2.14, with no body from 2.14.
    return reply.status(200).send(atLeast(req.apiVersion, '2.14') ? undefined : { adminPass: adminPass ?? null });
  },
  resize: async ({ deps, req, reply, record, arg }) => {
    const a = obj(arg);
    if (typeof a.flavorRef !== 'string' && typeof a.flavorRef !== 'number')
      throw badRequest("Invalid input for field/attribute resize. 'flavorRef' is a required property");
    const flavor = String(a.flavorRef).split('/').pop()!;
    if (!(await findApiFlavor(deps, flavor))) throw badRequest(`Flavor ${flavor} could not be found.`);
    if (flavor === record.flavor) throw badRequest('When resizing, instances must change flavor!');
    await operate(deps, req, 'resizeMigrate', record.instanceId, { flavor });
    return reply.status(202).send();
  },
  confirmResize: async ({ deps, req, reply, record }) => {
    await decide(deps, req, record, true);
    return reply.status(204).send();
  },
  revertResize: async ({ deps, req, reply, record }) => {
    await decide(deps, req, record, false);
    return reply.status(202).send();
  },
  migrate: async ({ deps, req, reply, record, arg }) => {
    requireAdmin(req, 'os_compute_api:os-migrate-server:migrate');
    const host = atLeast(req.apiVersion, '2.56') ? hostArg(obj(arg).host) : undefined;
    if (!atLeast(req.apiVersion, '2.56') && obj(arg).host !== undefined)
      throw badRequest(
        "Invalid input for field/attribute migrate. Additional properties are not allowed ('host' was unexpected)"
      );
    await checkHost(deps, host);
    await operate(deps, req, 'resizeMigrate', record.instanceId, host ? { host } : {});
    return reply.status(202).send();
  },
  'os-migrateLive': async ({ deps, req, reply, record, arg }) => {
    requireAdmin(req, 'os_compute_api:os-migrate-server:migrate_live');
    const a = obj(arg);
    const host = hostArg(a.host);
    await checkHost(deps, host);
    const block = a.block_migration;
    const blockMigration = block === 'auto' ? 'auto' : block === true || block === 'true' || block === 'True';
    if (block === 'auto' && !atLeast(req.apiVersion, '2.25'))
      throw badRequest(
        "Invalid input for field/attribute block_migration. Value: auto. 'auto' is not of type 'boolean'"
      );
    const force = atLeast(req.apiVersion, '2.30') && a.force === true && host !== undefined;
    await operate(deps, req, 'liveMigrate', record.instanceId, {
      ...(host ? { host } : {}),
      ...(force ? { force } : {}),
      blockMigration,
    });
    return reply.status(202).send();
  },
  'os-resetState': async ({ deps, req, reply, record, arg }) => {
    requireAdmin(req, 'os_compute_api:os-admin-actions:reset_state');
    const state = obj(arg).state;
    if (state !== 'active' && state !== 'error')
      throw badRequest('Invalid input for field/attribute state. Value: ' + String(state) + ". 'active' or 'error'");
    const workflowId = `reset-state-${record.instanceId}-${requestIdOf()}`;
    req.requestId = workflowId;
    await execute(deps, 'resetState', workflowId, { instanceId: record.instanceId, state });
    return reply.status(202).send();
  },
};

export function registerServerActions(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/servers/:id/action',
    {
      schema: {
        tags: ['servers'],
        summary:
          'A server action: os-stop, os-start, reboot, pause, unpause, suspend, resume, createImage, shelve, shelveOffload, unshelve, rebuild, evacuate, resize, confirmResize, revertResize, migrate, os-migrateLive, os-resetState',
        params: z.object({ id: z.string() }),
        body: z.record(z.string(), z.unknown()),
      },
    },
    async (req, reply) => {
      requireMember(req);
      const keys = Object.keys(req.body);
      if (keys.length !== 1) throw badRequest('Malformed request body: one action per request');
      const name = keys[0]!;
      const handler = ACTIONS[name];
      if (!handler) {
        if (NOT_IMPLEMENTED.has(name)) throw notImplemented(`Action ${name} is not implemented by this conductor.`);
        throw badRequest(`There is no such action: ${name}`);
      }
      const { record } = await visibleServer(deps, req, req.params.id);
      return handler({ deps, req, reply, record, arg: req.body[name] });
    }
  );
}
