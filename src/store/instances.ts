/**
 * Instance records (Nova's cell database): instances, instance actions with one event per step and
 * attempt, faults, migrations and server groups. Written only by conductor activities; every write is
 * idempotent or a compare-and-swap because Temporal delivers activities at least once.
 */
import type { ExpressionBuilder, Selectable, Updateable } from 'kysely';

import { InstanceInvalidState, InstanceNotFound, InvalidRequest, MigrationError } from '../domain/errors';
import type { InstancePatch, InstanceRecord, PowerState, TaskState, VmState } from '../domain/instance';
import type { MigrationRecord, MigrationType } from '../domain/migration';
import type { ServerGroupPolicy } from '../domain/host';
import type { Store } from './db';
import type { Database, InstancesTable, MigrationsTable } from './schema';
import { newId, nowIso } from './util';

/** A new instance record; `taskOwner` defaults to none. */
export type NewInstance = Omit<InstanceRecord, 'createdAt' | 'updatedAt' | 'taskOwner'> & { taskOwner?: string | null };
export type { InstancePatch };

/** Compare-and-swap guard of `update` (Nova's expected_task_state / expected_vm_state). */
export interface InstanceExpectation {
  /** The task state(s) the instance must be in; `null` means "no task". Undefined: not checked. */
  taskState?: TaskState | null | readonly (TaskState | null)[];
  /** The vm state(s) the instance must be in. Undefined: not checked. */
  vmState?: VmState | readonly VmState[];
  /** The operation asking, named in InstanceInvalidState (default 'update'). */
  method?: string;
}

export interface InstanceListFilter {
  host?: string;
  vmState?: VmState | readonly VmState[];
}

export type ActionResult = 'Success' | 'Error';

export interface InstanceActionEvent {
  event: string;
  attempt: number;
  host: string | null;
  startedAt: string;
  finishedAt: string | null;
  result: ActionResult | null;
  details: string | null;
}

export interface InstanceAction {
  actionId: string;
  instanceId: string;
  /** Nova's instance action names: create, rebuild, evacuate, resize, migrate, confirmResize, revertResize, stop, start … */
  action: string;
  requestId: string;
  startedAt: string;
  finishedAt: string | null;
  result: ActionResult | null;
  /** 'Error' once any event of the action failed (Nova's action message). */
  message: string | null;
  /** In start order (then attempt). */
  events: InstanceActionEvent[];
}

/** One step of an action, per attempt. Idempotent on (actionId, event, attempt). */
export interface EventRecord {
  actionId: string;
  event: string;
  attempt: number;
  host: string | null;
  /** null: the step started and has not finished. */
  result: ActionResult | null;
  details?: string | null;
  startedAt: string;
  finishedAt?: string | null;
}

export interface FaultInput {
  code: number;
  message: string;
  details?: string | null;
  host?: string | null;
  /** An idempotency key: recording the same id again is a no-op (activity retries). */
  faultId?: string;
}

export interface InstanceFault {
  faultId: string;
  instanceId: string;
  code: number;
  message: string;
  details: string | null;
  host: string | null;
  createdAt: string;
}

export type { MigrationRecord, MigrationType };

export type NewMigration = Omit<MigrationRecord, 'createdAt' | 'updatedAt'>;
export type MigrationPatch = Partial<
  Pick<MigrationRecord, 'status' | 'sourceHost' | 'destHost' | 'oldFlavor' | 'newFlavor'>
>;

export interface MigrationExpectation {
  /** The status(es) the migration must be in. */
  status?: string | readonly string[];
  /** The operation asking, named in the MigrationError. */
  method?: string;
}

export interface ServerGroup {
  name: string;
  policy: ServerGroupPolicy;
  /** Instance ids of the group's members (not deleted), by creation. */
  members: string[];
  /** Hosts of those members (sorted, no duplicates). */
  hosts: string[];
}

export interface InstanceRepository {
  /** Creates the instance; idempotent on instanceId (an existing record is returned unchanged). */
  create(record: NewInstance): Promise<InstanceRecord>;
  /** InstanceNotFound when absent. */
  get(instanceId: string): Promise<InstanceRecord>;
  find(instanceId: string): Promise<InstanceRecord | undefined>;
  list(filter?: InstanceListFilter): Promise<InstanceRecord[]>;
  /**
   * One conditional UPDATE (Nova's `instance.save(expected_task_state=…)`). When the expectation does
   * not hold: InstanceInvalidState naming the attribute and its current value; InstanceNotFound when absent.
   */
  update(instanceId: string, patch: InstancePatch, expect?: InstanceExpectation): Promise<InstanceRecord>;

