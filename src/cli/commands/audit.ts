/**
 * `audit`: the consistency audit (src/cli/audit.ts) with `--live`: placement, workflows and the compute
 * hosts' guests (the conductor CLI talks to Temporal anyway), exit 3 on findings.
 */
import type { Command } from 'commander';

import { main as audit } from '../audit';
import type { Run } from '../context';

export function register(program: Command, run: Run): void {
  program
    .command('audit')
    .description('the consistency audit: placement, workflows, guests (exit 3 on findings)')
    .action(() => run((ctx) => audit(ctx.json ? ['--live', '--json'] : ['--live'])));
}
