/** `revert ID|NAME`: takes a resized or migrated instance back to its source and flavor (the revertResize update). */
import type { Command } from 'commander';

import { revertResizeUpdate } from '../../shared/messages';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { decideResize } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'revert', 'settle a resize or migration: back to its source host and flavor').action(
    (ref: string) =>
      run(async (ctx) => decideResize(ctx, (await resolveInstance(ctx, ref)).instanceId, revertResizeUpdate))
  );
}
