/**
 * `resize ID|NAME --flavor F [--host H]`: resizes the instance (resizeMigrate) and returns once it waits
 * for a decision (VERIFY_RESIZE); `confirm` or `revert` settles it.
 */
import type { Command } from 'commander';

import { resolveFlavor } from '../../domain/catalogue';
import type { ResizeMigrateInput } from '../../domain/schemas';
import { workflowIds } from '../../shared/task-queues';
import { refuseInvalid, requireHost, resolveInstance } from '../context';
import type { Context, Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';
import { catalogueOf } from './catalogue';

/** Shared with `migrate`, a resize to the same flavor. */
export async function resizeOrMigrate(
  ctx: Context,
  ref: string,
  request: Omit<ResizeMigrateInput, 'instanceId'>
): Promise<number> {
  // An unknown flavor could only fail: refused before anything starts, listing the valid ones.
  const flavor = request.flavor;
  if (flavor) refuseInvalid(() => resolveFlavor(catalogueOf(ctx), flavor));
  if (request.host) await requireHost(ctx, request.host);
  const { instanceId } = await resolveInstance(ctx, ref);
  const workflowId = workflowIds.resizeMigrate(instanceId, requestId());
  const resized = (p: { vmState: string }) => p.vmState === 'resized';
  const code = await startAndFollow(ctx, 'resizeMigrate', workflowId, { instanceId, ...request }, resized);
  if (!ctx.json)
    console.error(
      `confirm: npm run conductor -- confirm ${instanceId}   revert: npm run conductor -- revert ${instanceId}`
    );
  return code;
}

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'resize', 'resize the instance; returns once it waits for confirm or revert')
    .requiredOption('--flavor <flavor>', 'the new flavor')
    .option('--host <host>', 'the destination (default: the scheduler picks)')
    .action((ref: string, o: { flavor: string; host?: string }) =>
      run((ctx) => resizeOrMigrate(ctx, ref, { flavor: o.flavor, ...(o.host ? { host: o.host } : {}) }))
    );
}
