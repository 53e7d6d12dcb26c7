/**
 * Instance records (Nova's cell database): instances, instance actions with one event per step and
 * attempt, faults, migrations and server groups. Written only by conductor activities; every write is
 * idempotent or a compare-and-swap because Temporal delivers activities at least once.
 *
 * The modules: ./records (instances), ./actions (actions and their events), ./faults, ./migrations
 * (migration records), ./server-groups.
 */
import type { InstanceRecord } from '../../domain/instance';
import type { ServerGroupPolicy } from '../../domain/host';
import type { Store } from '../db';
import { type ActionResult, createInstanceActions, type EventRecord, type InstanceAction } from './actions';
import { createInstanceFaults, type FaultInput, type InstanceFault } from './faults';
import {
  createMigrationRecords,
  type MigrationExpectation,
  type MigrationPatch,
  type MigrationRecord,
  type NewMigration,
} from './migrations';
import {
  createInstanceRecords,
  type InstanceExpectation,
  type InstanceListFilter,
  type InstancePatch,
  type NewInstance,
} from './records';
import { createFlavors, type FlavorRepository } from './flavors';
import { createServerGroups, type ServerGroup } from './server-groups';
import { createStoredImages, type ImagePatch, type NewImage } from './images';
import type { StoredImage } from '../../domain/images';

export type { ActionResult, EventRecord, InstanceAction, InstanceActionEvent } from './actions';
export type { FaultInput, InstanceFault } from './faults';
export type { MigrationExpectation, MigrationPatch, MigrationRecord, MigrationType, NewMigration } from './migrations';
export type { InstanceExpectation, InstanceListFilter, InstancePatch, NewInstance } from './records';
export type { ServerGroup } from './server-groups';
export type { FlavorRepository, NewFlavor, StoredFlavor } from './flavors';
export { asFlavor, resolveAnyFlavor } from './flavors';
export type { ImagePatch, NewImage } from './images';

export interface InstanceRepository extends FlavorRepository {
  /** Creates the instance; idempotent on instanceId (an existing record is returned unchanged). */
  create(record: NewInstance): Promise<InstanceRecord>;
  /** InstanceNotFound when absent. */
  get(instanceId: string): Promise<InstanceRecord>;
  find(instanceId: string): Promise<InstanceRecord | undefined>;
  list(filter?: InstanceListFilter): Promise<InstanceRecord[]>;
  /** At most `limit` instances (deleted ones included) whose id sorts after `after`, ids ascending. */
  listPage(page: { after: string | null; limit: number }): Promise<InstanceRecord[]>;
  /**
   * One conditional UPDATE (Nova's `instance.save(expected_task_state=…)`). When the expectation does
   * not hold: InstanceInvalidState naming the attribute and its current value; InstanceNotFound when absent.
   */
  update(instanceId: string, patch: InstancePatch, expect?: InstanceExpectation): Promise<InstanceRecord>;

  /** Starts (or finds) the action of a request: idempotent on (instanceId, requestId, action). */
  startAction(instanceId: string, action: string, requestId: string): Promise<{ actionId: string }>;
  /** The first action `action` of a request (workflow id), on whichever instance; undefined if none. */
  findActionByRequest(action: string, requestId: string): Promise<{ actionId: string; instanceId: string } | undefined>;
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
  /** Every migration not in a finished status (Nova's in-progress migrations), oldest first. */
  listMigrationsInProgress(): Promise<MigrationRecord[]>;

  /** Creates the group if absent; InvalidRequest when it exists with another policy. */
  ensureServerGroup(name: string, policy: ServerGroupPolicy): Promise<ServerGroup>;
  /** The group with its members and their hosts; undefined when absent. */
  getServerGroup(name: string): Promise<ServerGroup | undefined>;
  /** Every group with its members and their hosts, by name. */
  listServerGroups(): Promise<ServerGroup[]>;
  /** Removes the group (members are the caller's concern); false when there was none. */
  deleteServerGroup(name: string): Promise<boolean>;

  /** Creates a stored image (`queued`); idempotent on imageId (an existing one is returned unchanged). */
  createImage(image: NewImage): Promise<StoredImage>;
  findImage(imageId: string): Promise<StoredImage | undefined>;
  /** Every stored image (deleted ones included), oldest first. */
  listImages(filter?: { name?: string }): Promise<StoredImage[]>;
  /** Sets its status or size; undefined when there is no such image. */
  updateImage(imageId: string, patch: ImagePatch): Promise<StoredImage | undefined>;
}

export function createInstanceRepository(store: Store): InstanceRepository {
  return {
    ...createInstanceRecords(store),
    ...createInstanceActions(store),
    ...createInstanceFaults(store),
    ...createMigrationRecords(store),
    ...createServerGroups(store),
    ...createFlavors(store),
    ...createStoredImages(store),
  };
}
