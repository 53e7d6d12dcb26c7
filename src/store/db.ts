/**
 * Opening the store: Kysely over better-sqlite3 (embedded default, one file shared by several worker
 * processes) or over a `pg` pool (at scale). Same schema, same queries, same migrations.
 *
 * SQLite and several processes:
 * - WAL journal (readers never block the writer), `busy_timeout` 5 s, `synchronous=NORMAL`, foreign keys on.
 * - Every Kysely transaction starts with `BEGIN IMMEDIATE`: the write lock is taken up front, so two
 *   processes never both hold a read snapshot and then deadlock upgrading it (a plain `BEGIN` would
 *   return SQLITE_BUSY at once in that case, bypassing busy_timeout). Transactions are therefore
 *   serialized across processes; they are short (a claim is a handful of indexed statements).
 * - `transaction()` below also retries a transaction that still failed with SQLITE_BUSY (lock held
 *   longer than busy_timeout) or, on PostgreSQL, a serialization failure / deadlock.
 * - Within one process, every `openStore` of the same file shares ONE connection (ref-counted): Kysely's
 *   SQLite driver serializes its users with a mutex, whereas two connections in one process would
 *   block the event loop in better-sqlite3's synchronous busy wait while the other waits to commit.
 *
 * Migrations: Kysely's Migrator with the in-code provider. On PostgreSQL the Migrator holds an
 * advisory lock. On SQLite Kysely's own lock is a no-op (it assumes one process), so our adapter
 * declares transactional DDL: the migrations then run inside one `BEGIN IMMEDIATE` transaction that
 * re-reads the executed list after taking the write lock, which makes concurrent starts safe.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { backOff } from 'exponential-backoff';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  Kysely,
  Migrator,
  PostgresDialect,
  SqliteAdapter,
  type SqliteDatabase,
  SqliteDialect,
  SqliteDriver,
  type Transaction,
} from 'kysely';
import { type CustomTypesConfig, Pool, types as pgTypes } from 'pg';

import { migrationProvider } from './migrations';
import type { NotificationContext } from './notifications';
import type { Database } from './schema';

export type StoreDialect = 'sqlite' | 'postgres';

export interface Store {
  db: Kysely<Database>;
  dialect: StoreDialect;
  /** Releases this handle (the shared SQLite connection closes with its last handle). Idempotent. */
  close(): Promise<void>;
  /** What the notifications this process writes say of it (src/store/notifications.ts); set by workers. */
  notifications?: NotificationContext;
}

export interface StoreOptions {
  /** `postgres://…`: use PostgreSQL. Takes precedence over `sqlitePath`. */
  databaseUrl?: string;
  /** The SQLite file (its directory is created). */
  sqlitePath?: string;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}

/** How long a SQLite statement waits for another process's write lock before SQLITE_BUSY. */
export const SQLITE_BUSY_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------

/** Prepared statements kept per connection, at most (the set is dropped whole when full). */
export const SQLITE_STATEMENT_CACHE_SIZE = 1_000;

/**
 * The connection as Kysely's SQLite driver sees it, with each statement prepared once per distinct SQL
 * text and reused (the driver prepares every query it runs again, and the store's queries are a few
 * dozen texts, so compiling them was a tenth of a worker's time on its store writes). Kysely runs one
 * query at a time on the connection, so a kept statement is never in use twice.
 */
function withStatementCache(raw: BetterSqlite3.Database): SqliteDatabase {
  const statements = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => raw.close(),
    prepare(sql: string) {
      let statement = statements.get(sql);
      if (statement === undefined) {
        if (statements.size >= SQLITE_STATEMENT_CACHE_SIZE) statements.clear();
        statement = raw.prepare(sql);
        statements.set(sql, statement);
      }
      return statement;
    },
  };
}

/** Kysely's SQLite driver with `BEGIN IMMEDIATE` transactions and a rollback that tolerates auto-rollback. */
class ImmediateSqliteDriver extends SqliteDriver {
  constructor(private readonly raw: BetterSqlite3.Database) {
    super({ database: withStatementCache(raw) });
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR…); a second ROLLBACK would
    // then throw "no transaction is active" and hide the real error.
    if (this.raw.inTransaction) await connection.executeQuery(CompiledQuery.raw('rollback'));
  }
}

/** Transactional DDL on: migrations run in one BEGIN IMMEDIATE transaction (the cross-process lock). */
class ImmediateSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly raw: BetterSqlite3.Database) {
    super({ database: raw });
  }
  override createDriver(): SqliteDriver {
    return new ImmediateSqliteDriver(this.raw);
  }
  override createAdapter(): SqliteAdapter {
    return new ImmediateSqliteAdapter();
  }
}

