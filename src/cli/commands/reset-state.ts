/**
 * `reset-state ID|NAME [--active | --error]`: Nova's reset-state (the resetState workflow): the vm state
 * set (`error` unless --active, as in Nova), the task state cleared; refused while the operation holding
 * the instance runs.
 */
import { Option } from 'commander';
import type { Command } from 'commander';

import { resolveInstance } from '../context';
import type { Run } from '../context';
import { follow, requestId, startWorkflow } from '../operation';
import { printCurrent } from '../context';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(
    program,
    'reset-state',
    "set the vm state (error, or active) and clear the task state (Nova's reset-state)"
  )
    .addOption(new Option('--active', 'reset to active').conflicts('error'))
    .addOption(new Option('--error', 'reset to error (the default)').conflicts('active'))
    .action((ref: string, options: { active?: boolean; error?: boolean }) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        const state = options.active === true ? 'active' : 'error';
        const workflowId = `reset-state-${instanceId}-${requestId()}`;
        const handle = await startWorkflow(ctx, 'resetState', workflowId, [{ instanceId, state }]);
        console.error(`resetState ${workflowId}`);
        await follow(handle);
        return printCurrent(ctx, instanceId);
      })
    );
}
