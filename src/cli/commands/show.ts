/** `show ID|NAME`: an instance with its actions and their events, its faults and its migrations. */
import type { Command } from 'commander';

import type { InstanceRecord } from '../../domain/instance';
import type { MigrationRecord } from '../../domain/migration';
import { MIGRATION_FINISHED_STATUSES } from '../../domain/migration';
import { client, EXIT_OK, instances, printInstance, printJson, resolveInstance } from '../context';
import type { Context, Run } from '../context';
import { copyProgress } from '../operation';
import { instanceCommand } from '../options';
import { table } from '../table';

async function show(ctx: Context, ref: string): Promise<number> {
  const record = await resolveInstance(ctx, ref);
  const repo = await instances(ctx);
  const [actions, faults, migrations] = await Promise.all([
    repo.listActions(record.instanceId),
    repo.listFaults(record.instanceId),
    repo.listMigrations(record.instanceId),
  ]);
  const withProgress = await Promise.all(
    migrations.map(async (m) => ({ ...m, progress: await migrationProgress(ctx, record, m) }))
  );
  if (ctx.json) {
    printJson({ ...record, actions, faults, migrations: withProgress });
    return EXIT_OK;
  }
  printInstance(ctx, record);
  console.log('\nactions');
  console.log(
    table(
      ['ACTION', 'RESULT', 'EVENT', 'ATTEMPT', 'HOST', 'EVENT RESULT', 'STARTED', 'FINISHED', 'DETAILS'],
      actions.flatMap((a) =>
        a.events.length
          ? a.events.map((e) => [
              a.action,
              a.result,
              e.event,
              e.attempt,
              e.host,
              e.result,
              e.startedAt,
              e.finishedAt,
              e.details,
            ])
          : [[a.action, a.result, null, null, null, null, a.startedAt, a.finishedAt]]
      )
    )
  );
  if (faults.length)
    console.log(
      `\nfaults\n${table(
        ['CODE', 'MESSAGE', 'AT'],
        faults.map((f) => [f.code, f.message, f.createdAt])
      )}`
    );
  if (migrations.length)
    console.log(
      `\nmigrations\n${table(
        ['ID', 'TYPE', 'STATUS', 'SOURCE', 'DEST', 'OLD FLAVOR', 'NEW FLAVOR', 'CREATED', 'UPDATED', 'PROGRESS'],
        withProgress.map((m) => [
          m.id,
          m.migrationType,
          m.status,
          m.sourceHost,
          m.destHost,
          m.oldFlavor,
          m.newFlavor,
          m.createdAt,
          m.updatedAt,
          m.progress,
        ])
      )}`
    );
  return EXIT_OK;
}

/**
 * A migration under way, as it goes: a live migration's copy (round, share copied) from its workflow, or
 * the status of any other; null for a finished one.
 */
export async function migrationProgress(
  ctx: Context,
  instance: InstanceRecord,
  m: MigrationRecord
): Promise<string | null> {
  if (MIGRATION_FINISHED_STATUSES.includes(m.status)) return null;
  if (m.migrationType === 'live-migration' && instance.taskState === 'migrating' && instance.taskOwner !== null) {
    const handle = (await client(ctx)).workflow.getHandle(instance.taskOwner);
    const copy = await copyProgress(handle).catch(() => undefined);
    if (copy) return copy;
  }
  return `in progress (${m.status})`;
}

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'show', 'an instance with its actions, events, faults and migrations').action(
    (ref: string) => run((ctx) => show(ctx, ref))
  );
}