interface SharedSqlite {
  db: Kysely<Database>;
  refs: number;
}
/** One connection per SQLite file per process (see the header). */
const sqliteFiles = new Map<string, SharedSqlite>();

function openSqliteDatabase(file: string): BetterSqlite3.Database {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
  const raw = new BetterSqlite3(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  try {
    raw.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    // Switching a fresh file to WAL takes a lock another starting process may hold for a moment.
    retrySync(() => raw.pragma('journal_mode = WAL'));
    raw.pragma('synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
  } catch (err) {
    raw.close();
    throw err;
  }
  return raw;
}

function retrySync<T>(fn: () => T, attempts = 5): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return fn();
    } catch (err) {
      if (attempt >= attempts || !isTransientStoreError(err)) throw err;
    }
  }
}

function openSqlite(sqlitePath: string): Store {
  const file = sqlitePath === ':memory:' ? sqlitePath : path.resolve(sqlitePath);
  let shared = file === ':memory:' ? undefined : sqliteFiles.get(file);
  if (shared === undefined) {
    const raw = openSqliteDatabase(file);
    shared = { db: new Kysely<Database>({ dialect: new ImmediateSqliteDialect(raw) }), refs: 0 };
    if (file !== ':memory:') sqliteFiles.set(file, shared);
  }
  shared.refs += 1;
  const entry = shared;
  let closed = false;
  return {
    db: entry.db,
    dialect: 'sqlite',
    async close() {
      if (closed) return;
      closed = true;
      entry.refs -= 1;
      if (entry.refs > 0) return;
      if (sqliteFiles.get(file) === entry) sqliteFiles.delete(file);
      await entry.db.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

const PG_INT8_OID = 20;
const PG_NUMERIC_OID = 1700;

/**
 * SUM() and COUNT() are int8/numeric on PostgreSQL, which `pg` returns as strings; SQLite returns
 * numbers. Parse them as numbers for this pool only (no global `pg.types` change).
 */
const pgTypeParsers: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown => {
    if (oid === PG_INT8_OID || oid === PG_NUMERIC_OID) return (value: string) => Number(value);
    return format === 'binary' ? pgTypes.getTypeParser(oid, 'binary') : pgTypes.getTypeParser(oid, 'text');
  }) as CustomTypesConfig['getTypeParser'],
};

function openPostgres(databaseUrl: string, poolSize: number): Store {
  const pool = new Pool({
    connectionString: databaseUrl,
    max: poolSize,
    types: pgTypeParsers,
    // A server that is down or restarting refuses at once; one that does not answer fails the statement
    // (a retryable activity failure) instead of holding it until the activity's timeout.
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
  });
  // An idle client losing its connection must not crash the process; the pool drops it (pg-pool). The
  // client's own listener below has logged it.
  pool.on('error', () => undefined);
  // pool.end() resolves before the clients' sockets are closed; count them so close() really waits.
  let connected = 0;
  let drained: (() => void) | undefined;
  pool.on('connect', (client) => {
    connected += 1;
    // pg-pool listens for errors only while a client is idle: a connection lost while checked out (a
    // PostgreSQL restart between two statements of a transaction) would be an uncaught `error` event that
    // kills the worker. Its statements fail anyway ("Connection terminated unexpectedly", retryable), and
    // the pool drops a client that is no longer queryable when it is released, so nothing hands it out again.
    client.on('error', (err) => console.error(`store: PostgreSQL connection lost: ${err.message}`));
  });
  pool.on('remove', () => {
    connected -= 1;
    if (connected <= 0) drained?.();
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  let closed = false;
  return {
    db,
    dialect: 'postgres',
    async close() {
      if (closed) return;
      closed = true;
      const allRemoved = new Promise<void>((resolve) => (drained = resolve));
      await db.destroy();
      if (connected > 0) await Promise.race([allRemoved, sleep(2_000)]);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/** Opens the store: PostgreSQL when `databaseUrl` is given, else the SQLite file. Does not migrate. */
export function openStore(options: StoreOptions): Promise<Store> {
  try {
    if (options.databaseUrl !== undefined && options.databaseUrl !== '') {
      return Promise.resolve(openPostgres(options.databaseUrl, options.poolSize ?? 10));
    }
    if (options.sqlitePath !== undefined && options.sqlitePath !== '') {
      return Promise.resolve(openSqlite(options.sqlitePath));
    }
    return Promise.reject(new Error('openStore: set databaseUrl (PostgreSQL) or sqlitePath (SQLite)'));
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/**
 * Brings the schema up to date; every worker calls it when it starts. Safe when several processes
 * start at once (see the header). Returns the names of the migrations this call applied.
 */
export async function migrateToLatest(store: Store): Promise<string[]> {
  const migrator = new Migrator({ db: store.db, provider: migrationProvider });
  for (let attempt = 1; ; attempt++) {
    const { error, results } = await migrator.migrateToLatest();
    if (error === undefined) {
      return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    }
    if (attempt < 5 && isTransientStoreError(error)) {
      await sleep(backoffMs(attempt));
      continue;
    }
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    const message = error instanceof Error ? error.message : JSON.stringify(error);
    throw new Error(`store migration${failed === undefined ? '' : ` ${failed}`} failed: ${message}`, { cause: error });
  }
}

/** The store a client opened has no schema, or an older one: the workers have not migrated it yet. */
export class StoreNotMigratedError extends Error {
  override readonly name = 'StoreNotMigratedError';
}

const START_WORKERS = 'start the workers (npm start), which create and migrate the store';

/**
 * Opens the store for a client (the CLIs): an existing store whose schema is at the latest migration.
 * Never creates or migrates anything — the workers own the schema — and fails with
 * StoreNotMigratedError when the SQLite file is missing or migrations are pending.
 */
export async function openMigratedStore(options: StoreOptions): Promise<Store> {
  const file = options.databaseUrl ? undefined : options.sqlitePath;
  if (file !== undefined && file !== '' && file !== ':memory:') {
    try {
      statSync(file);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
      throw new StoreNotMigratedError(`no store at ${file}: ${START_WORKERS}`);
    }
  }
  const store = await openStore(options);
  try {
    const migrations = await new Migrator({ db: store.db, provider: migrationProvider }).getMigrations();
    const pending = migrations.filter((m) => m.executedAt === undefined).map((m) => m.name);
    if (pending.length > 0) {
      throw new StoreNotMigratedError(
        `the store's schema is not migrated (pending: ${pending.join(', ')}): ${START_WORKERS}`
      );
    }
    return store;
  } catch (err) {
    await store.close();
    throw err;
  }
}

/**
 * openMigratedStore for a process that starts beside the workers (the API, the notification relay): waits
 * up to `timeoutMs` for them to create and migrate the store.
 */
export async function openMigratedStoreWhenReady(options: StoreOptions, timeoutMs = 60_000): Promise<Store> {
  const deadline = Date.now() + timeoutMs;
  return backOff(() => openMigratedStore(options), {
    numOfAttempts: Number.MAX_SAFE_INTEGER,
    startingDelay: 500,
    timeMultiple: 1,
    retry: (err: unknown) => err instanceof StoreNotMigratedError && Date.now() <= deadline,
  });
}

/** SQLite lock contention, or a PostgreSQL serialization failure, deadlock or lock timeout: retry. */
export function isTransientStoreError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  return (
    code.startsWith('SQLITE_BUSY') ||
    code.startsWith('SQLITE_LOCKED') ||
    code === '40001' || // serialization_failure
    code === '40P01' || // deadlock_detected
    code === '55P03' // lock_not_available
  );
}

const TRANSACTION_ATTEMPTS = 8;

/**
 * Runs `fn` in a transaction (BEGIN IMMEDIATE on SQLite), retrying the whole transaction on the
 * transient errors above. `fn` must only touch the database through `trx` (the SQLite connection is
 * single: using `store.db` inside would wait forever for itself) and must be safe to run again.
 */
export async function transaction<T>(store: Store, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return retryTransient(TRANSACTION_ATTEMPTS, () => store.db.transaction().execute(fn), isTransientStoreError);
}

/**
 * Runs `fn` up to `attempts` times while `retryable` says its error is passing, with full-jitter
 * exponential backoff between attempts (at most 200 ms); the last error is thrown as it is.
 */
export function retryTransient<T>(
  attempts: number,
  fn: (attempt: number) => Promise<T>,
  retryable: (err: unknown) => boolean
): Promise<T> {
  let attempt = 0;
  return backOff(() => fn(++attempt), {
    numOfAttempts: attempts,
    startingDelay: 4,
    timeMultiple: 2,
    maxDelay: 200,
    jitter: 'full',
    retry: (err: unknown) => retryable(err),
  });
}

/** Full-jitter exponential backoff: random in [1, min(200, 4·2^attempt)] ms. */
export function backoffMs(attempt: number): number {
  return 1 + Math.floor(Math.random() * Math.min(200, 4 * 2 ** attempt));
}
