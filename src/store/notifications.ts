/**
 * The notification outbox: every versioned notification (src/domain/notifications.ts) is written in the
 * transaction of the change it reports (an action's start or end, a step's event, a server group's or a
 * service's change), so a crash can neither lose one nor report a change that did not commit. Rows are
 * numbered in commit order; a relay (src/workers/notifications/) delivers the undelivered ones in that
 * order, at least once, and marks them; `conductor notifications` reads them.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';

import type { FaultFacts, FlavorFacts, InstanceFacts } from '../domain/notification-payloads';
import {
  exceptionPayload,
  instanceActionPayload,
  instanceCreatePayload,
  instanceRebuildPayload,
  instanceResizePrepPayload,
  instanceSnapshotPayload,
  requestSpecPayload,
  serverGroupPayload,
  serviceStatusPayload,
} from '../domain/notification-payloads';
import type {
  NotificationRule,
  NotificationSource,
  Phase,
  VersionedNotification,
  VersionedObject,
} from '../domain/notifications';
import { COMPUTE_EXCEPTION, actionRules, isComputeStep, stepRules } from '../domain/notifications';
import type { Catalogue, Image } from '../domain/catalogue';
import type { Store } from './db';
import { imageId, serverGroupId, serviceId } from './ids';
import { transaction } from './db';
import { instanceFromRow, selectInstanceRow } from './instances/rows';
import { prepared } from './prepared';
import type { Database } from './schema';
import { nowIso } from './util';

type Db = Kysely<Database>;

/**
 * What a process tells its store about the notifications it writes: its host (the publisher id's) and
 * the catalogue's flavors (their extra specs, and the sizes of a flavor an instance is resized to).
 */
export interface NotificationContext {
  host: string;
  flavor?: (name: string) => FlavorFacts | undefined;
  image?: (name: string) => Image | undefined;
}

/** Runs `fn` in the caller's transaction when there is one, else in a new one. */
export function atomically<T>(store: Store, fn: (db: Db) => Promise<T>): Promise<T> {
  if (store.db.isTransaction) return fn(store.db);
  return transaction(store, (trx: Transaction<Database>) => fn(trx));
}

function publisher(store: Store, source: NotificationSource, computeHost: string | null): string {
  const host = source === 'compute' && computeHost ? computeHost : (store.notifications?.host ?? hostname());
  return `nova-${source}:${host}`;
}

const insertNotification = prepared(
  (
    db,
    p: {
      messageId: string;
      eventType: string;
      priority: string;
      publisherId: string;
      instanceId: string | null;
      createdAt: string;
      payload: string;
    }
  ) =>
    db.insertInto('notifications').values({
      message_id: p.messageId,
      event_type: p.eventType,
      priority: p.priority,
      publisher_id: p.publisherId,
      instance_id: p.instanceId,
      created_at: p.createdAt,
      payload: p.payload,
    })
);

/** Writes one notification (in the caller's transaction). */
export async function writeNotification(
  db: Db,
  n: Omit<VersionedNotification, 'messageId' | 'timestamp'> & { timestamp?: string }
): Promise<void> {
  await insertNotification(db, {
    messageId: randomUUID(),
    eventType: n.eventType,
    priority: n.priority,
    publisherId: n.publisherId,
    instanceId: n.instanceId,
    createdAt: n.timestamp ?? nowIso(),
    payload: JSON.stringify(n.payload),
  });
}

/** A failure type at the head of a message ("NoValidHost: …"), else Nova's base exception. */
function faultOf(message: string, type: string | null, functionName: string, moduleName: string): FaultFacts {
  const head = /^([A-Z][A-Za-z]+):\s/.exec(message);
  return { exception: type || head?.[1] || 'NovaException', message, functionName, moduleName };
}

/** The properties Nova's ImageMetaPropsPayload would carry for the image: only those it sets. */
function imagePropertiesOf(image: Image | undefined): Record<string, unknown> {
  const arch = image?.properties.hwArchitecture;
  return arch ? { hw_architecture: arch } : {};
}

