/**
 * `notifications [--instance X] [--after SEQ] [--limit N] [--follow] [--prune]`: the versioned
 * notifications of the outbox (docs/notifications.md), oldest first, as a table or, with --json, one
 * Nova-shaped JSON object per line (event_type, priority, publisher_id, timestamp, message_id, payload).
 * --follow keeps printing new ones until Ctrl-C. --prune deletes those older than the retention
 * (NOTIFICATION_RETENTION_DAYS): every one without a relay (NOTIFICATION_URL unset), else the delivered.
 */
import { setInterval } from 'node:timers/promises';

import type { Command } from 'commander';

import type { OutboxEntry } from '../../store/notification-outbox';
import { createNotificationOutbox } from '../../store/notification-outbox';
import { EXIT_OK, resolveInstance, store, UsageError } from '../context';
import type { Context, Run } from '../context';
import { table } from '../table';

interface NotificationsOptions {
  instance?: string;
  after?: string;
  limit?: string;
  follow?: boolean;
  prune?: boolean;
}

/** The notification as a consumer of Nova's sees it (oslo.messaging's message, plus our seq). */
function wire(n: OutboxEntry) {
  return {
    seq: n.seq,
    message_id: n.messageId,
    event_type: n.eventType,
    priority: n.priority,
    publisher_id: n.publisherId,
    timestamp: n.timestamp,
    delivered_at: n.deliveredAt,
    payload: n.payload,
  };
}

function print(ctx: Context, entries: readonly OutboxEntry[], header: boolean): void {
  if (ctx.json) {
    for (const n of entries) console.log(JSON.stringify(wire(n)));
    return;
  }
  if (entries.length === 0 && !header) return;
  const rows = entries.map((n) => [
    String(n.seq),
    n.timestamp,
    n.eventType,
    n.priority,
    n.publisherId,
    n.instanceId ?? '',
    n.deliveredAt ? 'delivered' : 'pending',
  ]);
  const text = table(['SEQ', 'TIME', 'EVENT', 'PRIORITY', 'PUBLISHER', 'INSTANCE', 'DELIVERY'], rows);
  console.log(header ? text : text.split('\n').slice(1).join('\n'));
}

function count(value: string | undefined, option: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${option} must be a whole number, not '${value}'`);
  return n;
}

async function notifications(ctx: Context, o: NotificationsOptions): Promise<number> {
  const outbox = createNotificationOutbox(await store(ctx));
  if (o.prune) {
    const days = ctx.env.NOTIFICATION_RETENTION_DAYS;
    const before = new Date(Date.now() - days * 86_400_000).toISOString();
    const relay = ctx.env.NOTIFICATION_URL !== undefined;
    const pruned = await outbox.prune(before, { undeliveredToo: !relay });
    if (ctx.json) console.log(JSON.stringify({ pruned, before }));
    else console.log(`pruned ${pruned} notification(s) older than ${days} day(s)${relay ? ' (delivered ones)' : ''}`);
    return EXIT_OK;
  }
  const instanceId = o.instance ? (await resolveInstance(ctx, o.instance)).instanceId : undefined;
  let after = count(o.after, 'after', 0);
  const limit = count(o.limit, 'limit', 1000);
  const page = async () => {
    const entries = await outbox.list({ afterSeq: after, limit, ...(instanceId ? { instanceId } : {}) });
    after = entries.at(-1)?.seq ?? after;
    return entries;
  };
  print(ctx, await page(), true);
  if (!o.follow) return EXIT_OK;
  // Until Ctrl-C (which ends the process): poll for what was committed since.
  for await (const _ of setInterval(500)) print(ctx, await page(), false);
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  program
    .command('notifications')
    .description('versioned notifications (the outbox), oldest first')
    .option('--instance <id-or-name>', "only this instance's")
    .option('--after <seq>', 'only those after this sequence number')
    .option('--limit <n>', 'at most this many (default 1000; with --follow, per poll)')
    .option('--follow', 'keep printing new ones until Ctrl-C')
    .option(
      '--prune',
      'delete those older than NOTIFICATION_RETENTION_DAYS (without a relay: all; with one: delivered)'
    )
    .action((o: NotificationsOptions) => run((ctx) => notifications(ctx, o)));
}
