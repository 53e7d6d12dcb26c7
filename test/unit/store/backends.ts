/**
 * The store backends the store tests run against: SQLite (a temp file) always, PostgreSQL when
 * TEST_DATABASE_URL is set (start one with `eval "$(scripts/test-postgres.sh)"`). Under CI=true a
 * missing TEST_DATABASE_URL fails every PostgreSQL test with the hint instead of skipping them.
 * Each test gets a fresh database: a new SQLite file, or a new PostgreSQL database (CREATE DATABASE
 * on the server of TEST_DATABASE_URL, dropped afterwards), so test files can run in parallel.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Client } from 'pg';
import { afterEach, beforeEach } from 'vitest';

import { migrateToLatest, openStore, type Store, type StoreOptions } from '../../../src/store/db';

export interface TestDatabase {
  options: StoreOptions;
  drop(): Promise<void>;
}

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** A new, empty database (not migrated). */
  create(): Promise<TestDatabase>;
}

const sqliteBackend: Backend = {
  name: 'sqlite',
  create() {
    const dir = mkdtempSync(path.join(tmpdir(), 'conductor-store-'));
    return Promise.resolve({
      options: { sqlitePath: path.join(dir, 'nested', 'conductor.sqlite') },
      drop: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
    });
  },
};

const MISSING_PG =
  'CI=true but TEST_DATABASE_URL is unset: the store tests must also run on PostgreSQL. Start one with ' +
  '`eval "$(scripts/test-postgres.sh)"` (needs `apt-get install -y postgresql`) or point TEST_DATABASE_URL at a server.';

function postgresBackend(adminUrl: string | undefined): Backend {
  return {
    name: 'postgres',
    async create() {
      if (adminUrl === undefined || adminUrl === '') throw new Error(MISSING_PG);
      const name = `conductor_t_${randomBytes(6).toString('hex')}`;
      const admin = new Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        await admin.query(`create database ${name}`);
      } finally {
        await admin.end();
      }
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return {
        options: { databaseUrl: url.toString() },
        async drop() {
          const c = new Client({ connectionString: adminUrl });
          await c.connect();
          try {
            await c.query(`drop database if exists ${name} with (force)`);
          } finally {
            await c.end();
          }
        },
      };
    },
  };
}

const pgUrl = process.env.TEST_DATABASE_URL;
const wantPostgres = (pgUrl !== undefined && pgUrl !== '') || process.env.CI === 'true';

/** The backends to `describe.each` over. */
export const BACKENDS: Backend[] = wantPostgres ? [sqliteBackend, postgresBackend(pgUrl)] : [sqliteBackend];

export interface StoreFixture {
  readonly store: Store;
  readonly database: TestDatabase;
}

/** A fresh, migrated store per test (closed and dropped after it). */
export function useFreshStore(backend: Backend): StoreFixture {
  let store: Store | undefined;
  let database: TestDatabase | undefined;
  beforeEach(async () => {
    database = await backend.create();
    store = await openStore(database.options);
    await migrateToLatest(store);
  });
  afterEach(async () => {
    await store?.close();
    await database?.drop();
    store = undefined;
    database = undefined;
  });
  return {
    get store() {
      if (store === undefined) throw new Error('store used outside a test');
      return store;
    },
    get database() {
      if (database === undefined) throw new Error('database used outside a test');
      return database;
    },
  };
}

export const CHILD_SCRIPT = path.join(__dirname, 'store-child.ts');

/**
 * Runs `store-child.ts` in a separate Node process (with tsx) per argument object, waits until every
 * child is ready, releases them all at once, and resolves with their JSON outputs.
 */
export async function runChildren<T>(argsList: Record<string, unknown>[]): Promise<T[]> {
  const children = argsList.map((args) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD_SCRIPT, JSON.stringify(args)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env },
    });
    let stdout = '';
    let stderr = '';
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.split('\n').includes('ready')) onReady();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const result = new Promise<T>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => {
        if (code !== 0) return reject(new Error(`store-child exited ${code}: ${stderr || stdout}`));
        try {
          resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as T);
        } catch (err) {
          reject(new Error(`store-child printed no JSON: ${stdout} ${stderr} (${String(err)})`));
        }
      });
    });
    return { child, ready, result };
  });
  // A child that dies before it is ready fails the whole run instead of hanging the barrier.
  await Promise.race([Promise.all(children.map((c) => c.ready)), Promise.all(children.map((c) => c.result))]);
  for (const { child } of children) child.stdin.end('go\n');
  return Promise.all(children.map((c) => c.result));
}
