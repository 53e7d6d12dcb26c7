/**
 * `host disable|enable|down|up <host>`: an operator's switch on a compute host's service (Nova's
 * `openstack compute service set --disable|--enable|--down|--up`), through the setHostService workflow
 * (the same one `temporal workflow execute --type setHostService` runs). Prints the host's service state.
 */
import type { Command } from 'commander';

import type { SetHostServiceInput } from '../../domain/schemas';
import { SetHostServiceInputSchema } from '../../domain/schemas';
import { workflowIds } from '../../shared/task-queues';
import type { HostService } from '../../workflows/set-host-service';
import { checkInput, EXIT_OK, printJson, requireHost } from '../context';
import type { Context, Run } from '../context';
import { outcome, requestId, startWorkflow } from '../operation';
import { fields } from '../table';
import { serviceState, serviceStatus } from './hosts';

type Change = Omit<SetHostServiceInput, 'host'>;

async function setHostService(ctx: Context, host: string, change: Change): Promise<number> {
  checkInput(SetHostServiceInputSchema, { host, ...change });
  await requireHost(ctx, host);
  const workflowId = workflowIds.setHostService(host, requestId());
  const handle = await startWorkflow(ctx, 'setHostService', workflowId, [{ host, ...change }]);
  const service: HostService = await outcome(handle.result());
  if (ctx.json) printJson(service);
  else
    console.log(
      fields([
        ['host', service.host],
        ['zone', service.availabilityZone],
        ['state', serviceState(service)],
        ['status', serviceStatus(service)],
      ])
    );
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  const host = program
    .command('host')
    .description("a compute host's service: disable, enable, down (forced), up")
    .addHelpText(
      'after',
      '\nThe same through the temporal CLI: temporal workflow execute --type setHostService --task-queue conductor\n' +
        '  --workflow-id host-service-<host>-1 --input \'{"host": "<host>", "disabled": true, "disabledReason": "…"}\''
    );
  const sub = (name: string, description: string) =>
    host.command(name).description(description).argument('<host>', 'the compute host');
  sub('disable', 'the scheduler no longer picks the host for new instances (what runs there stays)')
    .option('--reason <text>', 'why (shown by `hosts`)')
    .action((name: string, o: { reason?: string }) =>
      run((ctx) => setHostService(ctx, name, { disabled: true, ...(o.reason ? { disabledReason: o.reason } : {}) }))
    );
  sub('enable', 'the scheduler may pick the host again (clears the reason)').action((name: string) =>
    run((ctx) => setHostService(ctx, name, { disabled: false }))
  );
  sub('down', 'force the host down whatever its liveness, so its instances may be evacuated').action((name: string) =>
    run((ctx) => setHostService(ctx, name, { forcedDown: true }))
  );
  sub('up', 'clear the forced down: the host is up again while its compute worker polls').action((name: string) =>
    run((ctx) => setHostService(ctx, name, { forcedDown: false }))
  );
}
