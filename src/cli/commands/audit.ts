/** `audit`: the placement audit (src/cli/audit.ts): orphaned allocations and hosts over capacity, exit 3 on findings. */
import type { Command } from 'commander';

import { main as audit } from '../audit';
import type { Run } from '../context';

export function register(program: Command, run: Run): void {
  program
    .command('audit')
    .description('orphaned allocations and hosts over capacity (exit 3 when found)')
    .action(() => run((ctx) => audit(ctx.json ? ['--json'] : [])));
}
