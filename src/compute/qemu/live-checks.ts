/**
 * The live-migration pre-checks of the QEMU driver (Nova's check_can_live_migrate_source/_destination).
 * They write nothing.
 */
import { MigrationPreCheckError } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import type { CheckLiveMigrationDestination, HostCpu } from '../driver';
import { powerStateOf, requireRecord } from './guest';
import type { LiveHost } from './live';

export async function checkCanLiveMigrateSource(h: LiveHost, instanceId: string): Promise<HostCpu> {
  const record = await requireRecord(h, instanceId);
  if (record.status !== 'active')
    throw new MigrationPreCheckError(`instance ${instanceId} is ${record.status} on ${h.host}, not running`);
  const power = await powerStateOf(h, record);
  if (power !== PowerState.Running && power !== PowerState.Paused)
    throw new MigrationPreCheckError(
      `instance ${instanceId} is ${power} on ${h.host}: only a running or paused guest moves live`
    );
  return h.cpu;
}

/**
 * Not the source itself, the same CPU architecture and every CPU feature of the source, no guest of the
 * instance here; the instance path is shared, so a block migration is refused as Nova refuses it.
 */
export async function checkCanLiveMigrateDestination(
  h: LiveHost,
  request: CheckLiveMigrationDestination
): Promise<void> {
  const { instanceId, sourceHost, sourceCpu, blockMigration } = request;
  if (sourceHost === h.host)
    throw new MigrationPreCheckError(`Unable to migrate instance ${instanceId} to the current host (${h.host})`);
  if (sourceCpu.architecture !== h.cpu.architecture)
    throw new MigrationPreCheckError(
      `CPU architecture of ${h.host} (${h.cpu.architecture}) is not ${sourceCpu.architecture}, the source's`
    );
  const missing = sourceCpu.traits.filter((t) => !h.cpu.traits.includes(t));
  if (missing.length > 0)
    throw new MigrationPreCheckError(`the CPU of ${h.host} lacks ${missing.join(', ')}, which the source's offers`);
  // Nova's InvalidLocalStorage.
  if (blockMigration)
    throw new MigrationPreCheckError(
      `${h.host} is on shared storage with ${sourceHost}: Block migration can not be used with shared storage (instance ${instanceId}).`
    );
  if (await h.layout.readRecord(h.layout.instanceDir(instanceId)))
    throw new MigrationPreCheckError(`a guest of instance ${instanceId} already exists on ${h.host}`);
}
