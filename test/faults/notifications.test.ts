/**
 * Fault 14: versioned notifications end to end: the relay (src/workers/notification-relay.ts) delivers
 * the outbox to a real RabbitMQ, and an unmodified oslo.messaging notification listener (pinned, in
 * .tools/oslo) receives them. First an instance's life (build, resize auto-confirmed, live migration,
 * delete) arrives whole, in order, with Nova's envelope; then a burst of builds with the relay and the
 * conductor killed (-9) and the broker restarted in the middle: every notification the store holds
 * arrives at least once, nothing arrives that the store does not hold, a duplicate is the same message
 * (same message_id, same content), and each instance's notifications arrive in commit order.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openStore } from '../../src/store/db';
import type { Store } from '../../src/store/db';
import type { OutboxEntry } from '../../src/store/notification-outbox';
import { createNotificationOutbox } from '../../src/store/notification-outbox';
import type { Broker, OsloListener, Received } from '../helpers/rabbitmq';
import { rabbitmqTestsMissing, startBroker, startOsloListener } from '../helpers/rabbitmq';
import {
  assertConsistent,
  FAST_TIMEOUTS,
  figures,
  fleet,
  outcomes,
  Proc,
  Stack,
  startBuilds,
  startOperation,
  until,
  waitForTaskState,
} from './harness';

const missing = rabbitmqTestsMissing();
if (missing) throw new Error(`test/faults/notifications.test.ts: ${missing}`);

const ROOT = path.resolve(__dirname, '..', '..');

/** The fault stack plus the relay's process, pointed at the broker. */
class RelayStack extends Stack {
  relay?: Proc;

  startRelay(): Promise<void> {
    this.relay ??= new Proc(
      'notification-relay',
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'notification-relay.ts')],
      this.workerEnv()
    );
    this.relay.start();
    return this.relay.waitFor('relaying notifications', 60_000);
  }

  override async dispose(): Promise<void> {
    await this.relay?.signal('SIGKILL').catch(() => undefined);
    await super.dispose();
  }
}

