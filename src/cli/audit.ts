/**
 * `npm run audit [-- --json]`: the placement audit (Nova's `nova-manage placement audit`). Lists
 * allocations whose consumer is neither a live instance nor an in-progress migration, and hosts whose
 * allocations exceed their capacity. Read-only: it never creates or migrates the store (the workers own
 * the schema) and fails, exit 1, on a store that is missing or not migrated.
 *
 * Store: DATABASE_URL (PostgreSQL), else $DATA_DIR/conductor.sqlite, read through loadEnv().
 * Exit status: 0 nothing found, 3 findings (as nova-manage), 2 bad usage or configuration, 1 the audit
 * could not run (one line on stderr, never a stack trace).
 */
import type { InstanceRecord } from '../domain/instance';
import type { Resources } from '../domain/resources';
import { openMigratedStore, type Store } from '../store/db';
import { createInstanceRepository, type MigrationRecord } from '../store/instances';
import { createPlacementRepository, type PlacementAudit } from '../store/placement';
import { loadEnv, sqlitePath } from '../workers/config';
import { table } from './table';

export const EXIT_CLEAN = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_FINDINGS = 3;

const USAGE = 'usage: npm run audit [-- --json]   (store: DATABASE_URL, else $DATA_DIR/conductor.sqlite)';

export interface OrphanReport {
  consumerId: string;
  host: string;
  /** What the consumer holds on that host. */
  resources: Resources;
  /** Why the allocation is an orphan, for a person to read. */
  reason: string;
}

export interface AuditReport {
  clean: boolean;
  orphans: OrphanReport[];
  overCapacity: PlacementAudit['overCapacity'];
}

interface Options {
  json: boolean;
  help: boolean;
}

function parseArgs(argv: readonly string[]): Options | string {
  const options: Options = { json: false, help: false };
  for (const arg of argv) {
    if (arg === '--json') options.json = true;
    else if (arg === '-h' || arg === '--help') options.help = true;
    else return `unknown argument '${arg}'`;
  }
  return options;
}

function orphanReason(instance: InstanceRecord | undefined, migration: MigrationRecord | undefined): string {
  if (migration !== undefined) return `migration ${migration.status}`;
  if (instance !== undefined) return `instance ${instance.vmState}${instance.host === null ? ', no host' : ''}`;
  return 'no such instance or migration';
}

/** Runs the audit on an open, migrated store, with what a person needs to act on each finding. */
export async function auditStore(store: Store): Promise<AuditReport> {
  const placement = createPlacementRepository(store, { cacheHostStates: false });
  const instances = createInstanceRepository(store);
  const found = await placement.audit();
  const orphans: OrphanReport[] = [];
  for (const { consumerId, host } of found.orphans) {
    const [held, instance, migration] = await Promise.all([
      placement.getAllocations(consumerId),
      instances.find(consumerId),
      instances.findMigration(consumerId),
    ]);
    orphans.push({
      consumerId,
      host,
      resources: held.find((a) => a.host === host)?.resources ?? { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 },
      reason: orphanReason(instance, migration),
    });
  }
  return {
    clean: orphans.length === 0 && found.overCapacity.length === 0,
    orphans,
    overCapacity: found.overCapacity,
  };
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

/** The human-readable report. */
export function formatReport(report: AuditReport): string {
  if (report.clean) return 'placement audit: no orphaned allocations, no host over capacity';
  const out: string[] = [];
  if (report.orphans.length > 0) {
    const rows = report.orphans.map((o) => [
      o.consumerId,
      o.host,
      o.resources.VCPU,
      o.resources.MEMORY_MB,
      o.resources.DISK_GB,
      o.reason,
    ]);
    out.push(
      `Orphaned allocations (${report.orphans.length}):`,
      indent(table(['CONSUMER', 'HOST', 'VCPU', 'MEMORY_MB', 'DISK_GB', 'REASON'], rows)),
      ''
    );
  }
  if (report.overCapacity.length > 0) {
    const rows = report.overCapacity.map((o) => [o.host, o.resourceClass, o.used, o.capacity]);
    out.push(
      `Hosts over capacity (${report.overCapacity.length}):`,
      indent(table(['HOST', 'RESOURCE', 'USED', 'CAPACITY'], rows)),
      ''
    );
  }
  const hosts = new Set(report.overCapacity.map((o) => o.host)).size;
  out.push(
    `placement audit: ${plural(report.orphans.length, 'orphaned allocation', 'orphaned allocations')}, ` +
      `${plural(hosts, 'host', 'hosts')} over capacity`
  );
  return out.join('\n');
}

/** One line, whatever the error looks like. */
function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message || err.name : String(err);
  return message.replace(/\s+/g, ' ').trim();
}

export async function main(argv: readonly string[]): Promise<number> {
  const options = parseArgs(argv);
  if (typeof options === 'string') {
    console.error(`audit: ${options}; ${USAGE}`);
    return EXIT_USAGE;
  }
  if (options.help) {
    console.log(USAGE);
    return EXIT_CLEAN;
  }
  const env = loadEnv(); // exits 2 on a bad variable, naming it
  let store: Store | undefined;
  try {
    store = await openMigratedStore({ databaseUrl: env.DATABASE_URL, sqlitePath: sqlitePath(env), poolSize: 2 });
    const report = await auditStore(store);
    console.log(options.json ? JSON.stringify(report) : formatReport(report));
    return report.clean ? EXIT_CLEAN : EXIT_FINDINGS;
  } catch (err) {
    console.error(`placement audit failed: ${oneLine(err)}`);
    return EXIT_FAILED;
  } finally {
    await store?.close().catch(() => undefined);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`placement audit failed: ${oneLine(err)}`);
      process.exitCode = EXIT_FAILED;
    }
  );
}
