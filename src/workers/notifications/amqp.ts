/**
 * The RabbitMQ notification transport: publishes notifications exactly as oslo.messaging's notifier does
 * with the rabbit driver and its default options (oslo.messaging 18.3.1, `_drivers/impl_rabbit.py`
 * `notify_send` and `_publish_and_creates_default_queue`), so an unmodified oslo.messaging notification
 * listener receives them (test/notifications/oslo_listener.py; docs/notifications.md):
 *
 * - exchange `nova` (Nova's control_exchange), type topic, durable and auto-delete as oslo's
 *   `amqp_durable_queues` and `amqp_auto_delete` (both false by default);
 * - before the first message of a routing key on a connection, the queue oslo's notifier declares so that
 *   nothing is lost before a listener exists: named as the routing key (`versioned_notifications.info`,
 *   `.error`), bound to the exchange with that key, durable and auto-delete as the exchange, no arguments:
 *   the queue an oslo listener without a pool consumes;
 * - the body and properties of oslo-envelope.ts.
 *
 * NOTE(nova): oslo's notifier publishes without publisher confirms, retrying a lost connection forever in
 * the notifying thread (`[oslo_messaging_notifications] retry = -1`), and a message the broker loses after
 * the write is lost; here `publish` resolves only when the broker has confirmed every message of the
 * batch, and rejects at once (NotificationBrokerUnavailable) when the broker cannot be reached, closes
 * the connection or the channel, nacks a message, or does not confirm in time: the outbox keeps the
 * batch and its relay retries.
 *
 * The next `publish` after a lost connection connects again (and declares again: a broker restart loses
 * a non-durable exchange and queue). Batches are published one after the other, in call order.
 */
import { once } from 'node:events';
import { setTimeout as pause } from 'node:timers/promises';

import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';

import {
  checkAmqpUrl,
  encodeNotification,
  NotificationTransportConfigError,
  OSLO_PUBLISH_PROPERTIES,
  type EncodedNotification,
  type WireNotification,
} from './oslo-envelope';

export { NotificationInvalid, NotificationTransportConfigError, osloTimestamp } from './oslo-envelope';
export type { WireNotification } from './oslo-envelope';

const CLOSE_WAIT_MS = 5_000;

export interface NotificationTransport {
  /** Resolves once the broker confirmed every notification of the batch; rejects with NotificationBrokerUnavailable. */
  publish(batch: readonly WireNotification[]): Promise<void>;
  close(): Promise<void>;
}

export interface AmqpTransportOptions {
  /** The exchange: oslo's `control_exchange`, which Nova sets to `nova`. */
  exchange?: string;
  /** The notification topic: Nova's `[notifications] versioned_notifications_topics`. */
  topic?: string;
  /** oslo's `amqp_durable_queues`: declare the exchange and queues durable. Default false, as oslo. */
  durable?: boolean;
  /** oslo's `amqp_auto_delete`. Default false, as oslo. */
  autoDelete?: boolean;
  /** Ms to wait for the TCP connection and the AMQP handshake. Default 10 000. */
  connectTimeoutMs?: number;
  /** Ms to wait for the confirms of one batch before giving the connection up. Default 30 000. */
  confirmTimeoutMs?: number;
  /** The connection name the broker shows (`rabbitmqctl list_connections client_properties`). */
  connectionName?: string;
}

export type BrokerFailure = 'unreachable' | 'refused' | 'closed' | 'nacked' | 'timeout';

/** The broker did not take the batch; nothing of it may be considered delivered. The caller retries later. */
export class NotificationBrokerUnavailable extends Error {
  override readonly name = 'NotificationBrokerUnavailable';
  constructor(
    /** The broker's URL without its password. */
    readonly url: string,
    readonly reason: BrokerFailure,
    detail: string,
    options?: { cause?: unknown }
  ) {
    super(`notification broker ${url}: ${detail}`, options);
  }
}

/**
 * A transport to the RabbitMQ at `url` (amqp:// or amqps://). Throws NotificationTransportConfigError for
 * a URL that is not one, and when the broker refuses the credentials or the virtual host at this first
 * connection; a broker that cannot be reached now is no error here: `publish` rejects until it can.
 */
