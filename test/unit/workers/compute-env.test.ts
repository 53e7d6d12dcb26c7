import { spawn } from 'node:child_process';

import { afterEach, describe, expect, it, vi } from 'vitest';

import { codecServerEnvironment, computeEnvironment, storeCredentialNames } from '../../../src/workers/compute-env';
import {
  assertNoStoreCredentials,
  descendantPids,
  processCommandLine,
  processEnvironment,
} from '../../helpers/process-env';

const operatorShell = {
  PATH: '/usr/bin:/bin',
  HOME: '/root',
  DATABASE_URL: 'postgres://conductor:pw@db:5432/conductor',
  PGPASSWORD: 'pw',
  PGHOST: 'db',
  POSTGRES_PASSWORD: 'pw',
  STORE_URL: 'postgresql://conductor:pw@db/conductor',
  AWS_SECRET_ACCESS_KEY: 'unrelated-secret',
  CONDUCTOR_CODEC_AUTH: 'Bearer codec-server-secret',
  CONDUCTOR_CODEC_KEY_FILE: '/run/secrets/codec.key',
  TEMPORAL_ADDRESS: 'temporal:7233',
  TEMPORAL_TLS_CLIENT_CERT_PATH: '/certs/client.pem',
  COMPUTE_SPAWN_SECONDS: '1',
  LOG_LEVEL: 'DEBUG',
};

describe('the compute environment', () => {
  it('finds every store credential: DATABASE_URL, PG*, POSTGRES*, a postgres:// URL under any name', () => {
    expect(storeCredentialNames(operatorShell).sort()).toEqual(
      ['DATABASE_URL', 'PGHOST', 'PGPASSWORD', 'POSTGRES_PASSWORD', 'STORE_URL'].sort()
    );
  });

  it('keeps what compute reads (Temporal connection, codec key file, compute settings) and drops the rest', () => {
    const env = computeEnvironment(operatorShell, { COMPUTE_HOST: 'node-1', DATA_DIR: '/data' });
    expect(env).toEqual({
      PATH: '/usr/bin:/bin',
      HOME: '/root',
      CONDUCTOR_CODEC_KEY_FILE: '/run/secrets/codec.key',
      TEMPORAL_ADDRESS: 'temporal:7233',
      TEMPORAL_TLS_CLIENT_CERT_PATH: '/certs/client.pem',
      COMPUTE_SPAWN_SECONDS: '1',
      LOG_LEVEL: 'DEBUG',
      COMPUTE_HOST: 'node-1',
      DATA_DIR: '/data',
    });
    expect(storeCredentialNames(env)).toEqual([]);
  });

  it('gives the codec server its own settings on top, and still no store credential', () => {
    const env = codecServerEnvironment({ ...operatorShell, CONDUCTOR_CODEC_PORT: '8234' });
    expect(env).toMatchObject({ CONDUCTOR_CODEC_AUTH: 'Bearer codec-server-secret', CONDUCTOR_CODEC_PORT: '8234' });
    expect(storeCredentialNames(env)).toEqual([]);
    expect(env).not.toHaveProperty('AWS_SECRET_ACCESS_KEY');
  });

  it('drops a store URL even when it comes in an allowed variable', () => {
    expect(computeEnvironment({ TEMPORAL_X: 'postgres://u:p@h/db' })).toEqual({});
  });
});

describe('the /proc environment check', () => {
  const children: Array<ReturnType<typeof spawn>> = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });
  // spawn() returns once the child's execve has begun; until the kernel has set up the new program's
  // stack, /proc/<pid>/environ and cmdline read empty (fresh-clone CI once read {} there). The
  // command line naming the program means its environment is in place too (both are set together).
  const sleeper = async (env: Record<string, string>) => {
    const child = spawn('sleep', ['30'], { env, stdio: 'ignore' });
    children.push(child);
    const pid = child.pid!;
    await vi.waitFor(() => expect(processCommandLine(pid)).toBe('sleep 30'));
    return pid;
  };

  it('reads a live process environment and names the credentials it finds', async () => {
    const pid = await sleeper({ ...operatorShell });
    expect(processEnvironment(pid)).toMatchObject({ PGPASSWORD: 'pw', HOME: '/root' });
    expect(descendantPids(process.pid)).toContain(pid);
    expect(() => assertNoStoreCredentials([pid])).toThrow(
      /pid \d+ \(sleep 30\): DATABASE_URL, PGPASSWORD, PGHOST, POSTGRES_PASSWORD, STORE_URL/
    );
  });

  it('passes a process started with the compute environment, and refuses to pass no process at all', async () => {
    const pid = await sleeper(computeEnvironment(operatorShell, { COMPUTE_HOST: 'node-1' }));
    expect(() => assertNoStoreCredentials([pid])).not.toThrow();
    expect(() => assertNoStoreCredentials([])).toThrow(/no process to check/);
  });
});
