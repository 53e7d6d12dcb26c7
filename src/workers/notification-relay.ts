/**
 * The notification relay's process (docs/notifications.md): delivers the store's notification outbox to
 * NOTIFICATION_URL (RabbitMQ, as oslo.messaging's notifier) in commit order, at least once, and marks
 * what the broker confirmed. `npm start` and `make cluster` run it when NOTIFICATION_URL is set; it may be
 * killed at any point: the next start delivers what was not marked (duplicates keep their message_id).
 * A bad NOTIFICATION_URL (not amqp:// or amqps://, credentials or vhost refused) stops it at start with
 * exit status 2; a broker that is down only holds the outbox until it returns.
 */
import { hostname } from 'node:os';

import { openMigratedStoreWhenReady } from '../store/db';
import { createNotificationOutbox } from '../store/notification-outbox';
import { loadEnv, sqlitePath } from './config';
import { connectAmqp, NotificationTransportConfigError } from './notifications/amqp';
import { NotificationRelay } from './notifications/relay';

function log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ ts: new Date().toISOString(), level, process: 'notification-relay', msg, ...fields });
  (level === 'info' ? process.stdout : process.stderr).write(`${line}\n`);
}

async function main(): Promise<void> {
  const env = loadEnv();
  const url = env.NOTIFICATION_URL;
  if (url === undefined) {
    log('error', 'NOTIFICATION_URL is not set: nothing to relay to (notifications stay in the store)');
    process.exit(2);
  }
  let transport;
  try {
    transport = await connectAmqp(url, { durable: env.NOTIFICATION_DURABLE === 'true' });
  } catch (err) {
    if (err instanceof NotificationTransportConfigError) {
      log('error', err.message);
      process.exit(2);
    }
    throw err;
  }
  const store = await openMigratedStoreWhenReady({
    databaseUrl: env.DATABASE_URL,
    sqlitePath: sqlitePath(env),
    poolSize: 2,
  });
  const relay = new NotificationRelay({
    outbox: createNotificationOutbox(store),
    transport,
    retentionDays: env.NOTIFICATION_RETENTION_DAYS,
    log,
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => relay.stop());
  log('info', 'relaying notifications', { host: hostname(), store: env.DATABASE_URL ? 'postgresql' : 'sqlite' });
  await relay.run();
  await transport.close();
  await store.close();
  log('info', 'stopped', { delivered: relay.stats.delivered });
}

main().catch((err: unknown) => {
  log('error', (err as Error).stack ?? String(err));
  process.exit(1);
});
