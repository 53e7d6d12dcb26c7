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

/** No poll on a host's queue for this long: the host is down (HOST_DOWN_AFTER_SECONDS, Nova's service_down_time). */
export const DEFAULT_DOWN_AFTER_MS = 60_000;
/** Tasks waiting this long on a host's queue with no poll in that time: the host is sick (hung, frozen). */
export const DEFAULT_SICK_AFTER_MS = 5_000;
/** How often the scheduler refreshes its view (one DescribeTaskQueue per host). */
export const LIVENESS_REFRESH_MS = 5_000;

/**
 * Up = a poller on the host's activity queue accessed within `downAfterMs` (HOST_DOWN_AFTER_SECONDS,
 * 60 s by default). An idle live worker polls again whenever its long poll expires (the server's
 * `matching.longPollExpirationInterval`: 10 s on the dev server `make start` runs, about 50 s measured on
 * a default one), so its last poll is never older than that; a frozen worker's last poll keeps being
 * recorded until that long poll expires, so it reads down within the window plus one long poll. With
 * hysteresis: a poller list that comes back empty (a server restart forgets its pollers) or a refresh
 * that fails does not take a host down before the window has passed since its last poll. Sooner than that, a host is out while it is *sick*: tasks have
 * waited on its queue longer than `sickAfterMs` and no poller has come for them in that time (a worker
 * that hangs without dying, SIGSTOPped, or one that cannot keep up). Hosts never seen are up until the
 * first refresh has looked at them, so a freshly registered host is schedulable at once.
 */
export class TaskQueuePollerLiveness implements HostLiveness {
  private readonly lastSeen = new Map<string, number>();
  private readonly known = new Set<string>();
  private readonly sick = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: Connection,
    private readonly namespace: string,
    private readonly hosts: () => Promise<string[]>,
    private readonly downAfterMs = DEFAULT_DOWN_AFTER_MS,
    private readonly now: () => number = Date.now,
    private readonly sickAfterMs = DEFAULT_SICK_AFTER_MS
  ) {}

  isUp(host: string): boolean {
    if (!this.known.has(host)) return true;
    if (this.sick.has(host)) return false;
    const seen = this.lastSeen.get(host);
    return seen !== undefined && this.now() - seen <= this.downAfterMs;
  }

  /** Why a host reads down: `sick` (tasks waiting, no poll), `down` (no poll within the window), or undefined. */
  reason(host: string): 'sick' | 'down' | undefined {
    if (this.isUp(host)) return undefined;
    return this.sick.has(host) ? 'sick' : 'down';
  }

  async refresh(): Promise<void> {
    const hosts = await this.hosts();
    await Promise.all(
      hosts.map(async (host) => {
        const res = await this.connection.workflowService.describeTaskQueue({
          namespace: this.namespace,
          taskQueue: { name: computeTaskQueue(host) },
          taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
          reportStats: true,
        });
        let latest = this.lastSeen.get(host) ?? 0;
        for (const poller of res.pollers ?? []) latest = Math.max(latest, timestampMs(poller.lastAccessTime));
        if (latest > 0) this.lastSeen.set(host, latest);
        const backlog = Number(res.stats?.approximateBacklogCount?.toString() ?? 0);
        const backlogAgeMs = durationMs(res.stats?.approximateBacklogAge);
        const now = this.now();
        if (backlog > 0 && backlogAgeMs > this.sickAfterMs && now - latest > this.sickAfterMs) this.sick.add(host);
        else this.sick.delete(host);
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

/** A protobuf Duration in ms (0 when absent). */
export function durationMs(
  d: { seconds?: { toString(): string } | number | null; nanos?: number | null } | null | undefined
): number {
  return timestampMs(d);
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
