/** `hosts`: compute hosts with their zone, usage against capacity, liveness (task-queue pollers) and build failures. */
import type { Command } from 'commander';

import { TaskQueuePollerLiveness } from '../../activities/scheduler/liveness';
import { createPlacementRepository } from '../../store/placement';
import { connection, EXIT_OK, printJson, store } from '../context';
import type { Context, Run } from '../context';
import { table } from '../table';

async function hosts(ctx: Context): Promise<number> {
  const placement = createPlacementRepository(await store(ctx));
  const states = await placement.listHostStates(() => true);
  const liveness = new TaskQueuePollerLiveness(await connection(ctx), ctx.env.TEMPORAL_NAMESPACE, () =>
    Promise.resolve(states.map((h) => h.host))
  );
  await liveness.refresh();
  const rows = states.map((h) => {
    const cap = (rc: 'VCPU' | 'MEMORY_MB' | 'DISK_GB') => {
      const inv = h.inventories[rc];
      return Math.floor((inv.total - inv.reserved) * inv.allocationRatio);
    };
    return {
      host: h.host,
      zone: h.availabilityZone,
      up: liveness.isUp(h.host) && h.up,
      enabled: h.enabled,
      disabledReason: h.disabledReason,
      vcpus: `${h.used.VCPU}/${cap('VCPU')}`,
      memoryMb: `${h.used.MEMORY_MB}/${cap('MEMORY_MB')}`,
      diskGb: `${h.used.DISK_GB}/${cap('DISK_GB')}`,
      instances: h.instances.size,
      failedBuilds: h.failedBuilds,
      traits: [...h.traits].join(','),
    };
  });
  if (ctx.json) printJson(rows);
  else
    console.log(
      table(
        ['HOST', 'ZONE', 'STATE', 'STATUS', 'VCPU', 'MEMORY MB', 'DISK GB', 'INSTANCES', 'FAILED BUILDS', 'TRAITS'],
        rows.map((r) => [
          r.host,
          r.zone,
          r.up ? 'up' : 'down',
          r.enabled ? 'enabled' : `disabled: ${r.disabledReason ?? ''}`,
          r.vcpus,
          r.memoryMb,
          r.diskGb,
          r.instances,
          r.failedBuilds,
          r.traits,
        ])
      )
    );
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  program
    .command('hosts')
    .description('compute hosts: zone, usage, liveness, build failures')
    .action(() => run(hosts));
}
