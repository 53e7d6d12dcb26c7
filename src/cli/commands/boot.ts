/**
 * `boot NAME --flavor F --image I`: builds an instance (buildInstance) and follows it until it is active or
 * in error. `--count N` (or `--min-count`/`--max-count`) builds several, named NAME-1, NAME-2 …
 */
import { randomUUID } from 'node:crypto';

import { Option } from 'commander';
import type { Command } from 'commander';

import type { BuildInstanceInput } from '../../domain/schemas';
import { batchSize, BuildInstanceInputSchema, MAX_ATTEMPTS_LIMIT } from '../../domain/schemas';
import { workflowIds } from '../../shared/task-queues';
import type { BuildInstanceResult } from '../../workflows/build-instance';
import { checkImageFitsFlavor, resolveFlavor, resolveImage } from '../../domain/catalogue';
import { unknownServerGroup } from '../../domain/errors';
import { checkInput, EXIT_FAILED, EXIT_OK, instances, refuseInvalid, requireHost } from '../context';
import type { Context, Run } from '../context';
import { buildMetadata, follow, startAndFollow, startWorkflow } from '../operation';
import { catalogueOf } from './catalogue';
import { wholeNumber } from '../options';
import { table } from '../table';

interface BootOptions {
  flavor: string;
  image: string;
  az?: string;
  host?: string;
  forceHost?: string;
  group?: string;
  maxAttempts?: number;
  count?: number;
  minCount?: number;
  maxCount?: number;
  wait: boolean;
}

async function boot(ctx: Context, name: string, o: BootOptions): Promise<number> {
  const counts = {
    ...(o.count !== undefined ? { count: o.count } : {}),
    ...(o.minCount !== undefined ? { minCount: o.minCount } : {}),
    ...(o.maxCount !== undefined ? { maxCount: o.maxCount } : {}),
  };
  const several = batchSize(counts).max > 1;
  // One instance: its id is chosen here and names the workflow. Several: the id names the request.
  const id = randomUUID();
  const workflowId = workflowIds.buildInstance(id);
  const input: BuildInstanceInput = {
    name,
    flavor: o.flavor,
    image: o.image,
    ...(several ? counts : { instanceId: id }),
    ...(o.az ? { availabilityZone: o.az } : {}),
    ...(o.host ? { host: o.host } : {}),
    ...(o.forceHost ? { forceHost: o.forceHost } : {}),
    ...(o.group ? { schedulerHints: { group: o.group } } : {}),
    ...(o.maxAttempts !== undefined ? { maxAttempts: o.maxAttempts } : {}),
  };
  // A request that can only fail is refused here: no workflow started, no instance created (the
  // workflow's own schema, so a bad combination such as --min-count above --max-count exits 2 at once).
  checkInput(BuildInstanceInputSchema, input);
  // The flavor, the image and the group as the conductor's createInstance will check them: the same
  // catalogue and the same store, so a build that could only fail starts no workflow.
  refuseInvalid(() => {
    const catalogue = catalogueOf(ctx);
    checkImageFitsFlavor(resolveFlavor(catalogue, o.flavor), resolveImage(catalogue, o.image), 'flavor');
  });
  if (o.group) {
    const groups = await (await instances(ctx)).listServerGroups();
    if (!groups.some((g) => g.name === o.group))
      refuseInvalid(() => {
        throw unknownServerGroup(
          o.group ?? '',
          groups.map((g) => g.name)
        );
      });
  }
  if (o.host) await requireHost(ctx, o.host);
  if (o.forceHost) await requireHost(ctx, o.forceHost, 'forceHost');
  if (o.wait && !several) return startAndFollow(ctx, 'buildInstance', workflowId, { ...input, instanceId: id });
  const handle = await startWorkflow(ctx, 'buildInstance', workflowId, [input], buildMetadata(input));
  if (!o.wait) {
    console.log(
      ctx.json ? JSON.stringify(several ? { workflowId } : { instanceId: id, workflowId }) : several ? workflowId : id
    );
    return EXIT_OK;
  }
  console.error(`buildInstance ${workflowId}`);
  await follow(handle);
  return printBatch(ctx, await handle.result());
}

/** Every instance of a multi-create: exit 1 when one of them failed after placement. */
function printBatch(ctx: Context, result: BuildInstanceResult): number {
  const members = result.batch?.instances ?? [];
  if (ctx.json) console.log(JSON.stringify(result.batch ?? null, null, 2));
  else
    console.log(
      table(
        ['NAME', 'ID', 'STATE', 'HOST', 'WORKFLOW', 'FAILURE'],
        members.map((m) => [
          m.name,
          m.instanceId,
          m.record.vmState,
          m.record.host,
          m.workflowId,
          m.failure ? `${m.failure.type}: ${m.failure.message}` : null,
        ])
      )
    );
  return members.some((m) => m.failure) ? EXIT_FAILED : EXIT_OK;
}

export function register(program: Command, run: Run): void {
  program
    .command('boot')
    .description('build an instance (or several) and follow it until it is active (or in error)')
    .argument('<name>', 'the instance name (several: NAME-1, NAME-2 …)')
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
    .addOption(
      new Option('--count <n>', 'build exactly n instances, all or none')
        .argParser(wholeNumber(1))
        .conflicts(['minCount', 'maxCount'])
    )
    .option('--min-count <n>', 'build at least n instances, or none', wholeNumber(1))
    .option('--max-count <n>', 'build at most n instances, as many as there is room for', wholeNumber(1))
    .option('--no-wait', 'print the instance id (several: the request workflow id) and return once started')
    .action((name: string, o: BootOptions) => run((ctx) => boot(ctx, name, o)));
}
