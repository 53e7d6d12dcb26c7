/**
 * Gathers what the audit reads: the store (instances, allocations, migrations, actions), Temporal (which
 * operation workflows still run) and the compute hosts (which guests they run, asked through the
 * read-only `hostGuests` workflow on each host's own queue). Without a Temporal client only the store
 * is read, and the findings that need workflows or guests are not looked for.
 */
import type { Client } from '@temporalio/client';

import { describeWorkflowStatus } from '../activities/conductor/workflow-status';
import type { AuditSnapshot } from '../domain/audit';
import type { MigrationRecord } from '../domain/migration';
import { CONDUCTOR_TASK_QUEUE } from '../shared/task-queues';
import type { Store } from '../store/db';
import { createInstanceRepository } from '../store/instances';
import type { PlacementAudit } from '../store/placement';
import { createPlacementRepository } from '../store/placement';
import type { hostGuests } from '../workflows/host-guests';

/** The actions that start each kind of migration. */
const MIGRATION_ACTIONS: Record<MigrationRecord['migrationType'], readonly string[]> = {
  resize: ['resize'],
  migration: ['migrate'],
  evacuation: ['evacuate'],
};

export interface AuditSources {
  /** Temporal: task owners and migration workflows are looked up, and live hosts asked for their guests. */
  client?: Client;
  /** Which hosts to ask for their guests (a host that is down cannot answer). Default: every host. */
  isUp?: (host: string) => boolean;
  /** Seconds a host has to pick up the guest listing before it counts as not answering. */
  hostAnswerSeconds?: number;
}

export interface GatheredSnapshot {
  snapshot: AuditSnapshot;
  /** Placement's own audit (orphans and hosts over capacity), read with the snapshot. */
  placementAudit: PlacementAudit;
  /** Whether workflows were looked up. */
  workflowsChecked: boolean;
  /** Hosts that reported their guests, and those that were asked and did not answer. */
  hostsAsked: string[];
  hostsUnanswered: string[];
}

export async function gatherSnapshot(store: Store, sources: AuditSources = {}): Promise<GatheredSnapshot> {
  const placement = createPlacementRepository(store, { cacheHostStates: false });
  const instances = createInstanceRepository(store);
  const [found, hostStates, records] = await Promise.all([
    placement.audit(),
    placement.listHostStates(() => true),
    instances.list(),
  ]);
  const allocations = (
    await Promise.all(
      hostStates.map(async ({ host }) =>
        (await placement.allocationsByHost(host)).map((a) => ({
          consumerId: a.consumerId,
          host,
          resources: a.resources,
        }))
      )
    )
  ).flat();

  const migrations: MigrationRecord[] = [];
  const migrationWorkflows = new Map<string, string>();
  for (const instance of records) {
    const own = await instances.listMigrations(instance.instanceId);
    if (own.length === 0) continue;
    migrations.push(...own);
    const actions = await instances.listActions(instance.instanceId);
    for (const m of own) {
      const starter = actions
        .filter((a) => MIGRATION_ACTIONS[m.migrationType].includes(a.action) && a.startedAt <= m.createdAt)
        .at(-1);
      if (starter) migrationWorkflows.set(m.id, starter.requestId);
    }
  }

  const { client } = sources;
  const open = new Map<string, boolean>();
  if (client) {
    const ids = new Set<string>([...migrationWorkflows.values()]);
    for (const i of records) if (i.taskState !== null && i.taskOwner !== null) ids.add(i.taskOwner);
    for (const id of ids) open.set(id, await isRunning(client, id));
  }

  const guests = new Map<string, string[]>();
  const asked = client ? hostStates.map((h) => h.host).filter((h) => sources.isUp?.(h) ?? true) : [];
  const unanswered: string[] = [];
  if (client && asked.length > 0) {
    const seconds = sources.hostAnswerSeconds ?? 10;
    const reported = await client.workflow.execute<typeof hostGuests>('hostGuests', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: `audit-host-guests-${Date.now()}`,
      args: [
        {
          hosts: asked,
          timeouts: { scheduleToStartSeconds: seconds, heartbeatSeconds: 30, longStepSeconds: 60 },
        },
      ],
      workflowExecutionTimeout: `${seconds * 3 + 30} seconds`,
    });
    for (const [host, ids] of Object.entries(reported)) {
      if (ids === null) unanswered.push(host);
      else guests.set(host, ids);
    }
  }

  return {
    placementAudit: found,
    snapshot: {
      instances: records,
      allocations,
      migrations,
      migrationWorkflows,
      workflowOpen: (id) => (client ? (open.get(id) ?? false) : undefined),
      guests,
      overCapacity: found.overCapacity,
    },
    workflowsChecked: client !== undefined,
    hostsAsked: [...guests.keys()].sort(),
    hostsUnanswered: unanswered.sort(),
  };
}

/** Whether the workflow with this id is running (its latest run); false when closed or unknown to Temporal. */
async function isRunning(client: Client, workflowId: string): Promise<boolean> {
  return (await describeWorkflowStatus(client, workflowId)) === 'RUNNING';
}
