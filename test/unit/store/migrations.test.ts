import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';

import { migrateToLatest, openStore, type Store } from '../../../src/store/db';
import { MIGRATIONS } from '../../../src/store/migrations';
import { TABLES } from '../../../src/store/schema';
import { BACKENDS, runChildren, type TestDatabase } from './backends';

const ALL_MIGRATIONS = Object.keys(MIGRATIONS).sort();

describe.each(BACKENDS)('store migrations on $name', (backend) => {
  const opened: Store[] = [];
  const databases: TestDatabase[] = [];

  async function fresh(): Promise<TestDatabase> {
    const database = await backend.create();
    databases.push(database);
    return database;
  }
  async function open(database: TestDatabase): Promise<Store> {
    const store = await openStore(database.options);
    opened.push(store);
    return store;
  }

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    for (const database of databases.splice(0)) await database.drop();
  });

  it('applies every migration once, then nothing (idempotent)', async () => {
    const store = await open(await fresh());
    expect(store.dialect).toBe(backend.name);
    expect(await migrateToLatest(store)).toEqual(ALL_MIGRATIONS);
    expect(await migrateToLatest(store)).toEqual([]);
    for (const table of TABLES) {
      await expect(store.db.selectFrom(table).selectAll().limit(1).execute()).resolves.toBeDefined();
    }
    const state = await store.db.selectFrom('placement_state').selectAll().execute();
    expect(state).toEqual([{ id: 1, version: 0 }]);
  });

  it('is safe when several handles migrate at once (in one process)', async () => {
    const database = await fresh();
    const stores = await Promise.all([open(database), open(database), open(database)]);
    const applied = await Promise.all(stores.map((s) => migrateToLatest(s)));
    expect(applied.flat().sort()).toEqual(ALL_MIGRATIONS);
  });

  it('is safe when several processes start at once', async () => {
    const database = await fresh();
    const results = await runChildren<{ applied: string[] }>(
      [1, 2, 3, 4].map(() => ({ op: 'migrate', options: database.options }))
    );
    expect(results.flatMap((r) => r.applied).sort()).toEqual(ALL_MIGRATIONS);
    const store = await open(database);
    expect(await migrateToLatest(store)).toEqual([]);
  }, 60_000);

  it.runIf(backend.name === 'sqlite')(
    'opens SQLite in WAL mode with busy timeout, NORMAL sync and foreign keys',
    async () => {
      const store = await open(await fresh());
      const pragma = async (name: string) =>
        Object.values(
          (await sql<Record<string, unknown>>`${sql.raw(`pragma ${name}`)}`.execute(store.db)).rows[0] ?? {}
        )[0];
      expect(await pragma('journal_mode')).toBe('wal');
      expect(await pragma('busy_timeout')).toBe(5000);
      expect(await pragma('synchronous')).toBe(1);
      expect(await pragma('foreign_keys')).toBe(1);
    }
  );

  it('rejects an openStore without a location', async () => {
    await expect(openStore({})).rejects.toThrow(/databaseUrl|sqlitePath/);
  });
});
