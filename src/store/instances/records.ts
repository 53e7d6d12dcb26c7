/** Instance records: create, read, list and the compare-and-swap update (Nova's `instance.save`). */
import type { InstancePatch } from '../../domain/instance';
import type { ExpressionBuilder, Updateable } from 'kysely';

import { InstanceInvalidState, InstanceNotFound } from '../../domain/errors';
import type { InstanceRecord, TaskState, VmState } from '../../domain/instance';
import type { Store } from '../db';
import { atomically } from '../notifications';
import type { Database, InstancesTable } from '../schema';
import { asList, nowIso } from '../util';
import { instanceFromRow, selectInstanceRow } from './rows';
import { notifyMemberAdded } from './server-groups';
import type { InstanceRepository } from './index';

/** A new instance record; `taskOwner` defaults to none. */
export type NewInstance = Omit<InstanceRecord, 'createdAt' | 'updatedAt' | 'taskOwner'> & { taskOwner?: string | null };
export type { InstancePatch };

/** Compare-and-swap guard of `update` (Nova's expected_task_state / expected_vm_state). */
export interface InstanceExpectation {
  /** The task state(s) the instance must be in; `null` means "no task". Undefined: not checked. */
  taskState?: TaskState | null | readonly (TaskState | null)[];
  /** The vm state(s) the instance must be in. Undefined: not checked. */
  vmState?: VmState | readonly VmState[];
  /** The request that must hold the task state (null: none). Undefined: not checked. */
  owner?: string | null;
  /** The operation asking, named in InstanceInvalidState (default 'update'). */
  method?: string;
}

export interface InstanceListFilter {
  host?: string;
  vmState?: VmState | readonly VmState[];
}

export type InstanceRecords = Pick<InstanceRepository, 'create' | 'get' | 'find' | 'list' | 'listPage' | 'update'>;

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

/** The WHERE of a task-state expectation: `task_state IN (…)` and/or `task_state IS NULL`. */
function taskStateMatches(eb: ExpressionBuilder<Database, 'instances'>, expected: readonly (TaskState | null)[]) {
  const states = expected.filter((s): s is TaskState => s !== null);
  const alternatives = [];
  if (states.length > 0) alternatives.push(eb('task_state', 'in', states));
  if (expected.includes(null)) alternatives.push(eb('task_state', 'is', null));
  // An empty expectation matches nothing.
  return alternatives.length > 0 ? eb.or(alternatives) : eb.lit(false);
}

export function createInstanceRecords(store: Store): InstanceRecords {
  const db = store.db;

  async function find(instanceId: string): Promise<InstanceRecord | undefined> {
    const [row] = (await selectInstanceRow(db, { instanceId })).rows;
    return row === undefined ? undefined : instanceFromRow(row);
  }

  async function get(instanceId: string): Promise<InstanceRecord> {
    const record = await find(instanceId);
    if (record === undefined) throw new InstanceNotFound(instanceId);
    return record;
  }

  async function create(record: NewInstance): Promise<InstanceRecord> {
    const now = nowIso();
    await atomically(store, async (db) => {
      const inserted = await db
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
        .returning('instance_id')
        .executeTakeFirst();
      if (inserted && record.serverGroup !== null)
        await notifyMemberAdded(store, db, record.serverGroup, record.instanceId);
    });
    return get(record.instanceId);
  }

  async function list(filter: InstanceListFilter = {}): Promise<InstanceRecord[]> {
    let query = db.selectFrom('instances').selectAll();
    if (filter.host !== undefined) query = query.where('host', '=', filter.host);
    if (filter.vmState !== undefined) query = query.where('vm_state', 'in', asList(filter.vmState));
    const rows = await query.orderBy('created_at').orderBy('instance_id').execute();
    return rows.map(instanceFromRow);
  }

  async function listPage({ after, limit }: { after: string | null; limit: number }): Promise<InstanceRecord[]> {
    let query = db.selectFrom('instances').selectAll();
    if (after !== null) query = query.where('instance_id', '>', after);
    const rows = await query.orderBy('instance_id').limit(limit).execute();
    return rows.map(instanceFromRow);
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
      const owner = expect.owner;
      if (owner !== undefined)
        query = query.where((eb) => (owner === null ? eb('task_owner', 'is', null) : eb('task_owner', '=', owner)));
      const row = await query.returningAll().executeTakeFirst();
      if (row !== undefined) return instanceFromRow(row);

      const current = await find(instanceId);
      if (current === undefined) throw new InstanceNotFound(instanceId);
      if (expectedTasks !== undefined && !expectedTasks.includes(current.taskState))
        throw new InstanceInvalidState(instanceId, 'taskState', current.taskState, method);
      if (expectedVms !== undefined && !expectedVms.includes(current.vmState))
        throw new InstanceInvalidState(instanceId, 'vmState', current.vmState, method);
      // Another request took the instance over since the caller looked (the same task state, a new owner).
      if (owner !== undefined && current.taskOwner !== owner)
        throw new InstanceInvalidState(instanceId, 'taskState', current.taskState, method);
      if (round >= 1) throw new InstanceInvalidState(instanceId, 'taskState', current.taskState, method);
    }
  }

  return { create, get, find, list, listPage, update };
}
