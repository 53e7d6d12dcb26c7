/** `stop ID|NAME`: graceful shutdown, forced after the timeout (the stop workflow). */
import type { Command } from 'commander';

import { workflowIds } from '../../shared/task-queues';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'stop', 'graceful shutdown, forced after the timeout').action((ref: string) =>
    run(async (ctx) => {
      const { instanceId } = await resolveInstance(ctx, ref);
      return startAndFollow(ctx, 'stop', workflowIds.stop(instanceId, requestId()), { instanceId });
    })
  );
}
