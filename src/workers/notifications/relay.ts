/**
 * The notification relay: delivers the outbox (src/store/notification-outbox.ts) through a transport, in
 * commit order, a batch at a time, and marks each batch delivered once the transport confirmed it. A
 * batch that fails (the broker down, a message refused) stays in the outbox and is tried again after a
 * backoff (1 s doubling to 30 s); the outbox grows meanwhile and drains when the broker returns. A relay
 * killed between the broker's confirm and the mark delivers that batch again on its next start: delivery
 * is at least once, each message with its `message_id` for consumers to drop duplicates.
 *
 * One relay per store: two would each deliver everything (still at least once, but out of order).
 */
import type { NotificationOutbox } from '../../store/notification-outbox';
import type { NotificationTransport } from './transport';
import { toWire } from './transport';

export interface RelayOptions {
  outbox: NotificationOutbox;
  transport: NotificationTransport;
  /** Notifications per publish (default 100). */
  batchSize?: number;
  /** Wait when the outbox is empty (default 250 ms). */
  idleMs?: number;
  /** Days delivered notifications are kept (pruned once an hour); 0: never pruned. */
  retentionDays?: number;
  log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

export const RELAY_MAX_BACKOFF_MS = 30_000;
const PRUNE_EVERY_MS = 3_600_000;

export class NotificationRelay {
  private stopped = false;
  private wake: (() => void) | undefined;
  private failures = 0;
  private lastPrune = 0;
  /** Delivered since start, and the last delivery error (null once delivery works again). */
  readonly stats = { delivered: 0, batches: 0, failedAttempts: 0, lastError: null as string | null };

  constructor(private readonly options: RelayOptions) {}

  /** Delivers one batch; returns how many were delivered (0: the outbox is empty). Throws what the transport threw. */
  async deliverBatch(): Promise<number> {
    const batch = await this.options.outbox.undelivered(this.options.batchSize ?? 100);
    if (batch.length === 0) return 0;
    await this.options.transport.publish(batch.map(toWire));
    await this.options.outbox.markDelivered(batch.map((n) => n.seq));
    this.stats.delivered += batch.length;
    this.stats.batches++;
    return batch.length;
  }

  /** Runs until stop(): delivers, backs off on failure, waits when idle, prunes once an hour. */
  async run(): Promise<void> {
    const log = this.options.log ?? (() => undefined);
    while (!this.stopped) {
      let delivered = 0;
      try {
        delivered = await this.deliverBatch();
        if (this.failures > 0) log('info', 'notification delivery resumed', { afterFailures: this.failures });
        this.failures = 0;
        this.stats.lastError = null;
        await this.pruneIfDue();
      } catch (err) {
        this.failures++;
        this.stats.failedAttempts++;
        this.stats.lastError = (err as Error).message;
        const backlog = await this.options.outbox.backlog().catch(() => undefined);
        log('warn', 'notification delivery failed; the outbox holds them', {
          error: (err as Error).message,
          attempt: this.failures,
          backlog: backlog?.count,
          oldest: backlog?.oldest,
        });
      }
      if (this.stopped) break;
      if (this.failures > 0) await this.pause(Math.min(RELAY_MAX_BACKOFF_MS, 1000 * 2 ** (this.failures - 1)));
      else if (delivered === 0) await this.pause(this.options.idleMs ?? 250);
    }
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private async pruneIfDue(): Promise<void> {
    const days = this.options.retentionDays ?? 0;
    if (days <= 0 || Date.now() - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = Date.now();
    await this.options.outbox.prune(new Date(Date.now() - days * 86_400_000).toISOString());
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
