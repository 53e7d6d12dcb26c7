/**
 * Whether a compute host has a live worker (Nova's servicegroup "is up"). Temporal already knows: a host
 * is up while its worker polls `compute-<host>`. The poller view refreshes in the background so the
 * scheduler's hot path only reads a set.
 */
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

import { forEachBounded } from '../../shared/bounded';
import { computeTaskQueue } from '../../shared/task-queues';

export interface HostLiveness {
  isUp(host: string): boolean;
  /**
   * Looks at a host that reads down again now, before a decision that a stale verdict would get wrong
   * (a delete that leaves the guest to a host whose worker has just come back).
   */
  recheck?(host: string): Promise<void>;
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
/** How often the scheduler refreshes its view. */
export const LIVENESS_REFRESH_MS = 5_000;
/**
 * How often every worker process sends the server its workers' heartbeats (the runtime's
 * workerHeartbeatInterval; one call per process for all its workers). Well under DEFAULT_SICK_AFTER_MS,
 * so a live host's heartbeat is never old enough to make it a suspect.
 */
export const WORKER_HEARTBEAT_MS = 2_000;
/** DescribeTaskQueue calls under way at once in a refresh (the per-host path, or the suspects of the bulk one). */
export const DESCRIBE_CONCURRENCY = 32;
/** ListWorkers page size (the server caps it at its own maximum). */
const LIST_WORKERS_PAGE = 1_000;

const WORKER_STATUS_RUNNING = temporal.api.enums.v1.WorkerStatus.WORKER_STATUS_RUNNING;

/** What one refresh did: which path ran and how many calls it made (the benchmark and tests read it). */
export interface LivenessRefreshStats {
  /** `bulk`: ListWorkers heartbeats, DescribeTaskQueue only for suspects; `per-host`: one DescribeTaskQueue per host. */
  path: 'bulk' | 'per-host';
  hosts: number;
  listWorkersCalls: number;
  describeCalls: number;
}

/** A host's freshest running worker heartbeat, as ListWorkers reports it. */
interface HostBeat {
  heartbeatMs: number;
  /** Activity slots free, or a poll that brought a task recently: the host keeps up with its queue. */
  keepsUp: boolean;
}

/**
 * Up = a worker of the host's activity queue seen within `downAfterMs` (HOST_DOWN_AFTER_SECONDS, 60 s
 * by default), seen as one of:
 *
 * - its worker heartbeat (bulk path): one paginated ListWorkers call per refresh lists every running
 *   worker of the namespace with its last heartbeat (every WORKER_HEARTBEAT_MS, sent by the SDK runtime
 *   for all the workers of a process in one call), so 1,000 hosts cost a page or two, not 1,000 calls. A
 *   host whose heartbeat is fresh and that keeps up (free activity slots, or a recent successful poll)
 *   is up and not sick without further calls. The others, the *suspects* (a heartbeat older than
 *   `sickAfterMs`, a saturated worker, a host never looked at, or one not in the list and not yet
 *   down), get the per-host look below, at most DESCRIBE_CONCURRENCY at once;
 * - a poller on its queue (per-host path, and for suspects): DescribeTaskQueue's pollers' last access
 *   time. An idle live worker polls again whenever its long poll expires (the server's
 *   `matching.longPollExpirationInterval`: 10 s on the dev server `make start` runs, about 50 s measured
 *   on a default one), so its last poll is never older than that; a frozen worker's last poll keeps being
 *   recorded until that long poll expires, so it reads down within the window plus one long poll.
 *
 * The bulk path needs a server with worker heartbeats (ListWorkers: the dev server of CLI 1.9.1 has
 * them); a server that refuses ListWorkers or lists no heartbeats (the time-skipping test server) gets
 * the per-host path on every refresh, which is then the only one tried again every
 * BULK_RETRY_REFRESHES refreshes. With hysteresis: a heartbeat list or a poller list that comes back
 * empty (a server restart forgets both) or a refresh that fails does not take a host down before the
 * window has passed since it was last seen. Sooner than that, a host is out while it is *sick*: tasks
 * have waited on its queue longer than `sickAfterMs` and no poller has come for them in that time (a
 * worker that hangs without dying, SIGSTOPped, or one that cannot keep up). Hosts never seen are up
 * until the first refresh has looked at them, so a freshly registered host is schedulable at once.
 */
export class TaskQueuePollerLiveness implements HostLiveness {
  /** When a worker of the host was last seen: its last poll or its last heartbeat. */
  private readonly lastSeen = new Map<string, number>();
  /** When a poller last came to the host's queue (the sick rule: tasks waiting and no poll for them). */
  private readonly lastPolled = new Map<string, number>();
  private readonly known = new Set<string>();
  private readonly sick = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** Refreshes left before the bulk path is tried again, once the server refused it. */
  private bulkBackoff = 0;
  /** The last refresh's path and call counts. */
  lastRefresh: LivenessRefreshStats | undefined;

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

  /**
   * A host that reads down (sick, or not seen within the window) looked at again now with its own
   * DescribeTaskQueue: the last refresh's verdict is up to one refresh interval old, and a worker
   * restarted since (killed, and its queue's tasks waiting until it came back: sick) polls again already.
   * Then up again at once; a host still silent stays down. Nothing for a host that reads up.
   */
  async recheck(host: string): Promise<void> {
    if (this.isUp(host)) return;
    await this.describe(host, { path: 'per-host', hosts: 1, listWorkersCalls: 0, describeCalls: 0 });
  }

