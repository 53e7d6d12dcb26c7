/**
 * `server-group create NAME --policy P | list | show NAME | delete NAME`: the server groups' API, through
 * the `serverGroup` workflow (the conductor is the store's one writer), as `temporal workflow execute
 * --type serverGroup` runs it.
 */
import { Option } from 'commander';
import type { Command } from 'commander';

import type { ServerGroupInput } from '../../domain/schemas';
import { workflowIds } from '../../shared/task-queues';
import type { ServerGroup } from '../../workflows/server-group';
import { EXIT_OK } from '../context';
import type { Context, Run } from '../context';
import { follow, requestId, startWorkflow } from '../operation';
import { fields, table } from '../table';

async function call(ctx: Context, input: ServerGroupInput): Promise<ServerGroup[]> {
  const handle = await startWorkflow(ctx, 'serverGroup', workflowIds.serverGroup(input.action, requestId()), [input]);
  await follow(handle);
  return (await handle.result()).groups;
}

function print(ctx: Context, groups: ServerGroup[], one: boolean): number {
  if (ctx.json) console.log(JSON.stringify(one ? groups[0] : groups, null, 2));
  else if (one && groups[0])
    console.log(
      fields([
        ['name', groups[0].name],
        ['policy', groups[0].policy],
        ['members', groups[0].members.join(', ') || null],
        ['hosts', groups[0].hosts.join(', ') || null],
      ])
    );
  else
    console.log(
      table(
        ['NAME', 'POLICY', 'MEMBERS', 'HOSTS'],
        groups.map((g) => [g.name, g.policy, g.members.length, g.hosts.join(', ') || null])
      )
    );
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  const group = program
    .command('server-group')
    .description('server groups: create, list, show, delete (a group with members is not deleted)');
  group
    .command('create')
    .description('create a server group (again with the same policy: returns it)')
    .argument('<name>', 'the group name')
    .addOption(
      new Option('--policy <policy>', 'its policy').choices(['affinity', 'anti-affinity']).makeOptionMandatory()
    )
    .action((name: string, o: { policy: 'affinity' | 'anti-affinity' }) =>
      run(async (ctx) => print(ctx, await call(ctx, { action: 'create', name, policy: o.policy }), true))
    );
  group
    .command('list')
    .description('every server group, with its members and their hosts')
    .action(() => run(async (ctx) => print(ctx, await call(ctx, { action: 'list' }), false)));
  group
    .command('show')
    .description('one server group: its policy, members and their hosts')
    .argument('<name>', 'the group name')
    .action((name: string) => run(async (ctx) => print(ctx, await call(ctx, { action: 'show', name }), true)));
  group
    .command('delete')
    .description('delete a server group that has no member left')
    .argument('<name>', 'the group name')
    .action((name: string) => run(async (ctx) => print(ctx, await call(ctx, { action: 'delete', name }), true)));
}
