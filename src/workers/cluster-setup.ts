/**
 * What `make cluster` (cluster.ts) sets up before it starts anything, each step idempotent so that a
 * second start resumes from the data directory: the mTLS certificates (openssl), the PostgreSQL data
 * directory (initdb, password authentication), its roles and databases, Temporal's schemas
 * (temporal-sql-tool, persistence and SQL visibility), and the connection profile file the workers,
 * both CLIs and the stock `temporal` CLI share.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

import { clientConfigToToml } from '@temporalio/envconfig';
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';

/** The names the certificates are issued for; clients check the frontend's against FRONTEND_SERVER_NAME. */
export const FRONTEND_SERVER_NAME = 'frontend.cluster.local';
const INTERNODE_SERVER_NAME = 'internode.cluster.local';
export const CLUSTER_PROFILE = 'cluster';

const run = (cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv } = {}) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env }).toString();

/** The CA and the certificates, in `dir` (made once; a partial set is made again whole). */
export function ensureCertificates(dir: string): void {
  if (existsSync(path.join(dir, 'client.pem'))) return;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  const key = (name: string) => [
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    path.join(tmp, `${name}.key`),
  ];
  run('openssl', [
    'req',
    '-x509',
    ...key('ca'),
    '-out',
    path.join(tmp, 'ca.pem'),
    '-days',
    '3650',
    '-subj',
    '/CN=conductor-cluster-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaves: Array<{ name: string; usage: string; san?: string }> = [
    { name: 'frontend', usage: 'serverAuth', san: `DNS:${FRONTEND_SERVER_NAME},DNS:localhost,IP:127.0.0.1` },
    { name: 'internode', usage: 'serverAuth,clientAuth', san: `DNS:${INTERNODE_SERVER_NAME},IP:127.0.0.1` },
    { name: 'client', usage: 'clientAuth' },
  ];
  for (const leaf of leaves) {
    const ext = path.join(tmp, `${leaf.name}.ext`);
    writeFileSync(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        `extendedKeyUsage=${leaf.usage}`,
        ...(leaf.san ? [`subjectAltName=${leaf.san}`] : []),
      ].join('\n')
    );
    const csr = path.join(tmp, `${leaf.name}.csr`);
    run('openssl', ['req', '-new', ...key(leaf.name), '-out', csr, '-subj', `/CN=conductor-${leaf.name}`]);
    run('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      path.join(tmp, 'ca.pem'),
      '-CAkey',
      path.join(tmp, 'ca.key'),
      '-CAcreateserial',
      '-out',
      path.join(tmp, `${leaf.name}.pem`),
      '-days',
      '825',
      '-extfile',
      ext,
    ]);
  }
  for (const f of readdirSync(tmp)) if (f.endsWith('.key')) chmodSync(path.join(tmp, f), 0o600);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

/** The PostgreSQL server binaries (Debian's package), newest first. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(path.join(root, v, 'bin', 'postgres'))) return path.join(root, v, 'bin');
  throw new Error(
    'PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: apt-get install -y postgresql'
  );
}

/** As root the server runs as `postgres` (it refuses root): the command prefix, and who owns its files. */
export function asPostgres(): { prefix: string[]; uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return { prefix: [] };
  const uid = Number(run('id', ['-u', 'postgres']).trim());
  const gid = Number(run('id', ['-g', 'postgres']).trim());
  return { prefix: ['runuser', '-u', 'postgres', '--'], uid, gid };
}

export interface ClusterSecrets {
  postgres: string;
  temporal: string;
  conductor: string;
}

/** Passwords of the PostgreSQL roles, made once (0600 in the data directory). */
export function ensureSecrets(file: string): ClusterSecrets {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as ClusterSecrets;
  const pw = () => randomBytes(18).toString('base64url');
  const secrets = { postgres: pw(), temporal: pw(), conductor: pw() };
  writeFileSync(file, JSON.stringify(secrets), { mode: 0o600 });
  return secrets;
}

/**
 * The payload codec's key file, made once (0400 in the data directory): `keyid:base64key`, the first
 * line the key that encrypts (src/workers/codec.ts). Rotate by adding a new first line.
 */
export function ensureCodecKey(file: string): void {
  if (existsSync(file)) return;
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
  writeFileSync(file, `k${day}:${randomBytes(32).toString('base64')}\n`, { mode: 0o400 });
}

