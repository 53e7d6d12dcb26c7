/**
 * The RabbitMQ notification transport against a real broker (Debian's rabbitmq-server, private, on
 * loopback) and an unmodified oslo.messaging notification listener (pinned, from PyPI): what Nova's
 * consumers run. One broker and one data dir for the whole file: the tests run in order.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import {
  connectAmqp,
  NotificationBrokerUnavailable,
  NotificationInvalid,
  NotificationTransportConfigError,
  osloTimestamp,
  type NotificationTransport,
  type WireNotification,
} from '../../src/workers/notifications/amqp';
import {
  rabbitmqTestsMissing,
  startBroker,
  startOsloListener,
  type Broker,
  type OsloListener,
  type Received,
} from '../helpers/rabbitmq';

const missing = rabbitmqTestsMissing();
if (missing) throw new Error(`test/notifications/amqp.test.ts: ${missing}`);

let dir: string;
let broker: Broker;
let transport: NotificationTransport;
const listeners: OsloListener[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'amqp-test-'));
  broker = await startBroker(path.join(dir, 'broker'));
  console.info(`rabbitmq started in ${broker.lastStartSeconds} s`);
  transport = await connectAmqp(broker.url);
});

afterAll(async () => {
  await transport?.close();
  for (const listener of listeners) await listener.stop();
  await broker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function listen(): Promise<OsloListener> {
  const listener = await startOsloListener(broker.osloUrl);
  listeners.push(listener);
  return listener;
}

let seq = 0;
/** A notification shaped as Nova's (a versioned payload), each one distinct. */
function notification(priority: 'INFO' | 'ERROR', extra: Partial<WireNotification> = {}): WireNotification {
  seq += 1;
  const uuid = randomUUID();
  return {
    messageId: randomUUID(),
    eventType: priority === 'ERROR' ? 'compute.exception' : `instance.power_on.${seq % 2 ? 'start' : 'end'}`,
    priority,
    publisherId: priority === 'ERROR' ? 'nova-compute:host1' : 'nova-conductor:host1',
    timestamp: osloTimestamp(new Date(Date.UTC(2026, 11, 6, 12, 0, 0, seq % 1000))),
    payload: {
      'nova_object.name': priority === 'ERROR' ? 'ExceptionPayload' : 'InstanceActionPayload',
      'nova_object.namespace': 'nova',
      'nova_object.version': '1.8',
      'nova_object.data': {
        uuid,
        seq,
        display_name: `vm-${seq} é ✓`,
        host: null,
        flavor: { 'nova_object.name': 'FlavorPayload', 'nova_object.data': { memory_mb: 512, vcpus: 1 } },
        tags: ['a', 'b'],
      },
    },
    ...extra,
  };
}

/** What the listener must have printed for `sent`: oslo lower-cases the priority for the endpoint. */
function expected(sent: WireNotification): Received {
  return {
    priority: sent.priority.toLowerCase(),
    event_type: sent.eventType,
    publisher_id: sent.publisherId,
    payload: sent.payload,
    metadata: { message_id: sent.messageId, timestamp: sent.timestamp },
    ctxt: expect.any(Object) as Record<string, unknown>,
  };
}

/**
 * oslo routes each priority to its own queue (`versioned_notifications.info`, `.error`): the order holds
 * per priority, as for Nova's own notifications.
 */
function perPriority<T extends { priority: string }>(items: T[]): Record<string, T[]> {
  const out: Record<string, T[]> = {};
  for (const item of items) (out[item.priority.toLowerCase()] ??= []).push(item);
  return out;
}

async function receivedAll(listener: OsloListener, ids: string[]): Promise<void> {
  await vi.waitFor(
    () => {
      const got = new Set(listener.received.map((r) => r.metadata.message_id));
      const lacking = ids.filter((id) => !got.has(id));
      if (lacking.length) throw new Error(`${lacking.length} of ${ids.length} not received yet\n${listener.log()}`);
    },
    { timeout: 60_000, interval: 100 }
  );
}

