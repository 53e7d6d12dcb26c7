/**
 * Row types of the store, as Kysely sees them. One schema for SQLite and PostgreSQL: booleans are
 * integers 0/1 (better-sqlite3 cannot bind booleans), timestamps are ISO-8601 text, JSON is text,
 * ids are text. Column names are snake_case; repositories map rows to the camelCase domain records.
 */
import type { Generated } from 'kysely';

/** One row per compute host (Nova's resource provider plus its compute service record). */
export interface ResourceProvidersTable {
  /** The host name; also the compute task-queue suffix. */
  name: string;
  availability_zone: string;
  architecture: string;
  /** 0 | 1 */
  disabled: number;
  disabled_reason: string | null;
  /** 0 | 1: an operator marked the host down (Nova's `forced_down`). */
  forced_down: number;
  /** Placement generation: bumped on every inventory, trait or allocation change (compare-and-swap). */
  generation: number;
  failed_builds: number;
  /** The `placement_state.version` of the last write that touched this row (incremental cache refresh). */
  changed_version: number;
  updated_at: string;
}

export interface InventoriesTable {
  provider: string;
  resource_class: string;
  total: number;
  reserved: number;
  allocation_ratio: number;
}

export interface TraitsTable {
  provider: string;
  trait: string;
}

export interface AllocationsTable {
  consumer_id: string;
  provider: string;
  resource_class: string;
  used: number;
  created_at: string;
}

/** A single row (id = 1) whose version is bumped by every placement write. */
export interface PlacementStateTable {
  id: number;
  version: number;
}

export interface InstancesTable {
  instance_id: string;
  name: string;
  vm_state: string;
  task_state: string | null;
  task_owner: string | null;
  power_state: string;
  host: string | null;
  availability_zone: string | null;
  flavor: string;
  image: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  server_group: string | null;
  created_at: string;
  updated_at: string;
}

export interface InstanceActionsTable {
  id: string;
  instance_id: string;
  action: string;
  request_id: string;
  /** 'Error' once any of its events failed (Nova's action `message`). */
  message: string | null;
  result: string | null;
  started_at: string;
  finished_at: string | null;
}

export interface InstanceActionEventsTable {
  action_id: string;
  event: string;
  attempt: number;
  host: string | null;
  started_at: string;
  finished_at: string | null;
  result: string | null;
  details: string | null;
}

export interface InstanceFaultsTable {
  id: string;
  instance_id: string;
  code: number;
  message: string;
  details: string | null;
  host: string | null;
  created_at: string;
}

export interface MigrationsTable {
  id: string;
  instance_id: string;
  source_host: string;
  dest_host: string | null;
  old_flavor: string;
  new_flavor: string;
  migration_type: string;
  status: string;
  /** A live migration's switch-over pause, ms (migration 0005); null for other moves. */
  downtime_ms: number | null;
  created_at: string;
  updated_at: string;
}

/**
 * Conductor writes that were applied, by the identity of the call that made them (workflow run and
 * activity id: the same on every retry), with the answer they gave: a retry after a lost answer gets
 * the same answer instead of running the write again.
 */
export interface AppliedWritesTable {
  write_key: string;
  /** The write's answer as JSON. */
  result: string;
  applied_at: string;
}

export interface ServerGroupsTable {
  name: string;
  policy: string;
  created_at: string;
}

/** The project and user an instance was created for (the API's tenancy; migration 0006). */
export interface ApiInstanceOwnersTable {
  instance_id: string;
  project_id: string;
  user_id: string;
  created_at: string;
}

/** The project and user a server group was created for (the API's tenancy). */
export interface ApiServerGroupOwnersTable {
  /** The conductor's key of the group (server_groups.name). */
  name: string;
  project_id: string;
  user_id: string;
  created_at: string;
  /** The name the API's client gave the group (migration 0009); null: shown by its key. */
  display_name: string | null;
}

/** One metadata item of an instance (migration 0009; Nova's instance_metadata). */
export interface ApiInstanceMetadataTable {
  instance_id: string;
  key: string;
  value: string;
}

/** What a client set on an instance and Nova echoes (migration 0009); null: not set. */
export interface ApiInstanceAttributesTable {
  instance_id: string;
  access_ipv4: string | null;
  access_ipv6: string | null;
  /** 'AUTO' | 'MANUAL' */
  disk_config: string | null;
}

/** A flavor made through the API (migration 0009; Nova's flavor-manage): see src/store/instances/flavors.ts. */
export interface FlavorsTable {
  flavor_id: string;
  name: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  ephemeral_gb: number;
  swap_mb: number;
  /** 0 | 1 */
  is_public: number;
  description: string | null;
  /** JSON object of strings. */
  extra_specs: string;
  /** 0 | 1: deleted flavors stay for the servers made with them. */
  deleted: number;
  created_at: string;
}

/** Stable integer ids the API shows where a microversion wants one: per kind (service, migration …) and key. */
export interface ApiIntegerIdsTable {
  kind: string;
  key: string;
  id: number;
}

/** The stack the store belongs to (one row, singleton = 1): see src/store/stack.ts. */
export interface StackIdentityTable {
  singleton: number;
  stack_id: string;
  temporal_address: string;
  temporal_namespace: string;
  recorded_at: string;
}

/** The notification outbox (src/store/notifications.ts), in commit order. */
export interface NotificationsTable {
  seq: Generated<number>;
  message_id: string;
  event_type: string;
  priority: string;
  publisher_id: string;
  instance_id: string | null;
  created_at: string;
  /** The versioned payload, JSON. */
  payload: string;
  delivered_at: string | null;
}

/** Stored images: snapshots of instances' disks (migration 0010). */
export interface ImagesTable {
  image_id: string;
  name: string;
  /** queued | saving | active | deleted */
  status: string;
  size_gb: number;
  min_disk: number;
  min_ram: number;
  /** The catalogue image's properties, JSON. */
  properties: string;
  instance_id: string | null;
  created_at: string;
  updated_at: string;
}

export interface Database {
  resource_providers: ResourceProvidersTable;
  inventories: InventoriesTable;
  traits: TraitsTable;
  allocations: AllocationsTable;
  placement_state: PlacementStateTable;
  instances: InstancesTable;
  instance_actions: InstanceActionsTable;
  instance_action_events: InstanceActionEventsTable;
  instance_faults: InstanceFaultsTable;
  migrations: MigrationsTable;
  server_groups: ServerGroupsTable;
  applied_writes: AppliedWritesTable;
  api_instance_owners: ApiInstanceOwnersTable;
  api_server_group_owners: ApiServerGroupOwnersTable;
  api_integer_ids: ApiIntegerIdsTable;
  api_instance_metadata: ApiInstanceMetadataTable;
  api_instance_attributes: ApiInstanceAttributesTable;
  flavors: FlavorsTable;
  images: ImagesTable;
  stack_identity: StackIdentityTable;
  notifications: NotificationsTable;
}

/** Every table, children before parents (the order to empty them in). */
export const TABLES: readonly (keyof Database)[] = [
  'allocations',
  'inventories',
  'traits',
  'resource_providers',
  'placement_state',
  'instance_action_events',
  'instance_actions',
  'instance_faults',
  'migrations',
  'instances',
  'server_groups',
  'applied_writes',
  'api_instance_owners',
  'api_server_group_owners',
  'api_integer_ids',
  'api_instance_metadata',
  'api_instance_attributes',
  'flavors',
  'stack_identity',
  'notifications',
];