const selectOwner = prepared((db, p: { instanceId: string }) =>
  db.selectFrom('api_instance_owners').select(['project_id', 'user_id']).where('instance_id', '=', p.instanceId)
);
/** When the instance was launched: its create action's successful end. */
const selectLaunched = prepared((db, p: { instanceId: string }) =>
  db
    .selectFrom('instance_actions')
    .select('finished_at')
    .where('instance_id', '=', p.instanceId)
    .where('action', '=', 'create')
    .where('result', '=', 'Success')
);

async function instanceFacts(
  store: Store,
  db: Db,
  instanceId: string,
  requestId: string | null,
  withFault: { event: string } | null
): Promise<InstanceFacts | undefined> {
  const [row] = (await selectInstanceRow(db, { instanceId })).rows;
  if (row === undefined) return undefined;
  const instance = instanceFromRow(row);
  const [owner] = (await selectOwner(db, { instanceId })).rows;
  const [launched] = (await selectLaunched(db, { instanceId })).rows;
  let fault: FaultFacts | null = null;
  if (withFault) {
    const last = await db
      .selectFrom('instance_faults')
      .select(['message', 'details'])
      .where('instance_id', '=', instanceId)
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    if (last) fault = faultOf(last.message, last.details || null, withFault.event, 'conductor');
  }
  return {
    instance,
    owner: owner ? { projectId: owner.project_id, userId: owner.user_id } : null,
    requestId,
    flavor: {
      name: row.flavor,
      vcpus: row.vcpus,
      memoryMb: row.memory_mb,
      diskGb: row.disk_gb,
      extraSpecs: store.notifications?.flavor?.(row.flavor)?.extraSpecs ?? {},
    },
    fault,
    launchedAt: launched?.finished_at ?? null,
    imageUuid: imageId(row.image),
    imageProperties: imagePropertiesOf(store.notifications?.image?.(row.image)),
  };
}

async function payloadOf(store: Store, db: Db, rule: NotificationRule, facts: InstanceFacts): Promise<VersionedObject> {
  switch (rule.payload) {
    case 'action':
      return instanceActionPayload(facts);
    case 'create':
      return instanceCreatePayload(facts);
    case 'rebuild':
      return instanceRebuildPayload(facts);
    case 'requestSpec':
      return requestSpecPayload(facts, { group: facts.instance.serverGroup });
    case 'snapshot': {
      // The image the snapshot makes: the instance's newest (its record is written before the copy).
      const image = await db
        .selectFrom('images')
        .select('name')
        .where('instance_id', '=', facts.instance.instanceId)
        .orderBy('created_at', 'desc')
        .executeTakeFirst();
      return instanceSnapshotPayload(facts, image ? imageId(image.name) : null);
    }
    case 'resizePrep': {
      const migration = await db
        .selectFrom('migrations')
        .select('new_flavor')
        .where('instance_id', '=', facts.instance.instanceId)
        .orderBy('created_at', 'desc')
        .executeTakeFirst();
      const name = migration?.new_flavor ?? facts.flavor.name;
      const flavor = store.notifications?.flavor?.(name) ?? { ...facts.flavor, name };
      return instanceResizePrepPayload(facts, flavor);
    }
  }
}

async function writeInstanceRules(
  store: Store,
  db: Db,
  rules: readonly NotificationRule[],
  at: {
    instanceId: string;
    requestId: string | null;
    phase: Phase;
    event: string;
    host: string | null;
    timestamp?: string;
  }
): Promise<void> {
  if (rules.length === 0) return;
  const facts = await instanceFacts(
    store,
    db,
    at.instanceId,
    at.requestId,
    at.phase === 'error' ? { event: at.event } : null
  );
  if (facts === undefined) return;
  for (const rule of rules)
    await writeNotification(db, {
      eventType: rule.eventType,
      priority: at.phase === 'error' ? 'ERROR' : 'INFO',
      publisherId: publisher(store, rule.source, at.host ?? facts.instance.host),
      instanceId: at.instanceId,
      payload: await payloadOf(store, db, rule, facts),
      ...(at.timestamp ? { timestamp: at.timestamp } : {}),
    });
}

