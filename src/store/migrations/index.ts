/**
 * The in-code migration list (no file-system scanning, so it works from a bundle and under tsx).
 * Names sort in the order they run; never rename or edit one that has shipped, add a new one.
 */
import type { Migration, MigrationProvider } from 'kysely';

import * as m0001 from './0001_initial';
import * as m0002 from './0002_task_owner';
import * as m0003 from './0003_applied_writes';
import * as m0004 from './0004_action_request_index';
import * as m0005 from './0005_migration_downtime';
import * as m0006 from './0006_api_tenancy';
import * as m0007 from './0007_stack_identity';
import * as m0008 from './0008_notifications';
import * as m0009 from './0009_api_records';
import * as m0010 from './0010_images';
import * as m0011 from './0011_allocation_usage_index';

export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_initial': m0001,
  '0002_task_owner': m0002,
  '0003_applied_writes': m0003,
  '0004_action_request_index': m0004,
  '0005_migration_downtime': m0005,
  '0006_api_tenancy': m0006,
  '0007_stack_identity': m0007,
  '0008_notifications': m0008,
  '0009_api_records': m0009,
  '0010_images': m0010,
  '0011_allocation_usage_index': m0011,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve({ ...MIGRATIONS }),
};
