/**
 * What the notification relay hands a transport: a notification as oslo.messaging's notifier sends it.
 * A transport publishes a batch in order and resolves only once the broker confirmed every message;
 * anything else rejects, and the relay keeps the batch for its next try.
 */
import type { NotificationPriority, VersionedObject } from '../../domain/notifications';
import type { OutboxEntry } from '../../store/notification-outbox';

export interface WireNotification {
  /** Consumers drop duplicates on it (delivery is at least once). */
  messageId: string;
  eventType: string;
  priority: NotificationPriority;
  publisherId: string;
  /** As oslo.messaging prints it: `YYYY-MM-DD HH:MM:SS.ffffff`, UTC. */
  timestamp: string;
  payload: VersionedObject;
}

export interface NotificationTransport {
  publish(batch: readonly WireNotification[]): Promise<void>;
  close(): Promise<void>;
}

/** oslo.messaging's timestamp (timeutils.utcnow() printed by str()): microseconds, no zone. */
export function osloTimestamp(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}000`
  );
}

export function toWire(entry: OutboxEntry): WireNotification {
  return {
    messageId: entry.messageId,
    eventType: entry.eventType,
    priority: entry.priority,
    publisherId: entry.publisherId,
    timestamp: osloTimestamp(entry.timestamp),
    payload: entry.payload,
  };
}
