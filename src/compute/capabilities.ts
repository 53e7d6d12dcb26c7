/**
 * What a driver can do: Nova's ComputeDriver.capabilities, which the compute manager consults before it
 * asks a driver for something. Here the compute activities consult it (src/activities/compute), so a
 * refusal is the same whatever the driver.
 */

export interface DriverCapabilities {
  /** It can move a running guest to another host (live migration). */
  readonly supportsLiveMigration: boolean;
  /**
   * A live migration's force-complete switches the copy to post-copy (libvirt's
   * VIR_MIGRATE_POSTCOPY, QEMU's migrate-start-postcopy); without it force-complete pauses the guest.
   */
  readonly supportsPostCopy: boolean;
  /** It can copy the local disks with the memory (block migration; libvirt's VIR_MIGRATE_NON_SHARED_INC). */
  readonly supportsBlockMigration: boolean;
  /**
   * Every host of this driver sees the same instance directory (Nova's is_shared_instance_path, e.g.
   * NFS): a live migration moves only the memory, and a block migration is refused.
   */
  readonly sharedInstancePath: boolean;
  /** A resize may land on its source host (Nova's supports_migrate_to_same_host). */
  readonly supportsMigrateToSameHost: boolean;
}

/** Why a live migration's storage mode is refused (the activity wraps it as a MigrationPreCheckError). */
export class StorageModeRefused extends Error {
  override readonly name = 'StorageModeRefused';
}

/**
 * Resolves a live migration's requested block migration (`'auto'` or a boolean, as the API takes it)
 * against the destination's capabilities, the way Nova's check_can_live_migrate_* do:
 *
 * - `'auto'`: a block migration unless the instance path is shared (Nova's block_migration='auto').
 * - `true` on shared storage: refused (Nova's InvalidLocalStorage, "Block migration can not be used with
 *   shared storage").
 * - `false` without shared storage: refused (Nova's InvalidSharedStorage, "… is not on shared storage").
 * - a block migration by a driver that cannot copy disks: refused.
 */
export function resolveBlockMigration(
  requested: boolean | 'auto',
  capabilities: DriverCapabilities,
  where: { instanceId: string; host: string; sourceHost: string }
): boolean {
  const shared = capabilities.sharedInstancePath;
  const block = requested === 'auto' ? !shared : requested;
  if (block && shared)
    throw new StorageModeRefused(
      `${where.host} is on shared storage with ${where.sourceHost}: Block migration can not be used with shared storage (instance ${where.instanceId}).`
    );
  if (!block && !shared)
    throw new StorageModeRefused(
      `${where.host} and ${where.sourceHost} share no storage: only a block migration can move instance ${where.instanceId}`
    );
  if (block && !capabilities.supportsBlockMigration)
    throw new StorageModeRefused(
      `${where.host} cannot block-migrate instance ${where.instanceId}: its driver copies no disks`
    );
  return block;
}