  /** Starts (or finds) the action of a request: idempotent on (instanceId, requestId, action). */
  startAction(instanceId: string, action: string, requestId: string): Promise<{ actionId: string }>;
  /** Finishes the action; the first result recorded wins (idempotent). */
  finishAction(actionId: string, result: ActionResult): Promise<void>;
  /** Records a step as started (idempotent; the first start wins). */
  startEvent(actionId: string, event: string, attempt: number, host: string | null): Promise<void>;
  /** Records a step as finished (creating it if never started); the first finish wins. */
  finishEvent(
    actionId: string,
    event: string,
    attempt: number,
    result: ActionResult,
    details?: string | null
  ): Promise<void>;
  /** Upsert of a step: missing fields are filled in, recorded ones are kept. */
  recordEvent(event: EventRecord): Promise<void>;
  /** Actions of the instance with their events, oldest first. */
  listActions(instanceId: string): Promise<InstanceAction[]>;
  recordFault(instanceId: string, fault: FaultInput): Promise<InstanceFault>;
  /** Faults of the instance, oldest first (Nova's API shows the last one). */
  listFaults(instanceId: string): Promise<InstanceFault[]>;

  /** Creates the migration; idempotent on id. */
  createMigration(migration: NewMigration): Promise<MigrationRecord>;
  /** Updates the migration, optionally only from the expected status(es); MigrationError otherwise or when absent. */
  updateMigration(id: string, patch: MigrationPatch, expect?: MigrationExpectation): Promise<MigrationRecord>;
  /** MigrationError when absent. */
  getMigration(id: string): Promise<MigrationRecord>;
  findMigration(id: string): Promise<MigrationRecord | undefined>;
  /** The instance's migrations, oldest first. */
  listMigrations(instanceId: string): Promise<MigrationRecord[]>;

  /** Creates the group if absent; InvalidRequest when it exists with another policy. */
  ensureServerGroup(name: string, policy: ServerGroupPolicy): Promise<ServerGroup>;
  /** The group with its members and their hosts; undefined when absent. */
  getServerGroup(name: string): Promise<ServerGroup | undefined>;
}

