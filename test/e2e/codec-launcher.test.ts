/**
 * `npm start` with a payload codec key and the PostgreSQL store (DATABASE_URL): the launcher runs the
 * dev server (its Web UI pointed at the codec server), the codec server, the conductor, the scheduler
 * and a compute worker per host. A build and a rebuild carrying an admin password and user data:
 * the stock `temporal` CLI without the codec sees only ciphertext; with `--codec-endpoint` (the codec
 * server the launcher started) it sees the plain input, and so does the Web UI in a browser; neither
 * the store, nor the logs, nor the hypervisor's files hold the secrets. And no compute process has a store credential in its
 * environment (/proc/<pid>/environ).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';

import type { InstanceRecord } from '../../src/domain/instance';
import { dataConverterFor, ENCRYPTED_ENCODING, KEY_ID_METADATA } from '../../src/workers/codec';
import { runCli } from '../helpers/cli';
import { freePort } from '../helpers/ports';
import {
  assertNoStoreCredentials,
  computeWorkerPids,
  processEnvironment,
  storeCredentialsOf,
} from '../helpers/process-env';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
const pgAdminUrl = process.env.TEST_DATABASE_URL;
if (!pgAdminUrl && process.env.CI === 'true')
  throw new Error('CI=true but TEST_DATABASE_URL is unset: start PostgreSQL with `eval "$(scripts/test-postgres.sh)"`');

const ADMIN_PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const USER_DATA_TEXT = `#cloud-config\npassword: ud-${randomBytes(8).toString('hex')}\n`;
const USER_DATA = Buffer.from(USER_DATA_TEXT).toString('base64');
const REBUILD_PASSWORD = `pw2-${randomBytes(8).toString('hex')}`;
const REBUILD_USER_DATA = Buffer.from(`#cloud-config\nrebuilt: ${randomBytes(8).toString('hex')}\n`).toString('base64');
const SECRETS = [ADMIN_PASSWORD, USER_DATA, USER_DATA_TEXT.split('\n')[1]!, REBUILD_PASSWORD, REBUILD_USER_DATA];
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface JsonPayload {
  metadata: Record<string, string>;
  data: string;
}

/** The input payload of a `temporal workflow show -o json` document (its first event). */
function startInput(show: string): JsonPayload {
  const events = (JSON.parse(show) as { events: Array<Record<string, { input?: { payloads: JsonPayload[] } }>> })
    .events;
  return events[0]!.workflowExecutionStartedEventAttributes!.input!.payloads[0]!;
}

/** Every payload in a `temporal workflow show -o json` document, with where it is and its encoding. */
function payloadsIn(node: unknown, at: string): Array<{ path: string; encoding: string }> {
  if (Array.isArray(node)) return node.flatMap((v, i) => payloadsIn(v, `${at}[${i}]`));
  if (typeof node !== 'object' || node === null) return [];
  const o = node as Record<string, unknown>;
  const metadata = o.metadata as Record<string, string> | undefined;
  const here =
    typeof metadata?.encoding === 'string'
      ? [{ path: at, encoding: Buffer.from(metadata.encoding, 'base64').toString() }]
      : [];
  return [...here, ...Object.entries(o).flatMap(([k, v]) => (k === 'metadata' ? [] : payloadsIn(v, `${at}.${k}`)))];
}