/** initdb once, superuser `postgres` with a password (scram-sha-256), nothing but loopback TCP. */
export function ensurePostgresData(pgDir: string, secrets: ClusterSecrets): void {
  if (existsSync(path.join(pgDir, 'data', 'PG_VERSION'))) return;
  const bin = postgresBinDir();
  const who = asPostgres();
  rmSync(pgDir, { recursive: true, force: true });
  mkdirSync(pgDir, { recursive: true, mode: 0o700 });
  const pwFile = path.join(pgDir, 'pw');
  writeFileSync(pwFile, secrets.postgres, { mode: 0o600 });
  if (who.uid !== undefined && who.gid !== undefined) {
    chownSync(pgDir, who.uid, who.gid);
    chownSync(pwFile, who.uid, who.gid);
  }
  const args = [
    '-D',
    path.join(pgDir, 'data'),
    '-U',
    'postgres',
    '--auth=scram-sha-256',
    `--pwfile=${pwFile}`,
    '-E',
    'UTF8',
  ];
  try {
    const [command, ...rest] = [...who.prefix, path.join(bin, 'initdb'), ...args] as [string, ...string[]];
    run(command, rest);
  } finally {
    rmSync(pwFile, { force: true });
  }
}

/**
 * The command line of the PostgreSQL server (foreground, supervised like every other process), and as
 * root the user it runs as.
 */
export function postgresCommand(
  pgDir: string,
  port: number
): { command: string; args: string[]; user?: { uid: number; gid: number } } {
  const { uid, gid } = asPostgres();
  const args = ['-D', path.join(pgDir, 'data'), '-c', 'listen_addresses=127.0.0.1', '-p', String(port)];
  args.push('-c', 'unix_socket_directories=', '-c', 'max_connections=300');
  // No ERROR lines in the server log (LOG, FATAL and PANIC still print): each is the error of a client's
  // statement, returned to that client, which reports what matters. Expected ones were most of them:
  // every Temporal service inserts its system namespace and queue metadata on each start and takes the
  // unique violation as "already there", so PostgreSQL printed `duplicate key` errors on every start.
  args.push('-c', 'log_min_messages=log', '-c', 'log_min_error_statement=panic');
  const command = path.join(postgresBinDir(), 'postgres');
  return uid !== undefined && gid !== undefined ? { command, args, user: { uid, gid } } : { command, args };
}

/** Waits until PostgreSQL accepts the superuser, then makes the roles and the conductor's database. */
export async function ensureRolesAndDatabases(
  port: number,
  secrets: ClusterSecrets,
  timeoutMs = 60_000
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let client: pg.Client;
  for (;;) {
    client = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: secrets.postgres,
      database: 'postgres',
    });
    try {
      await client.connect();
      break;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline)
        throw new Error(`PostgreSQL on 127.0.0.1:${port} did not start: ${(err as Error).message}`, {
          cause: err,
        });
      await sleep(300);
    }
  }
  try {
    const roles = new Set(
      (await client.query<{ rolname: string }>('select rolname from pg_roles')).rows.map((r) => r.rolname)
    );
    const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
    if (!roles.has('temporal'))
      await client.query(`create role temporal login createdb password ${quote(secrets.temporal)}`);
    if (!roles.has('conductor')) await client.query(`create role conductor login password ${quote(secrets.conductor)}`);
    const dbs = new Set(
      (await client.query<{ datname: string }>('select datname from pg_database')).rows.map((r) => r.datname)
    );
    if (!dbs.has('conductor')) await client.query('create database conductor owner conductor');
  } finally {
    await client.end();
  }
}

/**
 * Temporal's two databases with their schemas: created and set up once (stamp file), then migrated to
 * the schema version of the installed server on every start (update-schema applies only what is new).
 */
export function ensureTemporalSchemas(o: {
  sqlTool: string;
  schemaDir: string;
  port: number;
  secrets: ClusterSecrets;
  stampDir: string;
}): void {
  for (const [db, dir] of [
    ['temporal', 'temporal'],
    ['temporal_visibility', 'visibility'],
  ] as const) {
    const env = {
      ...process.env,
      SQL_PLUGIN: 'postgres12',
      SQL_HOST: '127.0.0.1',
      SQL_PORT: String(o.port),
      SQL_USER: 'temporal',
      SQL_PASSWORD: o.secrets.temporal,
      SQL_DATABASE: db,
    };
    const stamp = path.join(o.stampDir, `.schema-${db}`);
    if (!existsSync(stamp)) {
      run(o.sqlTool, ['--quiet', 'create-database'], { env });
      run(o.sqlTool, ['setup-schema', '-v', '0.0'], { env });
      writeFileSync(stamp, '');
    }
    run(o.sqlTool, ['update-schema', '-d', path.join(o.schemaDir, dir, 'versioned')], { env });
  }
}

/** The connection profile of the cluster (the stock CLI's TOML format), written on every start. */
export function writeProfile(file: string, o: { address: string; namespace: string; tlsDir: string }): void {
  const toml = clientConfigToToml({
    profiles: {
      [CLUSTER_PROFILE]: {
        address: o.address,
        namespace: o.namespace,
        tls: {
          serverName: FRONTEND_SERVER_NAME,
          serverCACert: { path: path.join(o.tlsDir, 'ca.pem') },
          clientCert: { path: path.join(o.tlsDir, 'client.pem') },
          clientKey: { path: path.join(o.tlsDir, 'client.key') },
        },
      },
    },
  });
  writeFileSync(file, toml);
}