/** The notifications of an action's start, success or failure (in the caller's transaction). */
export async function notifyActionPhase(
  store: Store,
  db: Db,
  action: { instanceId: string; action: string; requestId: string },
  phase: Phase
): Promise<void> {
  await writeInstanceRules(store, db, actionRules(action.action, phase), {
    instanceId: action.instanceId,
    requestId: action.requestId,
    phase,
    event: action.action,
    host: null,
  });
}

/**
 * The notifications of a step's start, success or failure (in the caller's transaction); a failed
 * compute step also emits compute.exception from its host.
 */
export async function notifyStepPhase(
  store: Store,
  db: Db,
  step: { actionId: string; event: string; host: string | null; details: string | null; timestamp: string },
  phase: Phase
): Promise<void> {
  const stepped = stepRules(step.event, phase);
  const exception = phase === 'error' && isComputeStep(step.event);
  if (stepped.length === 0 && !exception) return;
  const action = await db
    .selectFrom('instance_actions')
    .select(['instance_id', 'request_id', 'action'])
    .where('id', '=', step.actionId)
    .executeTakeFirst();
  if (action === undefined) return;
  const rules = stepped.filter((r) => r.inAction === undefined || r.inAction === action.action);
  await writeInstanceRules(store, db, rules, {
    instanceId: action.instance_id,
    requestId: action.request_id,
    phase,
    event: step.event,
    host: step.host,
    timestamp: step.timestamp,
  });
  if (exception) {
    const host = step.host ?? store.notifications?.host ?? hostname();
    await writeNotification(db, {
      eventType: COMPUTE_EXCEPTION,
      priority: 'ERROR',
      publisherId: `nova-compute:${host}`,
      instanceId: action.instance_id,
      payload: exceptionPayload(faultOf(step.details ?? '', null, step.event, 'nova.compute.manager')),
      timestamp: step.timestamp,
    });
  }
}

/** server_group.create | delete | add_member (in the caller's transaction). */
export async function notifyServerGroup(
  store: Store,
  db: Db,
  eventType: 'server_group.create' | 'server_group.delete' | 'server_group.add_member',
  group: { name: string; policy: string; members: readonly string[] }
): Promise<void> {
  const owner = await db
    .selectFrom('api_server_group_owners')
    .select(['project_id', 'user_id', 'display_name'])
    .where('name', '=', group.name)
    .executeTakeFirst();
  await writeNotification(db, {
    eventType,
    priority: 'INFO',
    publisherId: publisher(store, 'api', null),
    instanceId: null,
    payload: serverGroupPayload({
      ...group,
      name: owner?.display_name ?? group.name,
      uuid: serverGroupId(group.name),
      owner: owner ? { projectId: owner.project_id, userId: owner.user_id } : null,
    }),
  });
}

/** service.update of a compute host's service record as it now is (in the caller's transaction). */
export async function notifyServiceUpdate(db: Db, host: string): Promise<void> {
  const row = await db.selectFrom('resource_providers').selectAll().where('name', '=', host).executeTakeFirst();
  if (row === undefined) return;
  await writeNotification(db, {
    eventType: 'service.update',
    priority: 'INFO',
    // Nova's Service.save publishes as the service itself (NotificationPublisher.from_service_obj).
    publisherId: `nova-compute:${host}`,
    instanceId: null,
    payload: serviceStatusPayload({
      uuid: serviceId(host),
      host,
      disabled: row.disabled !== 0,
      disabledReason: row.disabled_reason,
      forcedDown: row.forced_down !== 0,
      availabilityZone: row.availability_zone,
      lastSeenUp: null,
    }),
  });
}

/** The notification context of a process: its host name, and the flavors of its catalogue. */
export function notificationContext(catalogue: Catalogue): NotificationContext {
  return {
    host: hostname(),
    flavor: (name) => catalogue.flavors.find((f) => f.name === name),
    image: (name) => catalogue.images.find((i) => i.name === name),
  };
}
