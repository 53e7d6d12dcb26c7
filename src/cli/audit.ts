/**
 * `npm run audit [-- --json] [--live]`: the placement audit (Nova's `nova-manage placement audit`) and
 * the consistency checks of src/domain/audit.ts. From the store: allocations whose consumer is neither a
 * live instance nor an in-progress migration, hosts whose allocations exceed their capacity, active,
 * stopped or resized instances holding nothing on their host (or holding on another host with no move
 * under way). With `--live` it also asks Temporal (TEMPORAL_ADDRESS) which operation workflows still run
 * (task states and migration allocations whose workflow is closed) and each live compute host which
 * guests it runs (missing and stray guests). Read-only: it never creates or migrates the store (the
 * workers own the schema) and fails, exit 1, on a store that is missing or not migrated.
 *
 * Store: DATABASE_URL (PostgreSQL), else $DATA_DIR/conductor.sqlite, read through loadEnv().
 * Exit status: 0 nothing found, 3 findings (as nova-manage), 2 bad usage or configuration, 1 the audit
 * could not run (one line on stderr, never a stack trace).
 */
import { Client, Connection } from '@temporalio/client';
import { Command, CommanderError } from 'commander';

import { TaskQueuePollerLiveness } from '../activities/scheduler/liveness';
import type { Finding } from '../domain/audit';
import { audit } from '../domain/audit';
import type { InstanceRecord } from '../domain/instance';
import type { Resources } from '../domain/resources';
import { openMigratedStore, type Store } from '../store/db';
import { createInstanceRepository, type MigrationRecord } from '../store/instances';
import { createPlacementRepository, type PlacementAudit } from '../store/placement';
import type { Env } from '../workers/config';
import { dataConverterFor } from '../workers/codec';
import { loadEnv, sqlitePath, temporalConnectionOptions } from '../workers/config';
import type { AuditSources } from './audit-snapshot';
import { gatherSnapshot } from './audit-snapshot';
import { exitQuietlyOnClosedPipe } from './context';
import { table } from './table';

export const EXIT_CLEAN = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_FINDINGS = 3;

const USAGE =
  'usage: npm run audit [-- --json] [--live]   (store: DATABASE_URL, else $DATA_DIR/conductor.sqlite; --live: also Temporal at TEMPORAL_ADDRESS and the compute hosts)';

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
  /** Every finding, by kind (orphans and over-capacity hosts included). */
  findings: Finding[];
  /** What was looked at: workflows (with --live), and the hosts that reported or did not report their guests. */
  checked: { workflows: boolean; hostsReporting: string[]; hostsNotAnswering: string[] };
}

interface Options {
  json: boolean;
  live: boolean;
  help: boolean;
}

/** The options, or the usage error as one line (commander's words, without its "error: " prefix). */
function parseArgs(argv: readonly string[]): Options | string {
  const program = new Command('audit')
    .option('--json', 'one JSON document')
    .option('--live', 'also Temporal and the compute hosts')
    .helpOption(false)
    .option('-h, --help', 'this usage')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.message.replace(/^error: /, '');
    throw err;
  }
  const opts = program.opts<{ json?: boolean; live?: boolean; help?: boolean }>();
  return { json: opts.json === true, live: opts.live === true, help: opts.help === true };
}

function orphanReason(instance: InstanceRecord | undefined, migration: MigrationRecord | undefined): string {
  if (migration !== undefined) return `migration ${migration.status}`;
  if (instance !== undefined) return `instance ${instance.vmState}${instance.host === null ? ', no host' : ''}`;
  return 'no such instance or migration';
}

/**
 * Runs the audit on an open, migrated store (and, given `sources.client`, on Temporal and the compute
 * hosts), with what a person needs to act on each finding.
 */
export async function auditStore(store: Store, sources: AuditSources = {}): Promise<AuditReport> {
  const placement = createPlacementRepository(store, { cacheHostStates: false });
  const instances = createInstanceRepository(store);
  const gathered = await gatherSnapshot(store, sources);
  const findings = audit(gathered.snapshot);
  const found = gathered.placementAudit;
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
    clean: orphans.length === 0 && found.overCapacity.length === 0 && findings.length === 0,
    orphans,
    overCapacity: found.overCapacity,
    findings,
    checked: {
      workflows: gathered.workflowsChecked,
      hostsReporting: gathered.hostsAsked,
      hostsNotAnswering: gathered.hostsUnanswered,
    },
  };
}

/** The findings the placement tables above do not show. */
function otherFindings(report: AuditReport): Finding[] {
  return report.findings.filter((f) => f.kind !== 'orphaned-allocation' && f.kind !== 'over-capacity');
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
  const others = otherFindings(report);
  if (others.length > 0) {
    const rows = others.map((f) => [f.kind, f.subject, f.host ?? '-', f.detail]);
    out.push(`Other findings (${others.length}):`, indent(table(['KIND', 'SUBJECT', 'HOST', 'DETAIL'], rows)), '');
  }
  const hosts = new Set(report.overCapacity.map((o) => o.host)).size;
  out.push(
    `placement audit: ${plural(report.orphans.length, 'orphaned allocation', 'orphaned allocations')}, ` +
      `${plural(hosts, 'host', 'hosts')} over capacity` +
      (others.length > 0 ? `, ${plural(others.length, 'other finding', 'other findings')}` : '')
  );
  return out.join('\n');
}

/** One line, whatever the error looks like. */
function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message || err.name : String(err);
  return message.replace(/\s+/g, ' ').trim();
}

/**
 * The audit of the store the environment names (and with `live`, of Temporal and the compute hosts):
 * opens what it needs, runs, closes. Throws when the store or Temporal cannot be reached.
 */
export async function runAudit(env: Env, live: boolean): Promise<AuditReport> {
  let store: Store | undefined;
  let connection: Connection | undefined;
  try {
    store = await openMigratedStore({ databaseUrl: env.DATABASE_URL, sqlitePath: sqlitePath(env), poolSize: 2 });
    let sources: AuditSources = {};
    if (live) {
      connection = await Connection.connect({ ...temporalConnectionOptions(env), connectTimeout: 5_000 });
      const hosts = (await createPlacementRepository(store).listHostStates(() => true)).map((h) => h.host);
      const liveness = new TaskQueuePollerLiveness(
        connection,
        env.TEMPORAL_NAMESPACE,
        () => Promise.resolve(hosts),
        env.HOST_DOWN_AFTER_SECONDS * 1000
      );
      await liveness.refresh();
      sources = {
        client: new Client({ connection, namespace: env.TEMPORAL_NAMESPACE, dataConverter: dataConverterFor(env) }),
        isUp: (host) => liveness.isUp(host),
      };
    }
    return await auditStore(store, sources);
  } finally {
    await store?.close().catch(() => undefined);
    await connection?.close().catch(() => undefined);
  }
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
  try {
    const report = await runAudit(env, options.live);
    console.log(options.json ? JSON.stringify(report) : formatReport(report));
    return report.clean ? EXIT_CLEAN : EXIT_FINDINGS;
  } catch (err) {
    console.error(`placement audit failed: ${oneLine(err)}`);
    return EXIT_FAILED;
  }
}

if (require.main === module) {
  exitQuietlyOnClosedPipe();
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
