/**
 * The consistency audit over one snapshot of the cloud: the instance records, placement's allocations,
 * the migrations, which operation workflows are still running, and the guests each reachable compute
 * host reports. Pure: the caller gathers the snapshot (store, Temporal, compute hosts) and acts on the
 * findings. Each finding names its kind, so a person or a script knows what to do about it:
 *
 * - `orphaned-allocation`: an allocation whose consumer is neither a live instance nor an unfinished
 *   migration (Nova's `nova-manage placement audit`).
 * - `over-capacity`: a host whose allocations exceed what it has.
 * - `task-state-without-workflow`: an instance holding a task state whose operation workflow is closed
 *   (terminated, timed out, failed without cleanup): it refuses every operation until healed.
 * - `migration-allocation-without-workflow`: a migration holds the source allocation of a move whose
 *   workflow is closed (e.g. a resize terminated in VERIFY_RESIZE).
 * - `missing-allocation` / `allocation-on-wrong-host`: an active, stopped, paused, suspended or resized
 *   instance that holds nothing on its host, or holds something on another host with no move under way.
 * - `missing-guest`: such an instance whose host reports no guest for it (a suspended guest is reported:
 *   its memory saved on its host, no process).
 * - `stray-guest`: a guest a host reports for an instance that is deleted, failed, unknown, or lives
 *   elsewhere (evacuated, moved) with no move under way on that host.
 */
import type { InstanceRecord } from './instance';
import type { MigrationRecord } from './migration';
import { MIGRATION_FINISHED_STATUSES } from './migration';
import type { Resources } from './resources';