function toRecord(row: Selectable<InstancesTable>): InstanceRecord {
  return {
    instanceId: row.instance_id,
    name: row.name,
    vmState: row.vm_state as VmState,
    taskState: row.task_state as TaskState | null,
    taskOwner: row.task_owner,
    powerState: row.power_state as PowerState,
    host: row.host,
    availabilityZone: row.availability_zone,
    flavor: row.flavor,
    image: row.image,
    vcpus: row.vcpus,
    memoryMb: row.memory_mb,
    diskGb: row.disk_gb,
    serverGroup: row.server_group,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The columns a patch sets; keys left undefined are not touched. */
function patchColumns(patch: InstancePatch): Updateable<InstancesTable> {
  const set: Updateable<InstancesTable> = {};
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.vmState !== undefined) set.vm_state = patch.vmState;
  if (patch.taskState !== undefined) set.task_state = patch.taskState;
  if (patch.taskOwner !== undefined) set.task_owner = patch.taskOwner;
  // No task, no owner: clearing the task state releases the operation lock.
  else if (patch.taskState === null) set.task_owner = null;
  if (patch.powerState !== undefined) set.power_state = patch.powerState;
  if (patch.host !== undefined) set.host = patch.host;
  if (patch.availabilityZone !== undefined) set.availability_zone = patch.availabilityZone;
  if (patch.flavor !== undefined) set.flavor = patch.flavor;
  if (patch.image !== undefined) set.image = patch.image;
  if (patch.vcpus !== undefined) set.vcpus = patch.vcpus;
  if (patch.memoryMb !== undefined) set.memory_mb = patch.memoryMb;
  if (patch.diskGb !== undefined) set.disk_gb = patch.diskGb;
  if (patch.serverGroup !== undefined) set.server_group = patch.serverGroup;
  return set;
}

function toMigration(row: Selectable<MigrationsTable>): MigrationRecord {
  return {
    id: row.id,
    instanceId: row.instance_id,
    sourceHost: row.source_host,
    destHost: row.dest_host,
    oldFlavor: row.old_flavor,
    newFlavor: row.new_flavor,
    migrationType: row.migration_type as MigrationType,
    status: row.status,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function asList<T>(value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

/** The WHERE of a task-state expectation: `task_state IN (…)` and/or `task_state IS NULL`. */
function taskStateMatches(eb: ExpressionBuilder<Database, 'instances'>, expected: readonly (TaskState | null)[]) {
  const states = expected.filter((s): s is TaskState => s !== null);
  const alternatives = [];
  if (states.length > 0) alternatives.push(eb('task_state', 'in', states));
  if (expected.includes(null)) alternatives.push(eb('task_state', 'is', null));
  // An empty expectation matches nothing.
  return alternatives.length > 0 ? eb.or(alternatives) : eb.lit(false);
}

export function createInstanceRepository(store: Store): InstanceRepository {
  const db = store.db;

  async function find(instanceId: string): Promise<InstanceRecord | undefined> {
    const row = await db.selectFrom('instances').selectAll().where('instance_id', '=', instanceId).executeTakeFirst();
    return row === undefined ? undefined : toRecord(row);
  }

  async function get(instanceId: string): Promise<InstanceRecord> {
    const record = await find(instanceId);
    if (record === undefined) throw new InstanceNotFound(instanceId);
    return record;
  }

  async function create(record: NewInstance): Promise<InstanceRecord> {
    const now = nowIso();
    await db
      .insertInto('instances')
      .values({
        instance_id: record.instanceId,
        name: record.name,
        vm_state: record.vmState,
        task_state: record.taskState,
        task_owner: record.taskOwner ?? null,
        power_state: record.powerState,
        host: record.host,
        availability_zone: record.availabilityZone,
        flavor: record.flavor,
        image: record.image,
        vcpus: record.vcpus,
        memory_mb: record.memoryMb,
        disk_gb: record.diskGb,
        server_group: record.serverGroup,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('instance_id').doNothing())
      .execute();
    return get(record.instanceId);
  }

  async function list(filter: InstanceListFilter = {}): Promise<InstanceRecord[]> {
    let query = db.selectFrom('instances').selectAll();
    if (filter.host !== undefined) query = query.where('host', '=', filter.host);
    if (filter.vmState !== undefined) query = query.where('vm_state', 'in', asList(filter.vmState));
    const rows = await query.orderBy('created_at').orderBy('instance_id').execute();
    return rows.map(toRecord);
  }

  async function update(
    instanceId: string,
    patch: InstancePatch,
    expect: InstanceExpectation = {}
  ): Promise<InstanceRecord> {
    const method = expect.method ?? 'update';
    const expectedTasks = expect.taskState === undefined ? undefined : asList(expect.taskState);
    const expectedVms = expect.vmState === undefined ? undefined : asList(expect.vmState);
    // Two rounds: a miss whose re-read satisfies the expectation means the state moved away and back
    // between our UPDATE and the re-read; try once more before reporting.
    for (let round = 0; ; round++) {
      let query = db
        .updateTable('instances')
        .set({ ...patchColumns(patch), updated_at: nowIso() })
        .where('instance_id', '=', instanceId);
      if (expectedTasks !== undefined) query = query.where((eb) => taskStateMatches(eb, expectedTasks));
      if (expectedVms !== undefined)
        query = query.where((eb) => (expectedVms.length > 0 ? eb('vm_state', 'in', expectedVms) : eb.lit(false)));
      const row = await query.returningAll().executeTakeFirst();
      if (row !== undefined) return toRecord(row);

      const current = await find(instanceId);
      if (current === undefined) throw new InstanceNotFound(instanceId);
      if (expectedTasks !== undefined && !expectedTasks.includes(current.taskState))
        throw new InstanceInvalidState(instanceId, 'taskState', current.taskState, method);
      if (expectedVms !== undefined && !expectedVms.includes(current.vmState))
        throw new InstanceInvalidState(instanceId, 'vmState', current.vmState, method);
      if (round >= 1) throw new InstanceInvalidState(instanceId, 'taskState', current.taskState, method);
    }
  }

  // --- actions and events ---

  async function startAction(instanceId: string, action: string, requestId: string): Promise<{ actionId: string }> {
    await db
      .insertInto('instance_actions')
      .values({
        id: newId(),
        instance_id: instanceId,
        action,
        request_id: requestId,
        message: null,
        result: null,
        started_at: nowIso(),
        finished_at: null,
      })
      .onConflict((oc) => oc.columns(['instance_id', 'request_id', 'action']).doNothing())
      .execute();
    const row = await db
      .selectFrom('instance_actions')
      .select('id')
      .where('instance_id', '=', instanceId)
      .where('request_id', '=', requestId)
      .where('action', '=', action)
      .executeTakeFirstOrThrow();
    return { actionId: row.id };
  }

  async function finishAction(actionId: string, result: ActionResult): Promise<void> {
    await db
      .updateTable('instance_actions')
      .set((eb) => ({
        result,
        finished_at: nowIso(),
        message: result === 'Error' ? eb.fn.coalesce('message', eb.val('Error')) : eb.ref('message'),
      }))
      .where('id', '=', actionId)
      .where('finished_at', 'is', null)
      .execute();
  }

  async function recordEvent(event: EventRecord): Promise<void> {
    const finishedAt = event.finishedAt ?? (event.result === null ? null : nowIso());
    // Insert, or fill in a step that has not finished yet; a finished step is never rewritten (the
    // first finish wins), so a retried activity cannot flip a recorded result.
    const written = await db
      .insertInto('instance_action_events')
      .values({
        action_id: event.actionId,
        event: event.event,
        attempt: event.attempt,
        host: event.host,
        started_at: event.startedAt,
        finished_at: finishedAt,
        result: event.result,
        details: event.details ?? null,
      })
      .onConflict((oc) =>
        oc
          .columns(['action_id', 'event', 'attempt'])
          .doUpdateSet((eb) => ({
            host: eb.fn.coalesce('instance_action_events.host', 'excluded.host'),
            finished_at: eb.ref('excluded.finished_at'),
            result: eb.ref('excluded.result'),
            details: eb.fn.coalesce('excluded.details', 'instance_action_events.details'),
          }))
          .where('instance_action_events.finished_at', 'is', null)
      )
      .returning('result')
      .executeTakeFirst();
    // NOTE(nova): action_event_finish marks the action's message 'Error' when an event fails.
    if (written?.result === 'Error')
      await db
        .updateTable('instance_actions')
        .set({ message: 'Error' })
        .where('id', '=', event.actionId)
        .where('message', 'is', null)
        .execute();
  }

  async function listActions(instanceId: string): Promise<InstanceAction[]> {
    const actions = await db
      .selectFrom('instance_actions')
      .selectAll()
      .where('instance_id', '=', instanceId)
      .orderBy('started_at')
      .orderBy('id')
      .execute();
    if (actions.length === 0) return [];
    const events = await db
      .selectFrom('instance_action_events as e')
      .innerJoin('instance_actions as a', 'a.id', 'e.action_id')
      .selectAll('e')
      .where('a.instance_id', '=', instanceId)
      .orderBy('e.started_at')
      .orderBy('e.attempt')
      .orderBy('e.event')
      .execute();
    const byAction = new Map<string, InstanceActionEvent[]>();
    for (const e of events) {
      let list = byAction.get(e.action_id);
      if (list === undefined) byAction.set(e.action_id, (list = []));
      list.push({
        event: e.event,
        attempt: e.attempt,
        host: e.host,
        startedAt: e.started_at,
        finishedAt: e.finished_at,
        result: e.result as ActionResult | null,
        details: e.details,
      });
    }
    return actions.map((a) => ({
      actionId: a.id,
      instanceId: a.instance_id,
      action: a.action,
      requestId: a.request_id,
      startedAt: a.started_at,
      finishedAt: a.finished_at,
      result: a.result as ActionResult | null,
      message: a.message,
      events: byAction.get(a.id) ?? [],
    }));
  }

  // --- faults ---

  async function recordFault(instanceId: string, fault: FaultInput): Promise<InstanceFault> {
    const id = fault.faultId ?? newId();
    await db
      .insertInto('instance_faults')
      .values({
        id,
        instance_id: instanceId,
        code: fault.code,
        message: fault.message,
        details: fault.details ?? null,
        host: fault.host ?? null,
        created_at: nowIso(),
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    const row = await db.selectFrom('instance_faults').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    return toFault(row);
  }

  function toFault(row: Selectable<Database['instance_faults']>): InstanceFault {
    return {
      faultId: row.id,
      instanceId: row.instance_id,
      code: row.code,
      message: row.message,
      details: row.details,
      host: row.host,
      createdAt: row.created_at,
    };
  }

  async function listFaults(instanceId: string): Promise<InstanceFault[]> {
    const rows = await db
      .selectFrom('instance_faults')
      .selectAll()
      .where('instance_id', '=', instanceId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toFault);
  }

  // --- migrations ---

  async function findMigration(id: string): Promise<MigrationRecord | undefined> {
    const row = await db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toMigration(row);
  }

  async function getMigration(id: string): Promise<MigrationRecord> {
    const migration = await findMigration(id);
    if (migration === undefined) throw new MigrationError(`migration ${id} not found`, { migrationId: id });
    return migration;
  }

  async function createMigration(m: NewMigration): Promise<MigrationRecord> {
    const now = nowIso();
    await db
      .insertInto('migrations')
      .values({
        id: m.id,
        instance_id: m.instanceId,
        source_host: m.sourceHost,
        dest_host: m.destHost,
        old_flavor: m.oldFlavor,
        new_flavor: m.newFlavor,
        migration_type: m.migrationType,
        status: m.status,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    return getMigration(m.id);
  }

  async function updateMigration(
    id: string,
    patch: MigrationPatch,
    expect: MigrationExpectation = {}
  ): Promise<MigrationRecord> {
    const set: Updateable<MigrationsTable> = { updated_at: nowIso() };
    if (patch.status !== undefined) set.status = patch.status;
    if (patch.sourceHost !== undefined) set.source_host = patch.sourceHost;
    if (patch.destHost !== undefined) set.dest_host = patch.destHost;
    if (patch.oldFlavor !== undefined) set.old_flavor = patch.oldFlavor;
    if (patch.newFlavor !== undefined) set.new_flavor = patch.newFlavor;
    const expected = expect.status === undefined ? undefined : asList(expect.status);
    let query = db.updateTable('migrations').set(set).where('id', '=', id);
    if (expected !== undefined)
      query = query.where((eb) => (expected.length > 0 ? eb('status', 'in', expected) : eb.lit(false)));
    const row = await query.returningAll().executeTakeFirst();
    if (row !== undefined) return toMigration(row);
    const current = await getMigration(id);
    throw new MigrationError(
      `cannot '${expect.method ?? 'update'}' migration ${id} in status ${current.status} (expected ${(expected ?? []).join(' or ')})`,
      { migrationId: id, status: current.status, expected: [...(expected ?? [])] }
    );
  }

  async function listMigrations(instanceId: string): Promise<MigrationRecord[]> {
    const rows = await db
      .selectFrom('migrations')
      .selectAll()
      .where('instance_id', '=', instanceId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toMigration);
  }

  // --- server groups ---

  async function getServerGroup(name: string): Promise<ServerGroup | undefined> {
    const group = await db.selectFrom('server_groups').selectAll().where('name', '=', name).executeTakeFirst();
    if (group === undefined) return undefined;
    const members = await db
      .selectFrom('instances')
      .select(['instance_id', 'host'])
      .where('server_group', '=', name)
      .where('vm_state', '!=', 'deleted')
      .orderBy('created_at')
      .orderBy('instance_id')
      .execute();
    const hosts = [...new Set(members.flatMap((m) => (m.host === null ? [] : [m.host])))].sort();
    return {
      name: group.name,
      policy: group.policy as ServerGroupPolicy,
      members: members.map((m) => m.instance_id),
      hosts,
    };
  }

  async function ensureServerGroup(name: string, policy: ServerGroupPolicy): Promise<ServerGroup> {
    await db
      .insertInto('server_groups')
      .values({ name, policy, created_at: nowIso() })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const group = (await getServerGroup(name))!;
    if (group.policy !== policy)
      throw new InvalidRequest(
        'serverGroup.policy',
        `server group '${name}' exists with policy ${group.policy}, not ${policy}`
      );
    return group;
  }

  return {
    create,
    get,
    find,
    list,
    update,
    startAction,
    finishAction,
    startEvent: (actionId, event, attempt, host) =>
      recordEvent({ actionId, event, attempt, host, result: null, startedAt: nowIso() }),
    finishEvent: (actionId, event, attempt, result, details) => {
      const now = nowIso();
      return recordEvent({ actionId, event, attempt, host: null, result, details, startedAt: now, finishedAt: now });
    },
    recordEvent,
    listActions,
    recordFault,
    listFaults,
    createMigration,
    updateMigration,
    getMigration,
    findMigration,
    listMigrations,
    ensureServerGroup,
    getServerGroup,
  };
}
