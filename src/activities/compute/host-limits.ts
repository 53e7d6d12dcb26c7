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

/** The limits of one compute host. 0: no limit. */
export interface HostLimits {
  /** Nova's max_concurrent_builds. */
  maxConcurrentBuilds: number;
  /** Nova's max_concurrent_live_migrations. */
  maxConcurrentLiveMigrations: number;
}

export const DEFAULT_HOST_LIMITS: HostLimits = { maxConcurrentBuilds: 10, maxConcurrentLiveMigrations: 1 };

/** How often a step waiting for a slot heartbeats. */
export const SLOT_WAIT_HEARTBEAT_MS = 1_000;

/** A counting semaphore, FIFO, whose waiters can be aborted. `limit` 0: never waits. */
export class Slots {
  private held = 0;
  private readonly queue: { grant: () => void }[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 0) throw new Error(`a slot limit is a whole number >= 0, not ${limit}`);
  }

  /** Steps holding a slot now. */
  get running(): number {
    return this.held;
  }

  /** Steps waiting for a slot now. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Runs `fn` holding a slot. While it waits, `onWait` is called every SLOT_WAIT_HEARTBEAT_MS; an abort
   * of `signal` while it waits rejects with the signal's reason and takes no slot.
   */
  async run<T>(
    fn: () => Promise<T>,
    { signal, onWait }: { signal?: AbortSignal; onWait?: () => void } = {}
  ): Promise<T> {
    await this.acquire(signal, onWait);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private async acquire(signal?: AbortSignal, onWait?: () => void): Promise<void> {
    if (this.limit === 0) {
      this.held++;
      return;
    }
    signal?.throwIfAborted();
    if (this.held < this.limit && this.queue.length === 0) {
      this.held++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const timer = onWait ? setInterval(onWait, SLOT_WAIT_HEARTBEAT_MS) : undefined;
      const waiter = {
        grant: () => {
          if (timer) clearInterval(timer);
          signal?.removeEventListener('abort', onAbort);
          this.held++;
          resolve();
        },
      };
      const onAbort = () => {
        if (timer) clearInterval(timer);
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(signal?.reason instanceof Error ? signal.reason : new Error(String(signal?.reason)));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  private release(): void {
    this.held--;
    const next = this.queue.shift();
    if (next) next.grant();
  }
}

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