describe('the RabbitMQ transport, received by an unmodified oslo.messaging listener', () => {
  it('delivers batches, each notification once, in order per priority, with the envelope as sent', async () => {
    const listener = await listen();
    const batches = Array.from({ length: 5 }, () =>
      Array.from({ length: 100 }, (_, i) => notification(i % 7 === 3 ? 'ERROR' : 'INFO'))
    );
    batches[0]![0] = { ...batches[0]![0]!, context: { request_id: 'req-0f1e', project_id: 'p1', user_id: 'u1' } };
    const latencies: number[] = [];
    for (const batch of batches) {
      const began = performance.now();
      await transport.publish(batch);
      latencies.push(performance.now() - began);
    }
    console.info(`publish of 100 with confirms: ${latencies.map((ms) => ms.toFixed(1)).join(', ')} ms`);
    const sent = batches.flat();
    await receivedAll(
      listener,
      sent.map((n) => n.messageId)
    );

    expect(listener.received).toHaveLength(sent.length);
    const got = perPriority(listener.received);
    const want = perPriority(sent);
    expect(Object.keys(got).sort()).toEqual(['error', 'info']);
    for (const priority of ['info', 'error']) {
      expect(got[priority]).toEqual(want[priority]!.map(expected));
    }
    // The request context arrives as oslo unpacks it (`_context_<key>`).
    const first = listener.received.find((r) => r.metadata.message_id === sent[0]!.messageId)!;
    expect(first.ctxt).toMatchObject({ request_id: 'req-0f1e', project_id: 'p1', user_id: 'u1' });
  });

  it("declares what oslo's notifier declares: the topic exchange nova and one queue per priority", async () => {
    const exchanges = await broker.ctl('list_exchanges', 'name', 'type', 'durable', 'auto_delete');
    expect(exchanges).toMatch(/^nova\ttopic\tfalse\tfalse$/m);
    const bindings = await broker.ctl('list_bindings', 'source_name', 'destination_name', 'routing_key');
    for (const key of ['versioned_notifications.info', 'versioned_notifications.error']) {
      expect(bindings).toContain(`nova\t${key}\t${key}`);
    }
  });

  it('refuses bad input and bad configuration with typed errors, sending nothing', async () => {
    await expect(transport.publish([notification('INFO', { timestamp: '2026-12-06T12:00:00Z' })])).rejects.toThrow(
      NotificationInvalid
    );
    await expect(transport.publish([notification('INFO', { messageId: 'not-a-uuid' })])).rejects.toThrow(
      /notification not-a-uuid is not sendable: messageId/
    );
    await expect(connectAmqp('http://127.0.0.1:5672/')).rejects.toThrow(NotificationTransportConfigError);
    await expect(connectAmqp('rabbit://guest:secret@127.0.0.1:5672/')).rejects.toThrow(/amqp:\/\/ or amqps:\/\//);
    const wrong = connectAmqp(`amqp://guest:wrong-password@127.0.0.1:${broker.port}/`);
    await expect(wrong).rejects.toThrow(NotificationTransportConfigError);
    await expect(wrong).rejects.toThrow(/ACCESS.REFUSED/);
    await expect(wrong).rejects.not.toThrow(/wrong-password/);
  });

  it('rejects a batch the broker nacks (reason nacked), and the next batch goes through', async () => {
    await broker.ctl(
      'set_policy',
      'refuse-errors',
      '^versioned_notifications\\.error$',
      '{"max-length":0,"overflow":"reject-publish"}',
      '--apply-to',
      'queues'
    );
    await vi.waitFor(async () => expect(await broker.ctl('list_queues', 'name', 'policy')).toContain('refuse-errors'), {
      timeout: 10_000,
    });
    const refused = [notification('INFO'), notification('ERROR')];
    const error = await transport.publish(refused).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(NotificationBrokerUnavailable);
    expect(error).toMatchObject({ reason: 'nacked' });
    expect((error as Error).message).toContain(`refused 1 of 2 notifications (nack; first: ${refused[1]!.messageId})`);

    await broker.ctl('clear_policy', 'refuse-errors');
    await vi.waitFor(
      async () => expect(await broker.ctl('list_queues', 'name', 'policy')).not.toContain('refuse-errors'),
      { timeout: 10_000 }
    );
    const retried = [notification('ERROR')];
    await transport.publish(retried);
    await receivedAll(
      listeners[0]!,
      retried.map((n) => n.messageId)
    );
  });

  it('rejects a batch the broker does not confirm in time (a memory alarm blocks publishers), then goes on', async () => {
    const blocked = await connectAmqp(broker.url, { confirmTimeoutMs: 2_000 });
    try {
      await broker.ctl('set_vm_memory_high_watermark', '0');
      const error = await blocked.publish([notification('INFO')]).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(NotificationBrokerUnavailable);
      expect(error).toMatchObject({ reason: 'timeout' });
      expect((error as Error).message).toMatch(/no confirm within 2000 ms \(the broker blocks publishers: .+\)/);

      await broker.ctl('set_vm_memory_high_watermark', '0.4');
      const after = [notification('INFO')];
      await vi.waitFor(() => blocked.publish(after), { timeout: 20_000, interval: 500 });
      await receivedAll(
        listeners[0]!,
        after.map((n) => n.messageId)
      );
    } finally {
      await broker.ctl('set_vm_memory_high_watermark', '0.4');
      await blocked.close();
    }
  });

  it('rejects with NotificationBrokerUnavailable while the broker is down, naming the URL without its password', async () => {
    await listeners[0]!.stop();
    await broker.stop();
    const down = await transport.publish([notification('INFO')]).catch((err: unknown) => err);
    expect(down).toBeInstanceOf(NotificationBrokerUnavailable);
    expect((down as Error).message).toContain(`notification broker amqp://guest@127.0.0.1:${broker.port}/`);
    expect((down as Error).message).not.toContain('guest:guest');
    // Still down: the next attempt reconnects and fails the same way.
    const again = await transport.publish([notification('INFO')]).catch((err: unknown) => err);
    expect(again).toMatchObject({ name: 'NotificationBrokerUnavailable', reason: 'unreachable' });
  });

  it('after a restart on the same data dir, publishes again; a listener started later receives it all', async () => {
    await broker.start();
    console.info(`rabbitmq restarted in ${broker.lastStartSeconds} s`);
    const sent = Array.from({ length: 20 }, (_, i) => notification(i % 4 === 0 ? 'ERROR' : 'INFO'));
    await transport.publish(sent.slice(0, 10));
    await transport.publish(sent.slice(10));
    const queued = await broker.ctl('list_queues', 'name', 'messages');
    expect(queued).toMatch(/^versioned_notifications\.info\t15$/m);
    expect(queued).toMatch(/^versioned_notifications\.error\t5$/m);

    const listener = await listen();
    await receivedAll(
      listener,
      sent.map((n) => n.messageId)
    );
    expect(listener.received).toHaveLength(sent.length);
    const got = perPriority(listener.received);
    const want = perPriority(sent);
    for (const priority of ['info', 'error']) expect(got[priority]).toEqual(want[priority]!.map(expected));
  });
});
