/**
 * The one counting semaphore of the code base: FIFO (a waiter is served in the order it came, so a long
 * queue of spawns cannot starve the first), abortable (an aborted waiter leaves the queue and takes no
 * slot), and telling a waiter's caller it still waits (`onWait`, every SLOT_WAIT_HEARTBEAT_MS, so an
 * activity can heartbeat). Used for Nova's per-host limits (src/activities/compute/host-limits.ts), the
 * QEMU driver's heavy-step limit per host and the fake driver's per-file lock (a limit of 1).
 */

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
