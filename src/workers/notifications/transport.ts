/**
 * From an outbox row to what a transport sends (src/workers/notifications/oslo-envelope.ts): the
 * notification as oslo.messaging's notifier sends it, with its own message id and oslo's timestamp.
 */
import type { OutboxEntry } from '../../store/notification-outbox';
import type { NotificationTransport } from './amqp';
import type { WireNotification } from './oslo-envelope';
import { osloTimestamp } from './oslo-envelope';

export type { NotificationTransport, WireNotification };

export function toWire(entry: OutboxEntry): WireNotification {
  return {
    messageId: entry.messageId,
    eventType: entry.eventType,
    priority: entry.priority,
    publisherId: entry.publisherId,
    timestamp: osloTimestamp(new Date(entry.timestamp)),
    payload: entry.payload as unknown as Record<string, unknown>,
  };
}
