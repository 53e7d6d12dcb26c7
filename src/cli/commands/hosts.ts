/**
 * `hosts`: compute hosts with their zone, service state (up, down: no poller within the liveness window,
 * sick, or forced down; enabled or disabled and why), usage against capacity and build failures.
 */
import type { Command } from 'commander';

import { TaskQueuePollerLiveness } from '../../activities/scheduler/liveness';
import { createPlacementRepository } from '../../store/placement';
import { createNotificationOutbox } from '../../store/notification-outbox';
import { connection, EXIT_OK, instances, printJson, store } from '../context';
import type { Context, Run } from '../context';
import { table } from '../table';
import { migrationProgress } from './show';

/** up, down (no live compute worker), sick (tasks wait, nobody polls), or forced down (an operator's `host down`). */
export function serviceState(s: { up: boolean; forcedDown: boolean; reason?: string }): string {
  if (s.up) return 'up';
  if (s.forcedDown) return 'down (forced)';
  return s.reason === 'sick' ? 'down (sick)' : 'down';
}

export function serviceStatus(s: { enabled: boolean; disabledReason: string | null }): string {
  if (s.enabled) return 'enabled';
  return s.disabledReason ? `disabled: ${s.disabledReason}` : 'disabled';
}

async function hosts(ctx: Context): Promise<number> {
  const placement = createPlacementRepository(await store(ctx));
  const liveness = new TaskQueuePollerLiveness(
    await connection(ctx),
    ctx.env.TEMPORAL_NAMESPACE,
    async () => (await placement.listHostStates(() => true)).map((h) => h.host),
    ctx.env.HOST_DOWN_AFTER_SECONDS * 1000
  );
  await liveness.refresh();
  const states = await placement.listHostStates((h) => liveness.isUp(h));
  const repo = await instances(ctx);
  // Migrations under way, each on both its hosts, with its progress.
  const moving = new Map<string, string[]>();
  for (const m of await repo.listMigrationsInProgress()) {
    const instance = await repo.find(m.instanceId);
    const progress = instance ? await migrationProgress(ctx, instance, m) : null;
    const line = `${m.migrationType} ${m.instanceId.slice(0, 8)} ${m.sourceHost}→${m.destHost ?? '?'}: ${progress ?? m.status}`;
    for (const host of [m.sourceHost, m.destHost]) if (host) moving.set(host, [...(moving.get(host) ?? []), line]);
  }
  const rows = states.map((h) => {
    const cap = (rc: 'VCPU' | 'MEMORY_MB' | 'DISK_GB') => {
      const inv = h.inventories[rc];
      return Math.floor((inv.total - inv.reserved) * inv.allocationRatio);
    };
    return {
      host: h.host,
      zone: h.availabilityZone,
      up: h.up,
      state: serviceState({ ...h, reason: liveness.reason(h.host) }),
      forcedDown: h.forcedDown,
      enabled: h.enabled,
      disabledReason: h.disabledReason,
      vcpus: `${h.used.VCPU}/${cap('VCPU')}`,
      memoryMb: `${h.used.MEMORY_MB}/${cap('MEMORY_MB')}`,
      diskGb: `${h.used.DISK_GB}/${cap('DISK_GB')}`,
      instances: h.instances.size,
      failedBuilds: h.failedBuilds,
      traits: [...h.traits].join(','),
      migrations: moving.get(h.host) ?? [],
    };
  });
  if (ctx.json) printJson(rows);
  else
    console.log(
      table(
        [
          'HOST',
          'ZONE',
          'STATE',
          'STATUS',
          'VCPU',
          'MEMORY MB',
          'DISK GB',
          'INSTANCES',
          'FAILED BUILDS',
          'TRAITS',
          'MIGRATIONS IN PROGRESS',
        ],
        rows.map((r) => [
          r.host,
          r.zone,
          r.state,
          serviceStatus(r),
          r.vcpus,
          r.memoryMb,
          r.diskGb,
          r.instances,
          r.failedBuilds,
          r.traits,
          r.migrations.join('; ') || null,
        ])
      )
    );
  // With a relay, the notifications it has not delivered yet (a broker down holds them).
  if (ctx.env.NOTIFICATION_URL !== undefined || ctx.env.NOTIFICATION_RABBITMQ === '1') {
    const backlog = await createNotificationOutbox(await store(ctx)).backlog();
    const line = `notifications: ${backlog.count} waiting for delivery${backlog.oldest ? ` (oldest ${backlog.oldest})` : ''}`;
    if (ctx.json) console.error(line);
    else console.log(`\n${line}`);
  }
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  program
    .command('hosts')
    .description('compute hosts: zone, service state (up/down/forced down, enabled/disabled), usage, build failures')
    .action(() => run(hosts));
}
