/** `reboot ID|NAME [--hard]`: a soft (ACPI) or hard reboot (the reboot workflow). */
import type { Command } from 'commander';

import { workflowIds } from '../../shared/task-queues';
import { resolveInstance } from '../context';
import type { Run } from '../context';
import { requestId, startAndFollow } from '../operation';
import { instanceCommand } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'reboot', "soft reboot (the guest's own shutdown, hard after 120 s), or --hard")
    .option('--hard', 'power off by force and start (also from stopped or error)')
    .action((ref: string, o: { hard?: boolean }) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        const input = { instanceId, type: o.hard ? ('HARD' as const) : ('SOFT' as const) };
        return startAndFollow(ctx, 'reboot', workflowIds.reboot(instanceId, requestId()), input);
      })
    );
}
