/** What the conductor activities are made over, and the one way they write: once per activity call. */
import type { Client } from '@temporalio/client';

import type { Catalogue } from '../../domain/catalogue';
import type { InstanceRepository } from '../../store/instances';
import type { PlacementRepository } from '../../store/placement';
import type { InstanceWrites } from '../../store/write-once';
import { activityWriteKey } from './write-key';

export interface ConductorDeps {
  instances: InstanceRepository;
  catalogue: Catalogue;
  /**
   * Runs one write once per activity call (a retry after a lost answer gets the first answer). The
   * workers pass the store's (`instanceWrites`); without it writes run directly (unit tests call the
   * activities as plain functions).
   */
  writes?: InstanceWrites;
  /** Temporal, to ask whether an operation's workflow still runs (delete, reconcile). */
  temporal?: Client;
  /**
   * Placement, for what the conductor writes there itself: a host's build results (the build's own last
   * write resets a host's failed builds) and a live migration's source allocation moved to its migration
   * (as Nova's conductor calls placement in replace_allocation_with_migration).
   */
  placement?: Pick<PlacementRepository, 'recordBuildResult' | 'moveAllocations'>;
}

/** A write run once per activity call: through the store's applied-write log when the worker gave one. */
export function onceWriter({ instances, writes }: ConductorDeps) {
  return <T>(write: (repo: InstanceRepository) => Promise<T>): Promise<T> =>
    writes ? writes(activityWriteKey(), write) : write(instances);
}
