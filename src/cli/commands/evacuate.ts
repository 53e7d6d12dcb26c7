/** `evacuate ID|NAME [--host H]`: rebuilds the instance on another host, only while its own host is down. */
import type { Command } from 'commander';

import { workflowIds } from '../../shared/task-queues';
import { requireHost, resolveInstance } from '../context';
import type { Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'evacuate', "rebuild the instance on another host, only while the instance's host is down")
    .option('--host <host>', 'the destination (default: the scheduler picks)')
    .option('--force', "with --host: claim it directly, skipping the scheduler's filters (Nova's force)")
    .option('--image <image>', 'the image (default: the current one)')
    .action((ref: string, o: { host?: string; force?: boolean; image?: string }) =>
      run(async (ctx) => {
        if (o.host) await requireHost(ctx, o.host);
        const { instanceId } = await resolveInstance(ctx, ref);
        const input = {
          instanceId,
          evacuate: true,
          ...(o.image ? { image: o.image } : {}),
          ...(o.host ? { host: o.host } : {}),
          ...(o.force ? { force: true } : {}),
        };
        return startAndFollow(ctx, 'rebuild', workflowIds.evacuate(instanceId, requestId()), input);
      })
    );
}
