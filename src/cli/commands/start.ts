/** `start ID|NAME`: powers a stopped instance on (the start workflow). */
import type { Command } from 'commander';

import { workflowIds } from '../../shared/task-queues';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'start', 'power a stopped instance on').action((ref: string) =>
    run(async (ctx) => {
      const { instanceId } = await resolveInstance(ctx, ref);
      return startAndFollow(ctx, 'start', workflowIds.start(instanceId, requestId()), { instanceId });
    })
  );
}
