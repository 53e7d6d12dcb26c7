/** `list [--host H] [--state S]`: the instances in the store, as a table or JSON. */
import type { Command } from 'commander';

import type { VmState } from '../../domain/instance';
import { EXIT_OK, instances, printJson } from '../context';
import type { Context, Run } from '../context';
import { stateOption } from '../options';
import { table } from '../table';

interface ListOptions {
  host?: string;
  state?: VmState;
}

async function list(ctx: Context, o: ListOptions): Promise<number> {
  const rows = await (
    await instances(ctx)
  ).list({
    ...(o.host ? { host: o.host } : {}),
    ...(o.state ? { vmState: o.state } : {}),
  });
  if (ctx.json) printJson(rows);
  else
    console.log(
      table(
        ['ID', 'NAME', 'STATUS', 'TASK', 'POWER', 'HOST', 'FLAVOR', 'IMAGE'],
        rows.map((r) => [r.instanceId, r.name, r.vmState, r.taskState, r.powerState, r.host, r.flavor, r.image])
      )
    );
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  program
    .command('list')
    .description('instances')
    .option('--host <host>', 'only instances on this host')
    .addOption(stateOption())
    .action((o: ListOptions) => run((ctx) => list(ctx, o)));
}
