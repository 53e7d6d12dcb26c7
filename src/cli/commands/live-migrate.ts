/**
 * `live-migrate ID|NAME [--host H] [--force] [--no-block-migration]`: moves a running instance to another
 * host while it runs (the liveMigrate workflow), following the copy (round, share copied). `live-migrate-
 * abort` and `live-migrate-force` send the running migration its abortLiveMigration or forceComplete
 * Update.
 */
import type { UpdateDefinition } from '@temporalio/common';
import type { Command } from 'commander';

import type { LiveMigrateInput } from '../../domain/schemas';
import { LiveMigrateInputSchema } from '../../domain/schemas';
import { abortLiveMigrationUpdate, forceCompleteUpdate } from '../../shared/messages';
import { workflowIds } from '../../shared/task-queues';
import { checkInput, OperationFailed, printJson, requireHost, resolveInstance } from '../context';
import type { Run } from '../context';
import { copyProgress, follow, liveMigrationOf, requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

interface LiveMigrateOptions {
  host?: string;
  force?: boolean;
  blockMigration: boolean;
}

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'live-migrate', 'move the running instance to another host while it keeps running')
    .option('--host <host>', 'the destination (the scheduler still checks it, unless --force)')
    .option('--force', 'with --host: skip the scheduler filters')
    .option('--no-block-migration', 'rely on storage the hosts share instead of copying the disks')
    .action((ref: string, o: LiveMigrateOptions) =>
      run(async (ctx) => {
        if (o.host) await requireHost(ctx, o.host);
        const { instanceId } = await resolveInstance(ctx, ref);
        const input: LiveMigrateInput = {
          instanceId,
          ...(o.host ? { host: o.host } : {}),
          ...(o.force ? { force: true } : {}),
          ...(o.blockMigration ? {} : { blockMigration: false }),
        };
        checkInput(LiveMigrateInputSchema, input);
        return startAndFollow(
          ctx,
          'liveMigrate',
          workflowIds.liveMigrate(instanceId, requestId()),
          input,
          undefined,
          copyProgress
        );
      })
    );

  for (const [name, update, what] of [
    [
      'live-migrate-abort',
      abortLiveMigrationUpdate,
      'abort the live migration under way: the instance stays on its source',
    ],
    [
      'live-migrate-force',
      forceCompleteUpdate,
      'force the live migration under way to complete (the guest is paused briefly)',
    ],
  ] as const)
    instanceCommand(program, name, what).action((ref: string) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        const handle = await liveMigrationOf(ctx, instanceId);
        let answer: unknown;
        try {
          answer = await handle.executeUpdate(update as UpdateDefinition<unknown, [], string>);
        } catch (err) {
          const cause = (err as { cause?: { type?: string; message?: string } }).cause;
          throw new OperationFailed(cause?.type ?? 'UpdateRejected', cause?.message ?? (err as Error).message);
        }
        if (ctx.json) printJson(answer);
        else console.error(`${name}: ${JSON.stringify(answer)}; following ${handle.workflowId}`);
        await follow(handle, undefined, copyProgress).catch((err: unknown) => {
          // An aborted migration fails LiveMigrationAborted: what was asked for.
          if (name === 'live-migrate-abort' && err instanceof OperationFailed && err.type === 'LiveMigrationAborted')
            return;
          throw err;
        });
        return 0;
      })
    );
}
