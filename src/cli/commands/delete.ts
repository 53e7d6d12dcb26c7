/** `delete ID|NAME`: terminates the instance from any state (the deleteInstance workflow). */
import type { Command } from 'commander';

import { workflowIds } from '../../shared/task-queues';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(
    program,
    'delete',
    'delete the instance from any state: an operation holding it is cancelled and rolled back first; with its host down, a local delete'
  ).action((ref: string) =>
    run(async (ctx) => {
      const { instanceId } = await resolveInstance(ctx, ref);
      return startAndFollow(ctx, 'deleteInstance', workflowIds.deleteInstance(instanceId, requestId()), {
        instanceId,
      });
    })
  );
}
