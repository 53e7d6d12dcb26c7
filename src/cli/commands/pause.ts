/**
 * `pause`, `unpause`, `suspend`, `resume ID|NAME`: Nova's actions of those names (the workflows of
 * src/workflows/pause.ts), each followed to its end with live progress.
 */
import type { Command } from 'commander';

import { workflowIds } from '../../shared/task-queues';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

const COMMANDS = [
  ['pause', 'freeze an active instance in memory (paused)'],
  ['unpause', 'run a paused instance on'],
  ['suspend', "save an active instance's memory on its host and end its guest (suspended)"],
  ['resume', 'restore a suspended instance from its saved memory'],
] as const;

export function register(program: Command, run: Run): void {
  for (const [type, summary] of COMMANDS)
    instanceCommand(program, type, summary).action((ref: string) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        return startAndFollow(ctx, type, workflowIds[type](instanceId, requestId()), { instanceId });
      })
    );
}
