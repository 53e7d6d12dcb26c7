/** `confirm ID|NAME`: keeps a resized or migrated instance where it is now (the confirmResize update). */
import type { Command } from 'commander';

import { confirmResizeUpdate } from '../../shared/messages';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { decideResize } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'confirm', 'settle a resize or migration: keep the instance where it is now').action(
    (ref: string) =>
      run(async (ctx) => decideResize(ctx, (await resolveInstance(ctx, ref)).instanceId, confirmResizeUpdate))
  );
}