describe('fault: notifications through RabbitMQ, with the relay and the conductor killed and the broker restarted', () => {
  const stack = new RelayStack(fleet('nt', 3), 3);
  const dir = mkdtempSync(path.join(tmpdir(), 'notify-faults-'));
  let broker: Broker;
  let listener: OsloListener;
  let store: Store;

  beforeAll(async () => {
    broker = await startBroker(path.join(dir, 'broker'));
    // Durable queues and persistent messages: the broker confirms a notification once it is on disk.
    listener = await startOsloListener(broker.osloUrl, { durable: true });
    stack.workerExtraEnv = { NOTIFICATION_URL: broker.url, NOTIFICATION_DURABLE: 'true' };
    await stack.startAll();
    await stack.startRelay();
    store = await openStore(stack.storeOptions());
  }, 240_000);
  afterAll(async () => {
    await store?.close();
    await listener?.stop();
    await stack.dispose();
    await broker?.stop();
  });

  const outbox = () => createNotificationOutbox(store);

  /** Every notification in the store, oldest first. */
  async function stored(): Promise<OutboxEntry[]> {
    const all: OutboxEntry[] = [];
    for (let page = await outbox().list(); page.length > 0; page = await outbox().list({ afterSeq: all.at(-1)!.seq }))
      all.push(...page);
    return all;
  }

  /** Waits until the relay delivered everything and the listener received every stored message once at least. */
  async function drained(boundMs: number): Promise<OutboxEntry[]> {
    return until('every stored notification delivered and received', boundMs, async () => {
      const backlog = await outbox().backlog();
      if (backlog.count > 0) throw new Error(`${backlog.count} undelivered (oldest ${backlog.oldest})`);
      const all = await stored();
      const got = new Set(listener.received.map((r) => r.metadata.message_id));
      const lost = all.filter((n) => !got.has(n.messageId));
      if (lost.length > 0) throw new Error(`${lost.length} not received, first ${lost[0]!.eventType}`);
      return all;
    });
  }

  const instanceOf = (r: Received) =>
    (r.payload['nova_object.data'] as Record<string, unknown> | undefined)?.uuid as string | undefined;

  /**
   * What the listener received of the stored notifications `of`, first receipts only, in the order each
   * priority's queue delivered them; must equal the store's (commit) order of that priority.
   */
  function expectCommitOrder(of: readonly OutboxEntry[]): void {
    for (const priority of ['INFO', 'ERROR'] as const) {
      const want = of.filter((n) => n.priority === priority).map((n) => n.messageId);
      const wanted = new Set(want);
      const seen = new Set<string>();
      const got: string[] = [];
      for (const r of listener.received)
        if (wanted.has(r.metadata.message_id) && !seen.has(r.metadata.message_id)) {
          seen.add(r.metadata.message_id);
          got.push(r.metadata.message_id);
        }
      expect(got, priority).toEqual(want);
    }
  }

  it("an instance's build, resize, live migration and delete arrive whole, in order, with Nova's envelope", async () => {
    const [build] = await startBuilds(stack, 1, 'nt-life');
    const { instanceId } = (await outcomes([build!]))[0]!;
    expect(instanceId).toBeDefined();
    const id = instanceId!;
    const run = async (type: string, input: object) => {
      const op = await startOperation(stack, type, `${type}-${id}-life`, { instanceId: id, ...input });
      expect((await op.done).result, type).toBe('ok');
    };
    // Confirmed automatically once its 1 s window passed; the workflow ends with the confirm.
    await run('resizeMigrate', { flavor: 'm1.medium', confirmWindowSeconds: 1, timeouts: FAST_TIMEOUTS });
    await run('liveMigrate', { timeouts: FAST_TIMEOUTS });
    await run('deleteInstance', { timeouts: FAST_TIMEOUTS });
    await drained(60_000);

    const mine = await outbox().list({ instanceId: id });
    expect(mine.map((n) => n.eventType)).toEqual([
      'instance.create.start',
      'scheduler.select_destinations.start',
      'scheduler.select_destinations.end',
      'instance.create.end',
      'scheduler.select_destinations.start',
      'scheduler.select_destinations.end',
      'instance.resize_prep.start',
      'instance.resize_prep.end',
      'instance.resize.start',
      'instance.resize.end',
      'instance.resize_finish.start',
      'instance.resize_finish.end',
      'instance.resize_confirm.start',
      'instance.resize_confirm.end',
      'scheduler.select_destinations.start',
      'scheduler.select_destinations.end',
      'instance.live_migration_pre.start',
      'instance.live_migration_pre.end',
      'instance.live_migration_post.start',
      'instance.live_migration_post.end',
      'instance.delete.start',
      'instance.delete.end',
    ]);
    expectCommitOrder(mine);
    // Each as oslo handed it to the listener: Nova's envelope and the stored payload, unchanged.
    for (const n of mine) {
      const r = listener.received.find((x) => x.metadata.message_id === n.messageId)!;
      expect(r).toMatchObject({
        priority: n.priority.toLowerCase(),
        event_type: n.eventType,
        publisher_id: n.publisherId,
      });
      expect(r.payload).toEqual(n.payload);
      expect(r.metadata.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$/);
      expect(instanceOf(r) ?? id).toBe(id);
    }
    await assertConsistent(stack);
  });

  it('a burst survives kill -9 of the relay and of the conductor and a broker restart: at least once, none invented, in order', async () => {
    const t0 = Date.now();
    const builds = await startBuilds(stack, 8, 'nt-burst');
    // The relay killed while it delivers, started again a second later.
    await delay(700);
    await stack.relay!.signal('SIGKILL');
    await delay(1_000);
    await stack.startRelay();
    // The conductor killed mid-spawn and the broker stopped meanwhile; the conductor started again.
    await waitForTaskState(
      stack,
      builds.map((b) => b.workflowId),
      'spawning'
    );
    await stack.worker('conductor').signal('SIGKILL');
    const brokerStopped = broker.stop();
    await delay(1_000);
    await stack.startWorker('conductor');
    await brokerStopped;
    // The builds end while the broker is down: the outbox holds their notifications.
    const built = await outcomes(builds);
    expect(built.map((b) => b.result)).toEqual(built.map(() => 'ok'));
    const held = await outbox().backlog();
    expect(held.count).toBeGreaterThan(0);
    // The broker started again on its data: the relay drains the outbox into it.
    await broker.start();
    const all = await drained(120_000);
    const line = await figures(stack, '14 notifications: kill -9 relay and conductor, broker restart', built, t0);
    const ids = new Set(all.map((n) => n.messageId));
    const invented = listener.received.filter((r) => !ids.has(r.metadata.message_id));
    expect(invented.map((r) => r.event_type)).toEqual([]);
    // A duplicate is the same message.
    const byId = new Map(all.map((n) => [n.messageId, n]));
    let duplicates = 0;
    const counted = new Set<string>();
    for (const r of listener.received) {
      const n = byId.get(r.metadata.message_id)!;
      expect({ type: r.event_type, payload: r.payload }).toEqual({ type: n.eventType, payload: n.payload });
      if (counted.has(r.metadata.message_id)) duplicates++;
      counted.add(r.metadata.message_id);
    }
    // Per instance, the commit order; every build's sequence complete.
    for (const b of built) {
      const mine = all.filter((n) => n.instanceId === b.instanceId);
      expect(mine[0]?.eventType).toBe('instance.create.start');
      expect(mine.at(-1)?.eventType).toBe('instance.create.end');
      expectCommitOrder(mine);
    }
    console.log(
      `${line}; notifications ${all.length} stored, ${listener.received.length} received (${duplicates} duplicates), ` +
        `${held.count} held while the broker was down, broker restart ${broker.lastStartSeconds} s`
    );
    await assertConsistent(stack);
  });
});
