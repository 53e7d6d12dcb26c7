/** `boot NAME --flavor F --image I`: builds an instance (buildInstance) and follows it until it is active or in error. */
import { randomUUID } from 'node:crypto';

import type { Command } from 'commander';

import type { BuildInstanceInput } from '../../domain/schemas';
import { BuildInstanceInputSchema, MAX_ATTEMPTS_LIMIT } from '../../domain/schemas';
import { workflowIds } from '../../shared/task-queues';
import { checkInput, EXIT_OK, requireHost } from '../context';
import type { Context, Run } from '../context';
import { startAndFollow, startWorkflow } from '../operation';
import { wholeNumber } from '../options';

interface BootOptions {
  flavor: string;
  image: string;
  az?: string;
  host?: string;
  forceHost?: string;
  group?: string;
  maxAttempts?: number;
  wait: boolean;
}

async function boot(ctx: Context, name: string, o: BootOptions): Promise<number> {
  const instanceId = randomUUID();
  const workflowId = workflowIds.buildInstance(instanceId);
  const input: BuildInstanceInput & { instanceId: string } = {
    name,
    flavor: o.flavor,
    image: o.image,
    instanceId,
    ...(o.az ? { availabilityZone: o.az } : {}),
    ...(o.host ? { host: o.host } : {}),
    ...(o.forceHost ? { forceHost: o.forceHost } : {}),
    ...(o.group ? { schedulerHints: { group: o.group } } : {}),
    ...(o.maxAttempts !== undefined ? { maxAttempts: o.maxAttempts } : {}),
  };
  // A request that can only fail is refused here: no workflow started, no instance created.
  checkInput(BuildInstanceInputSchema, input);
  if (o.host) await requireHost(ctx, o.host);
  if (o.forceHost) await requireHost(ctx, o.forceHost, 'forceHost');
  if (o.wait) return startAndFollow(ctx, 'buildInstance', workflowId, input);
  await startWorkflow(ctx, 'buildInstance', workflowId, [input]);
  console.log(ctx.json ? JSON.stringify({ instanceId, workflowId }) : instanceId);
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  program
    .command('boot')
    .description('build an instance and follow it until it is active (or in error)')
    .argument('<name>', 'the instance name')
    .requiredOption('--flavor <flavor>', 'the flavor')
    .requiredOption('--image <image>', 'the image')
    .option('--az <zone>', 'the availability zone')
    .option('--host <host>', 'build on this host, still checking the filters')
    .option('--force-host <host>', 'this host, skipping the filters')
    .option('--group <group>', 'a server group (its affinity policy applies)')
    .option(
      '--max-attempts <n>',
      `placement attempts, 1 to ${MAX_ATTEMPTS_LIMIT} (default 3)`,
      wholeNumber(1, MAX_ATTEMPTS_LIMIT)
    )
    .option('--no-wait', 'print the instance id and return once the build has started')
    .action((name: string, o: BootOptions) => run((ctx) => boot(ctx, name, o)));
}
