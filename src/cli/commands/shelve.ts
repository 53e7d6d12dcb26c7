/**
 * `snapshot ID|NAME IMAGE`, `shelve ID|NAME`, `shelve-offload ID|NAME`, `unshelve ID|NAME [--zone Z]
 * [--host H]`: Nova's createImage, shelve, shelveOffload and unshelve (the workflows of
 * src/workflows/snapshot.ts, shelve.ts and unshelve.ts), followed to their end.
 */
import type { Command } from 'commander';

import { workflowIds } from '../../shared/task-queues';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'snapshot', "save an instance's disk as a new image (createImage)")
    .argument('<image>', 'the new image name')
    .action((ref: string, name: string) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        return startAndFollow(ctx, 'snapshot', workflowIds.snapshot(instanceId, requestId()), { instanceId, name });
      })
    );
  instanceCommand(program, 'shelve', 'power an instance off and save its disk as an image (shelved, then offloaded)')
    .option('--offload-after <seconds>', 'offload after this many seconds (0 at once, the default; -1 never)')
    .action((ref: string, opts: { offloadAfter?: string }) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        return startAndFollow(ctx, 'shelve', workflowIds.shelve(instanceId, requestId()), {
          instanceId,
          ...(opts.offloadAfter !== undefined ? { shelvedOffloadTimeSeconds: Number(opts.offloadAfter) } : {}),
        });
      })
    );
  instanceCommand(program, 'shelve-offload', "destroy a shelved instance's guest and release its host").action(
    (ref: string) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        return startAndFollow(ctx, 'shelveOffload', workflowIds.shelveOffload(instanceId, requestId()), { instanceId });
      })
  );
  instanceCommand(program, 'unshelve', 'bring a shelved instance back: powered on, or placed on a host again')
    .option('--zone <zone>', 'the availability zone to place it in (an offloaded instance only)')
    .option('--host <host>', 'the host to place it on, still through the filters (an offloaded instance only)')
    .action((ref: string, opts: { zone?: string; host?: string }) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        return startAndFollow(ctx, 'unshelve', workflowIds.unshelve(instanceId, requestId()), {
          instanceId,
          ...(opts.zone !== undefined ? { availabilityZone: opts.zone } : {}),
          ...(opts.host !== undefined ? { host: opts.host } : {}),
        });
      })
    );
}
