/**
 * The notification relay's loop (src/workers/notifications/relay.ts) over a real store, with a transport
 * that records what it was given and can be made to refuse (the real RabbitMQ transport is tested in
 * test/notifications/amqp.test.ts and end to end in test/faults/notifications.test.ts); and the relay's
 * process refusing bad configuration at start.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { migrateToLatest, openStore, type Store } from '../../../src/store/db';
import { createInstanceRepository } from '../../../src/store/instances';
import { createNotificationOutbox } from '../../../src/store/notification-outbox';
import { NotificationRelay } from '../../../src/workers/notifications/relay';
import type { NotificationTransport, WireNotification } from '../../../src/workers/notifications/transport';
import { ROOT } from '../../helpers/cli';
import { newInstance } from '../store/fixtures';

class RecordingTransport implements NotificationTransport {
  readonly batches: WireNotification[][] = [];
  refuse: Error | undefined;
  publish(batch: readonly WireNotification[]): Promise<void> {
    if (this.refuse) return Promise.reject(this.refuse);
    this.batches.push([...batch]);
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

let store: Store;
beforeEach(async () => {
  store = await openStore({ sqlitePath: path.join(mkdtempSync(path.join(tmpdir(), 'relay-')), 'conductor.sqlite') });
  await migrateToLatest(store);
});
afterEach(() => store.close());

/** `n` stop actions started and finished: 2n notifications. */
async function notifications(n: number): Promise<void> {
  const repo = createInstanceRepository(store);
  for (let i = 0; i < n; i++) {
    await repo.create(newInstance(`r-${i}`));
    const { actionId } = await repo.startAction(`r-${i}`, 'stop', `req-${i}`);
    await repo.finishAction(actionId, 'Success');
  }
}

describe('the notification relay', () => {
  it('delivers the outbox in commit order, in batches, with oslo timestamps, and marks each batch delivered', async () => {
    await notifications(5);
    const transport = new RecordingTransport();
    const outbox = createNotificationOutbox(store);
    const relay = new NotificationRelay({ outbox, transport, batchSize: 4 });
    expect([
      await relay.deliverBatch(),
      await relay.deliverBatch(),
      await relay.deliverBatch(),
      await relay.deliverBatch(),
    ]).toEqual([4, 4, 2, 0]);
    const stored = await outbox.list();
    expect(transport.batches.flat().map((n) => n.messageId)).toEqual(stored.map((n) => n.messageId));
    expect(transport.batches[0]![0]).toMatchObject({ eventType: 'instance.power_off.start', priority: 'INFO' });
    expect(transport.batches[0]![0]!.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$/);
    expect(stored.every((n) => n.deliveredAt !== null)).toBe(true);
    expect(await outbox.backlog()).toEqual({ count: 0, oldest: null });
  });

  it('keeps a refused batch in the outbox, backs off, and delivers it whole once the broker takes it', async () => {
    await notifications(2);
    const transport = new RecordingTransport();
    transport.refuse = new Error('broker down');
    const outbox = createNotificationOutbox(store);
    const logs: string[] = [];
    const relay = new NotificationRelay({ outbox, transport, idleMs: 10, log: (_l, m) => logs.push(m) });
    const running = relay.run();
    await vi.waitFor(() => expect(relay.stats.failedAttempts).toBeGreaterThanOrEqual(1), { timeout: 5_000 });
    expect(relay.stats.lastError).toBe('broker down');
    expect((await outbox.backlog()).count).toBe(4);
    transport.refuse = undefined;
    // The first retry comes after 1 s.
    await vi.waitFor(async () => expect((await outbox.backlog()).count).toBe(0), { timeout: 5_000, interval: 50 });
    relay.stop();
    await running;
    expect(transport.batches.flat()).toHaveLength(4);
    expect(relay.stats).toMatchObject({ delivered: 4, lastError: null });
    expect(logs).toEqual(
      expect.arrayContaining(['notification delivery failed; the outbox holds them', 'notification delivery resumed'])
    );
  });

  it('refuses bad configuration at start: exit 2 naming what is wrong', async () => {
    const relayProcess = (env: Record<string, string | undefined>) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'notification-relay.ts')],
          {
            cwd: ROOT,
            env: { ...process.env, DATA_DIR: mkdtempSync(path.join(tmpdir(), 'relay-env-')), ...env },
            timeout: 60_000,
          },
          (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr })
        );
      });
    const [unset, http] = await Promise.all([
      relayProcess({ NOTIFICATION_URL: undefined }),
      relayProcess({ NOTIFICATION_URL: 'http://127.0.0.1:5672/' }),
    ]);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('NOTIFICATION_URL is not set');
    expect(http.code).toBe(2);
    expect(http.stderr).toMatch(/NOTIFICATION_URL.*amqp:\/\/ or amqps:\/\//);
  });
});
