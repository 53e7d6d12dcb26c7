/**
 * Per-host limits as Nova has them: `max_concurrent_builds` (default 10) bounds the spawns of new guests
 * on one host, `max_concurrent_live_migrations` (default 1) the live-migration copies out of it; 0 means
 * no limit, as in Nova. They are semaphores held by the one step they limit (spawnInstance, liveMigration),
 * not the worker's activity slots, so a stop, a delete or a power-on on the same host never waits behind
 * spawns, and a host whose build slots are full still answers its short steps (is not read as down).
 *
 * A step waiting for a slot heartbeats (so its heartbeat timeout does not read a waiting host as silent)
 * and honours cancellation (a build deleted while it waits leaves at once, taking no slot).
 */
import { Slots } from '../../shared/slots';

export { Slots };

/** The limits of one compute host. 0: no limit. */
export interface HostLimits {
  /** Nova's max_concurrent_builds. */
  maxConcurrentBuilds: number;
  /** Nova's max_concurrent_live_migrations. */
  maxConcurrentLiveMigrations: number;
}

export const DEFAULT_HOST_LIMITS: HostLimits = { maxConcurrentBuilds: 10, maxConcurrentLiveMigrations: 1 };

/** The semaphores of one host. */
export interface HostSlots {
  builds: Slots;
  liveMigrations: Slots;
}

export function createHostSlots(limits: HostLimits = DEFAULT_HOST_LIMITS): HostSlots {
  return {
    builds: new Slots(limits.maxConcurrentBuilds),
    liveMigrations: new Slots(limits.maxConcurrentLiveMigrations),
  };
}
