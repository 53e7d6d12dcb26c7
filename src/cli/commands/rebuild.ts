/** `rebuild ID|NAME [--image I]`: re-images the instance on its host (the rebuild workflow). */
import type { Command } from 'commander';

import { workflowIds } from '../../shared/task-queues';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'rebuild', 're-image the instance on its host')
    .option('--image <image>', 'the new image (default: the current one)')
    .action((ref: string, o: { image?: string }) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        const input = { instanceId, ...(o.image ? { image: o.image } : {}) };
        return startAndFollow(ctx, 'rebuild', workflowIds.rebuild(instanceId, requestId()), input);
      })
    );
}
