/**
 * The PostgreSQL pool across a lost connection (a PostgreSQL restart, a backend killed): the statement
 * that was using it fails with a retryable error, the process does not crash (a client checked out of
 * the pool with no listener of its own would throw `error` as an uncaught exception), and the next
 * statement gets a fresh connection instead of the dead one.
 */
import { setTimeout as delay } from 'node:timers/promises';

import { Client } from 'pg';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';

import { isTransientStoreError, transaction } from '../../../src/store/db';
import { BACKENDS, useFreshStore } from './backends';

const postgres = BACKENDS.find((b) => b.name === 'postgres');

// PostgreSQL only (TEST_DATABASE_URL; required under CI=true): SQLite has no connection to lose.
describe.skipIf(postgres === undefined)('the PostgreSQL store after a lost connection', () => {
  const fx = useFreshStore(postgres!);

  /** Terminates the server process of `pid` from another connection, as a restart does to every one. */
  async function terminate(pid: number): Promise<void> {
    const admin = new Client({ connectionString: process.env.TEST_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query('select pg_terminate_backend($1)', [pid]);
    } finally {
      await admin.end();
    }
  }

  it('fails the transaction whose connection died with a retryable error, without crashing, and serves the next one', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      // Killed between two statements of a transaction: the client is checked out with no query running,
      // the moment pg reports the loss as an `error` event of the client.
      const broken = transaction(fx.store, async (trx) => {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        await terminate(rows[0]!.pid);
        await delay(200);
        return sql`select 1`.execute(trx);
      });
      const err = await broken.then(
        () => undefined,
        (e: unknown) => e
      );
      expect(err, 'the transaction on a dead connection must fail').toBeInstanceOf(Error);
      expect(uncaught.map(String)).toEqual([]);
      // A plain error, none of the domain's non-retryable types: the activity is retried by Temporal.
      expect(String(err)).toMatch(/connection|terminat/i);
      expect((err as Error).name).toBe('Error');
      expect(isTransientStoreError(err)).toBe(false);
      // Every pooled connection is then fresh: the pool does not hand the dead one out again.
      for (let i = 0; i < 5; i++) {
        const { rows } = await sql<{ one: number }>`select 1 as one`.execute(fx.store.db);
        expect(rows).toEqual([{ one: 1 }]);
      }
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('gives an idle pooled connection that died up, and the next statement reconnects', async () => {
    const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(fx.store.db);
    await terminate(rows[0]!.pid);
    const again = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(fx.store.db);
    expect(again.rows[0]!.pid).not.toBe(rows[0]!.pid);
  });
});