export const FINDING_KINDS = [
  'orphaned-allocation',
  'over-capacity',
  'task-state-without-workflow',
  'migration-allocation-without-workflow',
  'missing-allocation',
  'allocation-on-wrong-host',
  'missing-guest',
  'stray-guest',
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export interface Finding {
  kind: FindingKind;
  /** The instance, migration or allocation consumer the finding is about (the host for over-capacity). */
  subject: string;
  host: string | null;
  /** For a person to read: what is wrong, and what the audit saw. */
  detail: string;
}

export interface AuditSnapshot {
  /** Every instance record, deleted ones included. */
  instances: readonly InstanceRecord[];
  allocations: ReadonlyArray<{ consumerId: string; host: string; resources: Resources }>;
  migrations: readonly MigrationRecord[];
  /** The workflow that runs each migration (the request that started its action), where known. */
  migrationWorkflows: ReadonlyMap<string, string>;
  /**
   * Whether a workflow is still running: true, false (closed or never started), undefined (unknown: no
   * Temporal connection). Only asked about task owners and migration workflows.
   */
  workflowOpen: (workflowId: string) => boolean | undefined;
  /** The instance ids of the guests each reachable host reports; hosts absent were not asked. */
  guests: ReadonlyMap<string, readonly string[]>;
  /** Hosts over capacity, from placement. */
  overCapacity: ReadonlyArray<{ host: string; resourceClass: string; used: number; capacity: number }>;
}

/**
 * A paused, suspended or shelved instance keeps its claim (Nova's too: its guest stays on its host); a
 * shelved-offloaded one holds nothing (no allocation, no guest: only its image).
 */
const HOLDS_RESOURCES = new Set(['active', 'stopped', 'paused', 'suspended', 'shelved', 'resized']);

/** Whether an instance may hold allocations at all (placement's own rule: a failed build holds nothing). */
function mayHold(instance: InstanceRecord): boolean {
  return (
    instance.vmState !== 'deleted' &&
    // An unshelve under way claims its new host while the instance is still shelved_offloaded.
    (instance.vmState !== 'shelved_offloaded' || instance.taskState !== null) &&
    !(instance.vmState === 'error' && instance.host === null)
  );
}

export function audit(snapshot: AuditSnapshot): Finding[] {
  const findings: Finding[] = [];
  const instances = new Map(snapshot.instances.map((i) => [i.instanceId, i]));
  const migrations = new Map(snapshot.migrations.map((m) => [m.id, m]));
  const unfinished = snapshot.migrations.filter((m) => !MIGRATION_FINISHED_STATUSES.includes(m.status));
  /** A move of this instance is under way that involves this host (source or destination). */
  const moving = (instanceId: string, host: string) =>
    unfinished.some((m) => m.instanceId === instanceId && (m.sourceHost === host || m.destHost === host));
  /** The instance was evacuated away from this host, whose clean-up is still to come. */
  const evacuatedFrom = (instanceId: string, host: string) =>
    snapshot.migrations.some(
      (m) =>
        m.instanceId === instanceId && m.migrationType === 'evacuation' && m.sourceHost === host && m.status === 'done'
    );
  /** Whether the operation holding the instance still runs (a task state with no owner has none). */
  const operationOpen = (i: InstanceRecord) => (i.taskOwner === null ? false : snapshot.workflowOpen(i.taskOwner));
  const migrationOpen = (m: MigrationRecord) => {
    const workflowId = snapshot.migrationWorkflows.get(m.id);
    return workflowId === undefined ? undefined : snapshot.workflowOpen(workflowId);
  };

  for (const { consumerId, host, resources } of snapshot.allocations) {
    const instance = instances.get(consumerId);
    const migration = migrations.get(consumerId);
    if (migration !== undefined && !MIGRATION_FINISHED_STATUSES.includes(migration.status)) {
      if (migrationOpen(migration) === false)
        findings.push({
          kind: 'migration-allocation-without-workflow',
          subject: consumerId,
          host,
          detail: `migration ${migration.status} of instance ${migration.instanceId} holds ${describe(resources)} on ${host}, but its workflow ${snapshot.migrationWorkflows.get(consumerId) ?? '?'} is closed`,
        });
      continue;
    }
    if (instance !== undefined && mayHold(instance)) {
      const settled = instance.taskState === null && HOLDS_RESOURCES.has(instance.vmState);
      if (settled && instance.host !== host && !moving(consumerId, host) && !evacuatedFrom(consumerId, host))
        findings.push({
          kind: 'allocation-on-wrong-host',
          subject: consumerId,
          host,
          detail: `instance ${instance.vmState} on ${instance.host ?? 'no host'} holds ${describe(resources)} on ${host} with no move under way`,
        });
      continue;
    }
    findings.push({
      kind: 'orphaned-allocation',
      subject: consumerId,
      host,
      detail:
        migration !== undefined
          ? `migration ${migration.status} still holds ${describe(resources)}`
          : instance !== undefined
            ? `instance ${instance.vmState}${instance.host === null ? ' with no host' : ''} holds ${describe(resources)}`
            : `no instance or migration ${consumerId} holds ${describe(resources)}`,
    });
  }

  for (const o of snapshot.overCapacity)
    findings.push({
      kind: 'over-capacity',
      subject: o.host,
      host: o.host,
      detail: `${o.resourceClass} used ${o.used} of ${o.capacity}`,
    });

  for (const instance of snapshot.instances) {
    const { instanceId, host } = instance;
    if (instance.taskState !== null) {
      const owner = instance.taskOwner;
      if (operationOpen(instance) === false)
        findings.push({
          kind: 'task-state-without-workflow',
          subject: instanceId,
          host,
          detail: `instance ${instance.vmState} holds task state ${instance.taskState} for ${owner ?? 'no request'}, whose workflow is closed`,
        });
      continue;
    }
    if (!HOLDS_RESOURCES.has(instance.vmState) || host === null) continue;
    const held = snapshot.allocations.filter((a) => a.consumerId === instanceId);
    if (!held.some((a) => a.host === host))
      findings.push({
        kind: 'missing-allocation',
        subject: instanceId,
        host,
        detail: `instance ${instance.vmState} on ${host} holds no allocation there${held.length > 0 ? ` (it holds some on ${held.map((a) => a.host).join(', ')})` : ''}`,
      });
    const guests = snapshot.guests.get(host);
    if (guests !== undefined && !guests.includes(instanceId))
      findings.push({
        kind: 'missing-guest',
        subject: instanceId,
        host,
        detail: `instance ${instance.vmState} on ${host}, but ${host} reports no guest for it`,
      });
  }

  for (const [host, guestIds] of snapshot.guests) {
    for (const instanceId of guestIds) {
      const instance = instances.get(instanceId);
      if (instance !== undefined && instance.taskState !== null && operationOpen(instance) !== false) continue; // an operation under way on it
      if (instance !== undefined && mayHold(instance) && (instance.host === host || moving(instanceId, host))) continue;
      const why =
        instance === undefined
          ? 'no such instance'
          : instance.vmState === 'deleted' || instance.vmState === 'error'
            ? `instance ${instance.vmState}${instance.host === null ? ' with no host' : ''}`
            : evacuatedFrom(instanceId, host)
              ? `instance evacuated to ${instance.host ?? 'no host'}`
              : `instance lives on ${instance.host ?? 'no host'}`;
      findings.push({ kind: 'stray-guest', subject: instanceId, host, detail: `${host} runs a guest: ${why}` });
    }
  }
  return findings.sort(
    (a, b) =>
      FINDING_KINDS.indexOf(a.kind) - FINDING_KINDS.indexOf(b.kind) ||
      (a.host ?? '').localeCompare(b.host ?? '') ||
      a.subject.localeCompare(b.subject)
  );
}

function describe(r: Resources): string {
  return `VCPU ${r.VCPU}, MEMORY_MB ${r.MEMORY_MB}, DISK_GB ${r.DISK_GB}`;
}
