/**
 * Whether a compute host has a live worker (Nova's servicegroup "is up"). Temporal already knows: a host
 * is up while its worker polls `compute-<host>`. The poller view refreshes in the background so the
 * scheduler's hot path only reads a set.
 */
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

import { computeTaskQueue } from '../../shared/task-queues';

export interface HostLiveness {
  isUp(host: string): boolean;
}

/** Every host is up: for benchmarks and tests that do not exercise liveness. */
export const ALL_HOSTS_UP: HostLiveness = { isUp: () => true };

/** A liveness view a test can steer: hosts in `down` are reported down. */
export class StaticLiveness implements HostLiveness {
  readonly down = new Set<string>();
  isUp(host: string): boolean {
    return !this.down.has(host);
  }
}

/**
 * Up = a poller on the host's activity queue accessed within `downAfterMs` (a live worker re-polls at
 * least every ~70 s, so the default allows one missed long poll). Hosts never seen are up until the
 * first refresh has looked at them, so a freshly registered host is schedulable at once.
 */
export class TaskQueuePollerLiveness implements HostLiveness {
  private readonly lastSeen = new Map<string, number>();
  private readonly known = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: Connection,
    private readonly namespace: string,
    private readonly hosts: () => Promise<string[]>,
    private readonly downAfterMs = 90_000,
    private readonly now: () => number = Date.now
  ) {}

  isUp(host: string): boolean {
    if (!this.known.has(host)) return true;
    const seen = this.lastSeen.get(host);
    return seen !== undefined && this.now() - seen <= this.downAfterMs;
  }

  async refresh(): Promise<void> {
    const hosts = await this.hosts();
    await Promise.all(
      hosts.map(async (host) => {
        const res = await this.connection.workflowService.describeTaskQueue({
          namespace: this.namespace,
          taskQueue: { name: computeTaskQueue(host) },
          taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        });
        let latest = 0;
        for (const poller of res.pollers ?? []) latest = Math.max(latest, timestampMs(poller.lastAccessTime));
        if (latest > 0) this.lastSeen.set(host, latest);
        else this.lastSeen.delete(host);
        this.known.add(host);
      })
    );
  }

  /** Refreshes now and then every `intervalMs`; errors are reported, not fatal. */
  async start(intervalMs = 10_000, onError: (err: unknown) => void = () => undefined): Promise<void> {
    await this.refresh().catch(onError);
    this.timer = setInterval(() => void this.refresh().catch(onError), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/** A protobuf Timestamp in epoch ms; `seconds` arrives as a Long (Number(Long) would be NaN). */
export function timestampMs(
  t: { seconds?: { toString(): string } | number | null; nanos?: number | null } | null | undefined
): number {
  if (!t) return 0;
  const seconds = Number(typeof t.seconds === 'number' ? t.seconds : (t.seconds?.toString() ?? 0));
  const ms = seconds * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
  return Number.isFinite(ms) ? ms : 0;
}