describe.skipIf(!pgAdminUrl)('npm start with a codec key and the PostgreSQL store', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'conductor-codec-'));
  const keyFile = path.join(dir, 'codec.key');
  const dbName = `conductor_codec_${randomBytes(5).toString('hex')}`;
  let databaseUrl = '';
  let launcher: ChildProcess;
  let output = '';
  let port = 0;
  let uiPort = 0;
  let codecPort = 0;
  let client: Client;

  async function temporal(...args: string[]): Promise<string> {
    const { stdout } = await run(inject('temporalCli'), [...args, '--address', `127.0.0.1:${port}`, '-o', 'json'], {
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  }
  const codecFlags = () => ['--codec-endpoint', `http://127.0.0.1:${codecPort}`];

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: pgAdminUrl });
    await admin.connect();
    await admin.query(`create database ${dbName}`);
    await admin.end();
    const url = new URL(pgAdminUrl!);
    url.pathname = `/${dbName}`;
    databaseUrl = url.toString();

    // Rotation in the key file: k2 encrypts, k1 only decrypts.
    writeFileSync(keyFile, `k2:${randomBytes(32).toString('base64')}\nk1:${randomBytes(32).toString('base64')}\n`);
    [port, uiPort, codecPort] = [await freePort(), await freePort(), await freePort()];
    const fleetFile = path.join(dir, 'fleet.json');
    writeFileSync(
      fleetFile,
      JSON.stringify({
        hosts: [
          { name: 'sec-a', availabilityZone: 'az1', vcpus: 16, memoryMb: 65536, diskGb: 1000 },
          { name: 'sec-b', availabilityZone: 'az1', vcpus: 8, memoryMb: 32768, diskGb: 500 },
        ],
      })
    );
    launcher = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'launcher.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATA_DIR: path.join(dir, 'data'),
        FLEET_FILE: fleetFile,
        TEMPORAL_PORT: String(port),
        TEMPORAL_UI_PORT: String(uiPort),
        API_PORT: String(await freePort()),
        TEMPORAL_CLI_PATH: inject('temporalCli'),
        COMPUTE_SPAWN_SECONDS: '0.5',
        RECONCILE_PERIOD_SECONDS: '0',
        LOG_LEVEL: 'DEBUG',
        DATABASE_URL: databaseUrl,
        // libpq-style variables an operator's shell may hold: they reach the store's workers, never compute.
        PGAPPNAME: 'conductor-codec-e2e',
        PGCONNECT_TIMEOUT: '10',
        CONDUCTOR_CODEC_KEY_FILE: keyFile,
        CONDUCTOR_CODEC_PORT: String(codecPort),
        // No CONDUCTOR_CODEC_AUTH: the Web UI sends no Authorization header (the check is unit-tested).
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launcher.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    launcher.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await vi.waitFor(
      () => {
        if (launcher.exitCode !== null) throw new Error(`launcher exited ${launcher.exitCode}:\n${output}`);
        if (!output.includes('Conductor on Temporal is running')) throw new Error(`launcher not ready:\n${output}`);
      },
      { timeout: 150_000, interval: 250 }
    );
    client = new Client({
      connection: await Connection.connect({ address: `127.0.0.1:${port}` }),
      dataConverter: dataConverterFor({ CONDUCTOR_CODEC_KEY_FILE: keyFile }),
    });
  }, 180_000);

  afterAll(async () => {
    await client?.connection.close();
    if (launcher && launcher.exitCode === null) {
      const exited = new Promise((resolve) => launcher.once('exit', resolve));
      launcher.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
      if (launcher.exitCode === null) launcher.kill('SIGKILL');
    }
    const admin = new pg.Client({ connectionString: pgAdminUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('gives no compute process a store credential, while the store workers have theirs', () => {
    const computes = computeWorkerPids(launcher.pid!);
    expect(computes).toHaveLength(2);
    assertNoStoreCredentials(computes);
    for (const pid of computes) {
      const env = processEnvironment(pid);
      expect(env.CONDUCTOR_CODEC_KEY_FILE).toBe(keyFile); // it decrypts its activity inputs
      expect(env.CONDUCTOR_CODEC_AUTH).toBeUndefined();
      expect(env.COMPUTE_HOST).toMatch(/^sec-[ab]$/);
    }
    // Nor has the codec server, which has the codec's own settings.
    const codecServer = computeWorkerPids(launcher.pid!, /codec-server/);
    expect(codecServer).toHaveLength(1);
    assertNoStoreCredentials(codecServer);
    expect(processEnvironment(codecServer[0]!).CONDUCTOR_CODEC_PORT).toBe(String(codecPort));
    // The check sees a credential where there is one: the conductor holds the store's.
    const conductor = computeWorkerPids(launcher.pid!, /conductor-worker/);
    expect(conductor).toHaveLength(1);
    expect(storeCredentialsOf(conductor)[0]!.variables).toEqual(expect.arrayContaining(['DATABASE_URL', 'PGAPPNAME']));
  });

  it('points the Web UI at the codec server', async () => {
    const settings = (await (await fetch(`http://127.0.0.1:${uiPort}/api/v1/settings`)).json()) as {
      Codec?: { Endpoint?: string };
    };
    expect(settings.Codec?.Endpoint).toBe(`http://localhost:${codecPort}`);
    expect(output).toContain(`--codec-endpoint http://localhost:${codecPort}`);
  });

  it('builds and rebuilds with secrets: ciphertext without the codec, the plain input with it, no secret stored or logged', async () => {
    const instanceId = '8f6f2a48-5a2c-4d0e-9b6e-6f1f0c3a9e21';
    const record = await client.workflow.execute<(input: unknown) => Promise<InstanceRecord>>('buildInstance', {
      taskQueue: 'conductor',
      workflowId: 'build-secret-1',
      args: [
        {
          name: 'secret-1',
          flavor: 'm1.small',
          image: 'cirros',
          instanceId,
          adminPassword: ADMIN_PASSWORD,
          userData: USER_DATA,
        },
      ],
    });
    expect(record).toMatchObject({ instanceId, vmState: 'active' });

    // The stock CLI without the codec: the input and every other payload are ciphertext, key id in the metadata.
    const raw = await temporal('workflow', 'show', '--workflow-id', 'build-secret-1');
    const events = (JSON.parse(raw) as { events: Array<Record<string, { input?: { payloads: JsonPayload[] } }>> })
      .events;
    const input = events[0]!.workflowExecutionStartedEventAttributes!.input!.payloads[0]!;
    const meta = (k: string) => Buffer.from(input.metadata[k]!, 'base64').toString();
    expect(meta('encoding')).toBe(ENCRYPTED_ENCODING);
    expect(meta(KEY_ID_METADATA)).toBe('k2');
    // Every payload is encrypted but search attributes and the SDK's patch and local-activity marker
    // metadata (not payloads the codec sees, and no secret goes into them).
    const plainPayloads = payloadsIn(JSON.parse(raw), '').filter((p) => p.encoding !== ENCRYPTED_ENCODING);
    expect(payloadsIn(JSON.parse(raw), '').length).toBeGreaterThan(10);
    // Also the SDK's own metadata of a local activity's marker (`details.data`: its sequence number,
    // type and times); the local activity's result (`details.result`) is encrypted like any payload.
    for (const p of plainPayloads)
      expect(p.path).toMatch(
        /searchAttributes\.indexedFields|patch-data|markerRecordedEventAttributes\.details\.data\./
      );
    for (const secret of SECRETS) expect(raw).not.toContain(secret);
    // …and the placement attempt that carried them to the host, likewise.
    const attempt = await temporal('workflow', 'show', '--workflow-id', `place-build-${instanceId}`);
    for (const secret of SECRETS) expect(attempt).not.toContain(secret);

    // With --codec-endpoint (the codec server npm start runs) the same history shows the plain input.
    const decoded = startInput(await temporal('workflow', 'show', '--workflow-id', 'build-secret-1', ...codecFlags()));
    expect(Buffer.from(decoded.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(decoded.data, 'base64').toString())).toMatchObject({
      name: 'secret-1',
      adminPassword: ADMIN_PASSWORD,
      userData: USER_DATA,
    });
    // `npm run temporal` (the pinned CLI) with the key configured decodes through it by itself.
    const pinned = await runCli(
      path.join(ROOT, 'src', 'workers', 'temporal-cli.ts'),
      ['workflow', 'show', '--workflow-id', 'build-secret-1', '--address', `127.0.0.1:${port}`, '-o', 'json'],
      {
        CONDUCTOR_CODEC_KEY_FILE: keyFile,
        CONDUCTOR_CODEC_PORT: String(codecPort),
        TEMPORAL_CLI_PATH: inject('temporalCli'),
      }
    );
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(JSON.parse(Buffer.from(startInput(pinned.stdout).data, 'base64').toString())).toMatchObject({
      adminPassword: ADMIN_PASSWORD,
    });
    // The codec server's /decode returns the plain input.
    const res = (await (
      await fetch(`http://127.0.0.1:${codecPort}/decode`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default' },
        body: JSON.stringify({ payloads: [input] }),
      })
    ).json()) as { payloads: JsonPayload[] };
    expect(JSON.parse(Buffer.from(res.payloads[0]!.data, 'base64').toString())).toMatchObject({
      name: 'secret-1',
      adminPassword: ADMIN_PASSWORD,
      userData: USER_DATA,
    });

    // The hypervisor got them: it keeps that a password was set and the hash of the user data, not them.
    const guestFile = path.join(dir, 'data', 'compute', record.host!, 'guests', `${instanceId}.json`);
    const guests = () => readFileSync(guestFile, 'utf8');
    expect((JSON.parse(guests()) as { guests: Record<string, unknown> }).guests[instanceId]).toMatchObject({
      adminPasswordSet: true,
      userDataSha256: sha256(USER_DATA),
    });

    const rebuilt = await client.workflow.execute<(input: unknown) => Promise<InstanceRecord>>('rebuild', {
      taskQueue: 'conductor',
      workflowId: 'rebuild-secret-1',
      args: [{ instanceId, adminPassword: REBUILD_PASSWORD, userData: REBUILD_USER_DATA }],
    });
    expect(rebuilt).toMatchObject({ instanceId, vmState: 'active' });
    expect((JSON.parse(guests()) as { guests: Record<string, unknown> }).guests[instanceId]).toMatchObject({
      adminPasswordSet: true,
      userDataSha256: sha256(REBUILD_USER_DATA),
    });
    const rebuildHistory = await temporal('workflow', 'show', '--workflow-id', 'rebuild-secret-1');
    for (const secret of SECRETS) expect(rebuildHistory).not.toContain(secret);
    const rebuildInput = startInput(
      await temporal('workflow', 'show', '--workflow-id', 'rebuild-secret-1', ...codecFlags())
    );
    expect(JSON.parse(Buffer.from(rebuildInput.data, 'base64').toString())).toMatchObject({
      adminPassword: REBUILD_PASSWORD,
      userData: REBUILD_USER_DATA,
    });

    // Nowhere at rest or in the logs: every row of every store table, the hosts' files, every process's output.
    const store = new pg.Client({ connectionString: databaseUrl });
    await store.connect();
    let dump = '';
    try {
      const tables = await store.query<{ t: string }>(
        `select table_name as t from information_schema.tables where table_schema = 'public'`
      );
      expect(tables.rows.map((r) => r.t)).toEqual(expect.arrayContaining(['instances', 'instance_actions']));
      for (const { t } of tables.rows) {
        const rows = await store.query<{ row: string }>(`select t::text as row from "${t}" t`);
        dump += rows.rows.map((r) => r.row).join('\n');
      }
    } finally {
      await store.end();
    }
    expect(dump).toContain(instanceId);
    expect(output).toContain(instanceId); // the DEBUG logs do talk about the instance
    for (const secret of SECRETS) {
      expect(dump).not.toContain(secret);
      expect(guests()).not.toContain(secret);
      expect(output).not.toContain(secret);
    }
  });

  it('shows the decoded input in the Web UI (headless Chromium), through the codec server', async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
    await client.workflow.execute('buildInstance', {
      taskQueue: 'conductor',
      workflowId: 'build-secret-ui',
      args: [{ name: 'secret-ui', flavor: 'm1.small', image: 'cirros', adminPassword: ADMIN_PASSWORD }],
    });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const decodeCalls: number[] = [];
      // The browser itself calls the codec server (CORS from the UI's origin): /decode?preserveStorageRefs=true.
      page.on('response', (r) => {
        const url = new URL(r.url());
        if (url.port === String(codecPort) && url.pathname === '/decode') decodeCalls.push(r.status());
      });
      const base = `http://localhost:${uiPort}/namespaces/default/workflows`;
      await page.goto(`${base}?query=${encodeURIComponent('WorkflowId="build-secret-ui"')}`);
      const link = page.getByRole('link', { name: 'build-secret-ui' }).first();
      await link.waitFor({ timeout: 30_000 });
      await link.click();
      await page.waitForURL((url) => url.pathname.includes('/workflows/build-secret-ui/'), { timeout: 30_000 });
      // The Input card: decoded by the browser through the codec server, so the plain JSON shows.
      await page.getByText(ADMIN_PASSWORD).first().waitFor({ timeout: 30_000 });
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'web-ui-codec.png'), fullPage: true });
      expect(decodeCalls.length).toBeGreaterThan(0);
      expect(decodeCalls.every((status) => status === 200)).toBe(true);
    } finally {
      await browser.close();
    }
  });
});
