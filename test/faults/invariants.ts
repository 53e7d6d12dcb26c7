/**
 * The fault suite's own consistency checker, written apart from src/domain/audit.ts so that the two can
 * be compared: it reads the store (SQLite, read-only use through the project's repositories), the
 * compute hosts' guest files and the set of running workflows, and reports problems with the
 * audit's kind names where the two mean the same thing.
 */
import path from 'node:path';

import { readHostGuestsSync } from '../../src/compute/fake/guest-files';
import type { HostSpec } from '../../src/domain/fleet';
import { HostSpecSchema } from '../../src/domain/fleet';
import { openStore } from '../../src/store/db';
import { createInstanceRepository, type MigrationRecord } from '../../src/store/instances';
import { createPlacementRepository } from '../../src/store/placement';

export interface Problem {
  kind:
    | 'orphaned-allocation'
    | 'over-capacity'
    | 'task-state-without-workflow'
    | 'migration-allocation-without-workflow'
    | 'missing-allocation'
    | 'missing-guest'
    | 'stray-guest';
  subject: string;
  host: string | null;
  detail: string;
}

/** Migration statuses after which a migration holds nothing (Nova's end states). */
const MIGRATION_DONE = new Set(['confirmed', 'reverted', 'error', 'failed', 'completed', 'done', 'cancelled']);
/** States whose instance has exactly one guest, on its host, and an allocation there. */
const SETTLED_WITH_GUEST = new Set(['active', 'stopped']);

function readGuests(dataDir: string, host: string): string[] {
  return Object.keys(readHostGuestsSync(path.join(dataDir, 'compute', host)));
}

/**
 * Every problem in one cloud: `running` is the set of workflow ids that still run (from visibility).
 * Call it once every workflow is terminal; a problem it reports is then not a transient state.
 */
export async function checkInvariants(options: {
  dataDir: string;
  hosts: readonly HostSpec[];
  running: ReadonlySet<string>;
  /** The store (default: the SQLite file in `dataDir`; a cluster's is PostgreSQL). */
  store?: { sqlitePath?: string; databaseUrl?: string };
}): Promise<Problem[]> {
  const { dataDir, running } = options;
  const hosts = options.hosts.map((h) => HostSpecSchema.parse(h));
  const store = await openStore(options.store ?? { sqlitePath: path.join(dataDir, 'conductor.sqlite') });
  const problems: Problem[] = [];
  try {
    const repo = createInstanceRepository(store);
    const placement = createPlacementRepository(store, { cacheHostStates: false });
    const instances = new Map((await repo.list()).map((i) => [i.instanceId, i]));
    const migrations = new Map<string, MigrationRecord>();
    for (const id of instances.keys()) for (const m of await repo.listMigrations(id)) migrations.set(m.id, m);
    const openMoves = [...migrations.values()].filter((m) => !MIGRATION_DONE.has(m.status));
    const movingOn = (instanceId: string, host: string) =>
      openMoves.some((m) => m.instanceId === instanceId && (m.sourceHost === host || m.destHost === host));

    const held = new Map<string, string[]>(); // consumer -> hosts
    for (const spec of hosts) {
      const allocations = await placement.allocationsByHost(spec.name);
      const used = { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 };
      for (const a of allocations) {
        held.set(a.consumerId, [...(held.get(a.consumerId) ?? []), spec.name]);
        used.VCPU += a.resources.VCPU;
        used.MEMORY_MB += a.resources.MEMORY_MB;
        used.DISK_GB += a.resources.DISK_GB;
        const instance = instances.get(a.consumerId);
        const migration = migrations.get(a.consumerId);
        if (migration && !MIGRATION_DONE.has(migration.status) && migration.sourceHost === spec.name) {
          const workflowRuns = [...running].some((id) => id.includes(migration.instanceId));
          if (!workflowRuns)
            problems.push({
              kind: 'migration-allocation-without-workflow',
              subject: migration.id,
              host: spec.name,
              detail: `migration ${migration.status} holds the source allocation and no workflow of ${migration.instanceId} runs`,
            });
          continue;
        }
        const live =
          instance !== undefined &&
          instance.vmState !== 'deleted' &&
          !(instance.vmState === 'error' && instance.host === null) &&
          (instance.host === spec.name || movingOn(instance.instanceId, spec.name));
        if (!live)
          problems.push({
            kind: 'orphaned-allocation',
            subject: a.consumerId,
            host: spec.name,
            detail: instance ? `instance ${instance.vmState} on ${instance.host ?? 'no host'}` : 'no such consumer',
          });
      }
      const capacity = {
        VCPU: Math.floor((spec.vcpus - spec.reserved.vcpus) * spec.allocationRatio.vcpus),
        MEMORY_MB: Math.floor((spec.memoryMb - spec.reserved.memoryMb) * spec.allocationRatio.memoryMb),
        DISK_GB: Math.floor((spec.diskGb - spec.reserved.diskGb) * spec.allocationRatio.diskGb),
      };
      for (const rc of ['VCPU', 'MEMORY_MB', 'DISK_GB'] as const)
        if (used[rc] > capacity[rc])
          problems.push({
            kind: 'over-capacity',
            subject: spec.name,
            host: spec.name,
            detail: `${rc} ${used[rc]} > ${capacity[rc]}`,
          });
    }

    const guestsOn = new Map(hosts.map((h) => [h.name, readGuests(dataDir, h.name)]));
    for (const [host, ids] of guestsOn)
      for (const key of ids) {
        // The source guest of a resize or cold migration is kept as `<instance>_resize` until confirmed.
        const id = key.endsWith('_resize') ? key.slice(0, -'_resize'.length) : key;
        const instance = instances.get(id);
        if (key !== id) {
          if (!instance || !movingOn(id, host))
            problems.push({
              kind: 'stray-guest',
              subject: key,
              host,
              detail: 'a resize source guest with no move under way',
            });
          continue;
        }
        if (instance && instance.taskState !== null && instance.host === host) continue; // reported below
        if (instance && movingOn(id, host)) continue;
        const fine =
          instance !== undefined &&
          instance.host === host &&
          (SETTLED_WITH_GUEST.has(instance.vmState) || instance.vmState === 'resized' || instance.vmState === 'error');
        if (!fine)
          problems.push({
            kind: 'stray-guest',
            subject: id,
            host,
            detail: instance ? `instance ${instance.vmState} on ${instance.host ?? 'no host'}` : 'no such instance',
          });
      }

    for (const instance of instances.values()) {
      const { instanceId, host } = instance;
      if (instance.taskState !== null) {
        if (instance.taskOwner === null || !running.has(instance.taskOwner))
          problems.push({
            kind: 'task-state-without-workflow',
            subject: instanceId,
            host,
            detail: `task state ${instance.taskState} held by ${instance.taskOwner ?? 'nobody'}, not running`,
          });
        continue;
      }
      if (!SETTLED_WITH_GUEST.has(instance.vmState) || host === null) continue;
      if (!(held.get(instanceId) ?? []).includes(host))
        problems.push({
          kind: 'missing-allocation',
          subject: instanceId,
          host,
          detail: `${instance.vmState}, nothing held`,
        });
      if (!(guestsOn.get(host) ?? []).includes(instanceId))
        problems.push({ kind: 'missing-guest', subject: instanceId, host, detail: `${instance.vmState}, no guest` });
    }
  } finally {
    await store.close();
  }
  return problems.sort((a, b) => a.kind.localeCompare(b.kind) || a.subject.localeCompare(b.subject));
}
