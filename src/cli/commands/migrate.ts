/** `migrate ID|NAME [--host H]`: cold migration, same flavor on another host; settled by confirm or revert. */
import type { Command } from 'commander';

import type { Run } from '../context';
import { instanceCommand } from '../options';
import { resizeOrMigrate } from './resize';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'migrate', 'cold migration: same flavor, another host; then confirm or revert')
    .option('--host <host>', 'the destination (default: the scheduler picks)')
    .action((ref: string, o: { host?: string }) =>
      run((ctx) => resizeOrMigrate(ctx, ref, o.host ? { host: o.host } : {}))
    );
}
