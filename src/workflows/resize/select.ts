/** The scheduler's choice of destinations for a resize or cold migration (Nova's MigrationTask select_destinations). */
import { NoValidHost } from '../../domain/errors';
import type { MigrationPlan } from '../../domain/migration';
import type { ResizeMigrateRequest } from '../../domain/schemas';
import type { KernelOperation } from '../lib/kernel';
import { runStep } from '../lib/kernel';
import type { Selection } from '../lib/placement-selection';
import { scheduler } from '../lib/proxies';

/**
 * Nova's select_destinations for the move, as the step `conductor_migrate_server`: the new flavor, the
 * instance's zone and group, the current host excluded unless allowed. The chosen host first, then the
 * alternates (the Selection the placement attempt places on); NoValidHost when there is none.
 */
export async function selectMoveDestinations(
  op: KernelOperation,
  plan: MigrationPlan,
  req: ResizeMigrateRequest,
  source: string
): Promise<Selection> {
  const { instanceId } = op;
  const selected = await runStep(op, {
    event: 'conductor_migrate_server',
    label: 'selecting destinations',
    host: source,
    attempt: 0,
    run: () =>
      scheduler.selectDestinations({
        instanceIds: [instanceId],
        flavor: plan.newFlavor,
        image: plan.image,
        // The instance stays in its availability zone (the zone it was booted into is not kept apart).
        availabilityZone: op.before.availabilityZone ?? undefined,
        schedulerHints: op.before.serverGroup ? { group: op.before.serverGroup } : {},
        // NOTE(nova): the API adds the instance's host to ignore_hosts unless allow_resize_to_same_host.
        ignoreHosts: req.allowSameHost ? [] : [source],
        requestedHost: req.host,
        // NOTE(nova): a targeted cold migration (a requested host) is never rescheduled elsewhere.
        maxAttempts: req.host ? 1 : req.maxAttempts,
      }),
  });
  const hosts = selected.selections[0]?.hosts ?? [];
  if (hosts.length === 0) throw NoValidHost.for(`the move of instance ${instanceId}`);
  return { hosts, resources: selected.resources, hostZones: selected.hostZones };
}
