/** `show ID|NAME`: an instance with its actions and their events, its faults and its migrations. */
import type { Command } from 'commander';

import { EXIT_OK, instances, printInstance, printJson, resolveInstance } from '../context';
import type { Context, Run } from '../context';
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
  if (ctx.json) {
    printJson({ ...record, actions, faults, migrations });
    return EXIT_OK;
  }
  printInstance(ctx, record);
  console.log('\nactions');
  console.log(
    table(
      ['ACTION', 'RESULT', 'EVENT', 'ATTEMPT', 'HOST', 'EVENT RESULT', 'DETAILS'],
      actions.flatMap((a) =>
        a.events.length
          ? a.events.map((e) => [a.action, a.result, e.event, e.attempt, e.host, e.result, e.details])
          : [[a.action, a.result]]
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
        ['ID', 'TYPE', 'STATUS', 'SOURCE', 'DEST', 'OLD FLAVOR', 'NEW FLAVOR'],
        migrations.map((m) => [m.id, m.migrationType, m.status, m.sourceHost, m.destHost, m.oldFlavor, m.newFlavor])
      )}`
    );
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'show', 'an instance with its actions, events, faults and migrations').action(
    (ref: string) => run((ctx) => show(ctx, ref))
  );
}