  async refresh(): Promise<void> {
    const hosts = await this.hosts();
    const stats: LivenessRefreshStats = {
      path: 'per-host',
      hosts: hosts.length,
      listWorkersCalls: 0,
      describeCalls: 0,
    };
    const beats = await this.listHeartbeats(stats);
    let suspects = hosts;
    if (beats) {
      stats.path = 'bulk';
      const now = this.now();
      suspects = [];
      for (const host of hosts) {
        const beat = beats.get(host);
        if (beat) this.lastSeen.set(host, Math.max(this.lastSeen.get(host) ?? 0, beat.heartbeatMs));
        if (beat && beat.keepsUp && now - beat.heartbeatMs <= this.sickAfterMs) {
          this.sick.delete(host);
          this.known.add(host);
          continue;
        }
        // Already down, its heartbeat (if listed) as old: nothing a describe could add but a worker that
        // polls without heartbeating, which this project does not run. A fresh heartbeat brings it back.
        const seen = this.lastSeen.get(host);
        const down = this.known.has(host) && (seen === undefined || now - seen > this.downAfterMs);
        if (down) {
          this.sick.delete(host);
          continue;
        }
        suspects.push(host);
      }
    }
    await forEachBounded(suspects, DESCRIBE_CONCURRENCY, (host) => this.describe(host, stats));
    this.lastRefresh = stats;
  }

  /**
   * Every running worker's heartbeat by host, from ListWorkers (all pages); undefined when the server
   * has no worker heartbeats (ListWorkers refused, or nothing listed with a heartbeat).
   */
  private async listHeartbeats(stats: LivenessRefreshStats): Promise<Map<string, HostBeat> | undefined> {
    if (this.bulkBackoff > 0) {
      this.bulkBackoff--;
      return undefined;
    }
    const service = this.connection.workflowService as Partial<Connection['workflowService']>;
    if (typeof service.listWorkers !== 'function') return undefined;
    const beats = new Map<string, HostBeat>();
    let listed = 0;
    let pageToken: Uint8Array | undefined;
    try {
      do {
        stats.listWorkersCalls++;
        const res = await service.listWorkers.call(this.connection.workflowService, {
          namespace: this.namespace,
          pageSize: LIST_WORKERS_PAGE,
          nextPageToken: pageToken,
        });
        for (const info of res.workersInfo ?? []) {
          const hb = info.workerHeartbeat;
          if (!hb?.heartbeatTime) continue;
          listed++;
          const host = hostOfQueue(hb.taskQueue ?? '');
          if (host === undefined || hb.status !== WORKER_STATUS_RUNNING) continue;
          const heartbeatMs = timestampMs(hb.heartbeatTime);
          const slots = hb.activityTaskSlotsInfo?.currentAvailableSlots ?? 0;
          const lastPollMs = timestampMs(hb.activityPollerInfo?.lastSuccessfulPollTime);
          const keepsUp = slots > 0 || heartbeatMs - lastPollMs <= this.sickAfterMs;
          const prev = beats.get(host);
          if (!prev || heartbeatMs > prev.heartbeatMs) beats.set(host, { heartbeatMs, keepsUp });
        }
        pageToken = res.nextPageToken && res.nextPageToken.length > 0 ? res.nextPageToken : undefined;
      } while (pageToken);
    } catch (err) {
      if (isUnsupported(err)) {
        this.bulkBackoff = BULK_RETRY_REFRESHES;
        return undefined;
      }
      throw err;
    }
    if (listed === 0) {
      // No heartbeats at all: a server without them, or one that has just restarted; look per host.
      return undefined;
    }
    return beats;
  }

  private async describe(host: string, stats: LivenessRefreshStats): Promise<void> {
    stats.describeCalls++;
    const res = await this.connection.workflowService.describeTaskQueue({
      namespace: this.namespace,
      taskQueue: { name: computeTaskQueue(host) },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      reportStats: true,
    });
    let latest = this.lastPolled.get(host) ?? 0;
    for (const poller of res.pollers ?? []) latest = Math.max(latest, timestampMs(poller.lastAccessTime));
    if (latest > 0) {
      this.lastPolled.set(host, latest);
      this.lastSeen.set(host, Math.max(this.lastSeen.get(host) ?? 0, latest));
    }
    const backlog = Number(res.stats?.approximateBacklogCount?.toString() ?? 0);
    const backlogAgeMs = durationMs(res.stats?.approximateBacklogAge);
    const now = this.now();
    if (backlog > 0 && backlogAgeMs > this.sickAfterMs && now - latest > this.sickAfterMs) this.sick.add(host);
    else this.sick.delete(host);
    this.known.add(host);
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

/** Refreshes on the per-host path before a server that refused ListWorkers is asked again. */
export const BULK_RETRY_REFRESHES = 12;

/** `compute-<host>` -> host; undefined for any other queue. */
function hostOfQueue(queue: string): string | undefined {
  const prefix = computeTaskQueue('');
  return queue.startsWith(prefix) && queue.length > prefix.length ? queue.slice(prefix.length) : undefined;
}

/** gRPC UNIMPLEMENTED (12) or a server that has the call switched off (FAILED_PRECONDITION 9, PERMISSION_DENIED 7). */
function isUnsupported(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 12 || code === 9 || code === 7;
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
