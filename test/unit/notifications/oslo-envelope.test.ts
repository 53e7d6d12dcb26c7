import { describe, expect, it } from 'vitest';

import {
  checkAmqpUrl,
  encodeNotification,
  NotificationInvalid,
  NotificationTransportConfigError,
  OSLO_PUBLISH_PROPERTIES,
  osloTimestamp,
  type WireNotification,
} from '../../../src/workers/notifications/oslo-envelope';

const base: WireNotification = {
  messageId: '6cdcd831-de16-415e-8b80-53e824299b52',
  eventType: 'instance.create.start',
  priority: 'INFO',
  publisherId: 'nova-conductor:host1',
  timestamp: '2026-12-06 17:31:33.916000',
  payload: { 'nova_object.name': 'InstanceCreatePayload', 'nova_object.data': { uuid: 'u1' } },
};

describe('the oslo.messaging 2.0 envelope', () => {
  it("prints timestamps as oslo's str(timeutils.utcnow()): UTC, microseconds, none when they are 0", () => {
    expect(osloTimestamp(new Date('2026-12-06T17:31:33.916Z'))).toBe('2026-12-06 17:31:33.916000');
    expect(osloTimestamp(new Date('2026-12-06T17:31:33.005Z'))).toBe('2026-12-06 17:31:33.005000');
    expect(osloTimestamp(new Date('2026-12-06T17:31:33.000Z'))).toBe('2026-12-06 17:31:33');
  });

  it('wraps the message as a JSON string under oslo.message, with oslo.version 2.0 and the routing key by priority', () => {
    const encoded = encodeNotification(base, 'versioned_notifications');
    expect(encoded.routingKey).toBe('versioned_notifications.info');
    const envelope = JSON.parse(encoded.body.toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(envelope)).toEqual(['oslo.version', 'oslo.message']);
    expect(envelope['oslo.version']).toBe('2.0');
    const message = JSON.parse(envelope['oslo.message'] as string) as Record<string, unknown>;
    expect(Object.keys(message)).toEqual([
      'message_id',
      'publisher_id',
      'event_type',
      'priority',
      'payload',
      'timestamp',
      '_unique_id',
    ]);
    expect(message).toMatchObject({
      message_id: base.messageId,
      publisher_id: 'nova-conductor:host1',
      event_type: 'instance.create.start',
      priority: 'INFO',
      payload: base.payload,
      timestamp: '2026-12-06 17:31:33.916000',
    });
    expect(message._unique_id).toMatch(/^[0-9a-f]{32}$/);
    expect(encodeNotification({ ...base, priority: 'ERROR' }, 'versioned_notifications').routingKey).toBe(
      'versioned_notifications.error'
    );
    expect(OSLO_PUBLISH_PROPERTIES).toEqual({
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      deliveryMode: 2,
      priority: 0,
      headers: {},
    });
  });

  it('packs the request context as _context_<key> entries, as oslo does', () => {
    const encoded = encodeNotification({ ...base, context: { request_id: 'req-1', is_admin: true } }, 'vn');
    const message = JSON.parse(
      (JSON.parse(encoded.body.toString()) as { 'oslo.message': string })['oslo.message']
    ) as Record<string, unknown>;
    expect(message).toMatchObject({ _context_request_id: 'req-1', _context_is_admin: true });
  });

  it('refuses a notification oslo would not send, naming it and the field', () => {
    expect(() => encodeNotification({ ...base, timestamp: '2026-12-06T17:31:33Z' }, 'vn')).toThrow(NotificationInvalid);
    expect(() => encodeNotification({ ...base, priority: 'WARN' as 'INFO' }, 'vn')).toThrow(
      `notification ${base.messageId} is not sendable: priority`
    );
    expect(() => encodeNotification({ ...base, eventType: 'Instance Create' }, 'vn')).toThrow(/eventType/);
  });
});

describe('NOTIFICATION_URL', () => {
  it('takes amqp:// and amqps://, and shows them without the password', () => {
    expect(checkAmqpUrl('amqp://nova:s3cret@rabbit.example:5672/openstack')).toEqual({
      shown: 'amqp://nova@rabbit.example:5672/openstack',
    });
    expect(checkAmqpUrl('amqps://nova:s3cret@rabbit.example/?cacertfile=/etc/ca.pem').shown).toBe(
      'amqps://nova@rabbit.example/'
    );
  });

  it('refuses another scheme or no URL at all, without printing the password', () => {
    expect(() => checkAmqpUrl('rabbit://nova:s3cret@rabbit.example:5672/')).toThrow(NotificationTransportConfigError);
    expect(() => checkAmqpUrl('rabbit://nova:s3cret@rabbit.example:5672/')).toThrow(
      "NOTIFICATION_URL rabbit://nova@rabbit.example:5672/: the scheme must be amqp:// or amqps:// (RabbitMQ), not rabbit: (oslo's rabbit://user:password@host:port/ is amqp:// here)"
    );
    expect(() => checkAmqpUrl('nova:s3cret@rabbit')).toThrow('NOTIFICATION_URL nova:…: the scheme must be');
    expect(() => checkAmqpUrl('rabbit.example')).toThrow(/is not a URL/);
    expect(() => checkAmqpUrl('//nova:s3cret@rabbit')).toThrow(
      'NOTIFICATION_URL is not a URL (expected amqp://user:password@host:5672/vhost): "//nova@rabbit"'
    );
  });
});
