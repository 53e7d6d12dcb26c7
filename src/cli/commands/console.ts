/**
 * `console ID|NAME [--lines N]`: the guest's console log (Nova's `openstack console log show`), read
 * from its host through the host's queue (the read-only consoleOutput workflow). A real guest's serial
 * log; the fake hypervisor's record of events for the guest.
 */
import type { Command } from 'commander';

import { MAX_CONSOLE_LINES } from '../../domain/schemas';
import { workflowIds } from '../../shared/task-queues';
import { EXIT_OK, printJson, resolveInstance } from '../context';
import type { Run } from '../context';
import { outcome, requestId, startWorkflow } from '../operation';
import { instanceCommand, wholeNumber } from '../options';

export function register(program: Command, run: Run): void {
  instanceCommand(program, 'console', "the guest's console log, read from its host")
    .option('--lines <n>', 'only the last N lines', wholeNumber(0, MAX_CONSOLE_LINES))
    .action((ref: string, o: { lines?: number }) =>
      run(async (ctx) => {
        const { instanceId } = await resolveInstance(ctx, ref);
        const handle = await startWorkflow(ctx, 'consoleOutput', workflowIds.consoleOutput(instanceId, requestId()), [
          { instanceId, ...(o.lines === undefined ? {} : { lines: o.lines }) },
        ]);
        const result = await outcome(handle.result());
        if (ctx.json) printJson(result);
        else process.stdout.write(result.output);
        return EXIT_OK;
      })
    );
}
