/**
 * A notification on the wire as oslo.messaging's notifier sends it (oslo.messaging 18.3.1,
 * `oslo_messaging/notify/notifier.py` `_notify`, `notify/messaging.py` `MessagingV2Driver`, and the rabbit
 * driver `_drivers/amqpdriver.py` `_send` → `_drivers/common.py` `serialize_msg`):
 *
 * - the message: `{message_id, publisher_id, event_type, priority, payload, timestamp}` (priority upper
 *   case, timestamp `str(timeutils.utcnow())`), then `_unique_id` (a fresh uuid hex per send), then the
 *   request context as `_context_<key>` entries (oslo sends none for a plain dict context);
 * - the 2.0 envelope: `{"oslo.version": "2.0", "oslo.message": "<that message as a JSON string>"}`;
 * - routed on the exchange with the key `<topic>.<priority lower case>`, as kombu publishes a dict:
 *   `application/json`, `utf-8`, delivery mode 2 (persistent), priority 0, no headers.
 *
 * The JSON is JavaScript's (`JSON.stringify`), not Python's `json.dumps` (which puts a space after `,` and
 * `:` and escapes non-ASCII): the same values, what every consumer decodes.
 */
import { randomUUID } from 'node:crypto';

import { z } from 'zod';

export interface WireNotification {
  /** uuid, oslo's message_id (consumers drop duplicates on it). */
  messageId: string;
  /** e.g. 'instance.create.start'. */
  eventType: string;
  priority: 'INFO' | 'ERROR';
  /** e.g. 'nova-conductor:host1' / 'nova-compute:host1'. */
  publisherId: string;
  /** As oslo prints it: 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, no zone; no fraction when it is 0): osloTimestamp(). */
  timestamp: string;
  /** The versioned payload: {nova_object.name, .namespace, .version, .data}. */
  payload: Record<string, unknown>;
  /** The request context, sent as `_context_<key>` entries as oslo packs Nova's (redacted) RequestContext. */
  context?: Record<string, unknown>;
}

/** A notification the transport will not send; the message names it and what is wrong. */
export class NotificationInvalid extends Error {
  override readonly name = 'NotificationInvalid';
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$/;

const wireNotificationSchema = z.object({
  messageId: z.uuid(),
  eventType: z.string().regex(/^[a-z0-9_]+(\.[a-z0-9_]+)*$/, 'dotted lower-case words, e.g. instance.create.start'),
  priority: z.enum(['INFO', 'ERROR']),
  publisherId: z.string().min(1),
  timestamp: z.string().regex(TIMESTAMP, "oslo's 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)"),
  payload: z.record(z.string(), z.unknown()),
  context: z.record(z.string(), z.unknown()).optional(),
});

/** What oslo prints for `str(timeutils.utcnow())`: Python's `str(datetime)` of a naive UTC time. */
export function osloTimestamp(at: Date): string {
  const iso = at.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const seconds = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  const ms = at.getUTCMilliseconds();
  return ms === 0 ? seconds : `${seconds}.${String(ms * 1000).padStart(6, '0')}`;
}

/** The routing key (and the name of the queue the notifier declares) for a priority on a topic. */
export function routingKey(topic: string, priority: WireNotification['priority']): string {
  return `${topic}.${priority.toLowerCase()}`;
}

export interface EncodedNotification {
  messageId: string;
  routingKey: string;
  body: Buffer;
}

/** The AMQP message properties kombu gives a JSON-serialized dict (what oslo publishes). */
export const OSLO_PUBLISH_PROPERTIES = {
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  deliveryMode: 2,
  priority: 0,
  headers: {},
} as const;

/**
 * The body of one notification: the oslo.messaging 2.0 envelope around the message. Throws
 * NotificationInvalid (naming the message id) for a notification oslo would not have sent.
 */
export function encodeNotification(notification: WireNotification, topic: string): EncodedNotification {
  const parsed = wireNotificationSchema.safeParse(notification);
  if (!parsed.success) {
    const id = typeof notification?.messageId === 'string' ? notification.messageId : '(no messageId)';
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(notification)'}: ${i.message}`);
    throw new NotificationInvalid(`notification ${id} is not sendable: ${problems.join('; ')}`);
  }
  const n = parsed.data;
  const message: Record<string, unknown> = {
    message_id: n.messageId,
    publisher_id: n.publisherId,
    event_type: n.eventType,
    priority: n.priority,
    payload: n.payload,
    timestamp: n.timestamp,
    _unique_id: randomUUID().replaceAll('-', ''),
  };
  for (const [key, value] of Object.entries(n.context ?? {})) message[`_context_${key}`] = value;
  const envelope = { 'oslo.version': '2.0', 'oslo.message': JSON.stringify(message) };
  return {
    messageId: n.messageId,
    routingKey: routingKey(topic, n.priority),
    body: Buffer.from(JSON.stringify(envelope)),
  };
}

/** Bad transport configuration: the message says what and how to fix it. */
export class NotificationTransportConfigError extends Error {
  override readonly name = 'NotificationTransportConfigError';
}

/**
 * Checks a NOTIFICATION_URL for RabbitMQ: `amqp://` or `amqps://`, a host. Returns the URL as it may be
 * shown (no password). Throws NotificationTransportConfigError.
 */
export function checkAmqpUrl(url: string): { shown: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new NotificationTransportConfigError(
      `NOTIFICATION_URL is not a URL (expected amqp://user:password@host:5672/vhost): ${JSON.stringify(redact(url))}`
    );
  }
  if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
    // Only a URL with an authority has a password we can take out: show the others by their scheme alone.
    const shown = parsed.host ? safeUrl(parsed) : `${parsed.protocol}…`;
    throw new NotificationTransportConfigError(
      `NOTIFICATION_URL ${shown}: the scheme must be amqp:// or amqps:// (RabbitMQ), not ${parsed.protocol}` +
        (parsed.protocol === 'rabbit:' ? " (oslo's rabbit://user:password@host:port/ is amqp:// here)" : '')
    );
  }
  const shown = safeUrl(parsed);
  if (!parsed.hostname) throw new NotificationTransportConfigError(`NOTIFICATION_URL ${shown}: no host`);
  return { shown };
}

/** The URL without its password (and without its query string, which may carry TLS file names). */
function safeUrl(parsed: URL): string {
  const copy = new URL(parsed.href);
  copy.password = '';
  copy.search = '';
  return copy.href;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1@');
}