export async function connectAmqp(url: string, options: AmqpTransportOptions = {}): Promise<NotificationTransport> {
  const { shown } = checkAmqpUrl(url);
  const transport = new AmqpNotificationTransport(url, shown, options);
  try {
    await transport.connectNow();
  } catch (err) {
    if (err instanceof NotificationBrokerUnavailable && err.reason === 'refused') {
      throw new NotificationTransportConfigError(
        `${err.message} (check NOTIFICATION_URL's user, password and virtual host, and the exchange's options)`,
        { cause: err }
      );
    }
    // unreachable now: the first publish tries again
  }
  return transport;
}

interface Connected {
  model: ChannelModel;
  channel: ConfirmChannel;
  /** Routing keys whose queue is declared and bound on this connection. */
  queues: Set<string>;
  state: {
    /** Why the connection or the channel went away, once it did. */
    lost?: Error;
    /** The broker's reason while it blocks publishers (a memory or disk alarm). */
    blocked?: string;
  };
}

class AmqpNotificationTransport implements NotificationTransport {
  private readonly exchange: string;
  private readonly topic: string;
  private readonly durable: boolean;
  private readonly autoDelete: boolean;
  private readonly connectTimeoutMs: number;
  private readonly confirmTimeoutMs: number;
  private readonly connectionName: string;
  private current: Connected | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly shown: string,
    options: AmqpTransportOptions
  ) {
    this.exchange = options.exchange ?? 'nova';
    this.topic = options.topic ?? 'versioned_notifications';
    this.durable = options.durable ?? false;
    this.autoDelete = options.autoDelete ?? false;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? 30_000;
    this.connectionName = options.connectionName ?? 'conductor-notifications';
  }

  publish(batch: readonly WireNotification[]): Promise<void> {
    // Bad input is refused before anything is sent.
    let encoded: EncodedNotification[];
    try {
      encoded = batch.map((n) => encodeNotification(n, this.topic));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.serially(() => this.publishNow(encoded));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.serially(() => this.drop());
  }

  /** Connects (if not connected) and declares the exchange. */
  connectNow(): Promise<void> {
    return this.serially(async () => {
      await this.connected();
    });
  }

  /** One operation at a time, in call order: batches reach the broker in the order they were published. */
  private serially<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.tail.then(operation);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async publishNow(batch: EncodedNotification[]): Promise<void> {
    if (this.closed) throw new Error('the notification transport is closed');
    if (batch.length === 0) return;
    const conn = await this.connected();
    try {
      for (const key of new Set(batch.map((m) => m.routingKey))) await this.declareQueue(conn, key);
      const confirms: Promise<void>[] = [];
      for (const message of batch) {
        if (conn.state.lost) throw conn.state.lost;
        let more = true;
        confirms.push(
          new Promise<void>((resolve, reject) => {
            more = conn.channel.publish(
              this.exchange,
              message.routingKey,
              message.body,
              { ...OSLO_PUBLISH_PROPERTIES, headers: {} },
              (err: unknown) => (err ? reject(asError(err, message.messageId)) : resolve())
            );
          })
        );
        if (!more) await this.drained(conn);
      }
      // Settle every confirm (no rejection left unhandled), then report the first failure.
      const settled = this.withinConfirmTimeout(conn, Promise.allSettled(confirms));
      const outcomes = await settled;
      const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failed.length > 0) throw this.failure(conn, failed[0]!.reason, failed.length, batch.length);
    } catch (err) {
      const failure = this.failure(conn, err, batch.length, batch.length);
      // A nack leaves the channel usable; anything else gives the connection up (the next publish reconnects).
      if (failure.reason !== 'nacked') await this.drop();
      throw failure;
    }
  }

  private async connected(): Promise<Connected> {
    if (this.current && !this.current.state.lost) return this.current;
    await this.drop();
    let model: ChannelModel;
    try {
      model = await connect(this.url, {
        timeout: this.connectTimeoutMs,
        clientProperties: { connection_name: this.connectionName },
      });
    } catch (err) {
      const refused = isRefusal(err);
      throw new NotificationBrokerUnavailable(
        this.shown,
        refused ? 'refused' : 'unreachable',
        `${refused ? 'refused the connection' : 'cannot be reached'}: ${describe(err)}`,
        { cause: err }
      );
    }
    const state: Connected['state'] = {};
    model.on('error', (err: Error) => (state.lost ??= err));
    model.on('close', (err?: Error) => (state.lost ??= err ?? new Error('the connection closed')));
    model.on('blocked', (reason: string) => (state.blocked = reason));
    model.on('unblocked', () => (state.blocked = undefined));
    let channel: ConfirmChannel;
    try {
      channel = await model.createConfirmChannel();
      channel.on('error', (err: Error) => (state.lost ??= err));
      channel.on('close', () => (state.lost ??= new Error('the channel closed')));
      await channel.assertExchange(this.exchange, 'topic', { durable: this.durable, autoDelete: this.autoDelete });
    } catch (err) {
      await model.close().catch(() => undefined);
      throw new NotificationBrokerUnavailable(
        this.shown,
        isRefusal(err) ? 'refused' : 'closed',
        `could not declare the topic exchange ${this.exchange} (durable ${this.durable}, auto-delete ` +
          `${this.autoDelete}): ${describe(err)}`,
        { cause: err }
      );
    }
    this.current = { model, channel, queues: new Set(), state };
    return this.current;
  }

  /** oslo's `_publish_and_creates_default_queue`: once per routing key and connection. */
  private async declareQueue(conn: Connected, key: string): Promise<void> {
    if (conn.queues.has(key)) return;
    await conn.channel.assertQueue(key, {
      durable: this.durable,
      autoDelete: this.autoDelete,
      exclusive: false,
      arguments: {},
    });
    await conn.channel.bindQueue(key, this.exchange, key);
    conn.queues.add(key);
  }

  private async drained(conn: Connected): Promise<void> {
    const gone = new AbortController();
    const onLost = (): void => gone.abort();
    conn.model.once('close', onLost);
    conn.channel.once('close', onLost);
    try {
      await once(conn.channel, 'drain', { signal: gone.signal });
    } catch {
      throw conn.state.lost ?? new Error('the connection closed while its buffer was full');
    } finally {
      conn.model.off('close', onLost);
      conn.channel.off('close', onLost);
    }
  }

  private async withinConfirmTimeout<T>(conn: Connected, confirms: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const blocked = conn.state.blocked ? ` (the broker blocks publishers: ${conn.state.blocked})` : '';
        reject(new ConfirmTimeout(`no confirm within ${this.confirmTimeoutMs} ms${blocked}`));
      }, this.confirmTimeoutMs);
    });
    try {
      return await Promise.race([confirms, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(conn: Connected, err: unknown, failed: number, total: number): NotificationBrokerUnavailable {
    if (err instanceof NotificationBrokerUnavailable) return err;
    if (err instanceof Nacked) {
      return new NotificationBrokerUnavailable(
        this.shown,
        'nacked',
        `refused ${failed} of ${total} notifications (nack; first: ${err.messageId})`,
        { cause: err }
      );
    }
    if (err instanceof ConfirmTimeout) {
      return new NotificationBrokerUnavailable(this.shown, 'timeout', err.message, { cause: err });
    }
    const cause = conn.state.lost ?? err;
    return new NotificationBrokerUnavailable(
      this.shown,
      isRefusal(cause) ? 'refused' : 'closed',
      `the connection or channel closed before ${total} notifications were confirmed: ${describe(cause)}`,
      { cause }
    );
  }

  /**
   * Closes the current connection, if any; never throws, and waits at most CLOSE_WAIT_MS for the broker's
   * close-ok (a broker that stopped answering must not hold the next publish).
   */
  private async drop(): Promise<void> {
    const conn = this.current;
    this.current = undefined;
    if (!conn) return;
    conn.state.lost ??= new Error('closed by the transport');
    await Promise.race([conn.model.close().catch(() => undefined), pause(CLOSE_WAIT_MS, undefined, { ref: false })]);
  }
}

class Nacked extends Error {
  constructor(readonly messageId: string) {
    super(`the broker nacked notification ${messageId}`);
  }
}

class ConfirmTimeout extends Error {}

function asError(err: unknown, messageId: string): Error {
  if (err instanceof Error && err.message === 'message nacked') return new Nacked(messageId);
  return err instanceof Error ? err : new Error(String(err));
}

/** An AMQP refusal: access refused (403), virtual host not allowed (530), precondition failed (406). */
function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 403 || code === 530 || code === 406) return true;
  const message = err instanceof Error ? err.message : '';
  return /ACCESS[-_]REFUSED|NOT[-_]ALLOWED|PRECONDITION[-_]FAILED/.test(message);
}

function describe(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map(describe).join('; ');
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
