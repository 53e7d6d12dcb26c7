import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadEnv, temporalConnectionOptions } from '../../../src/workers/config';

describe('the Temporal connection comes from the stock CLI profile (envconfig)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'conductor-profile-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ca = path.join(dir, 'ca.pem');
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const file = path.join(dir, 'temporal.toml');
  writeFileSync(
    file,
    [
      '[profile.cluster]',
      'address = "10.0.0.5:7233"',
      'namespace = "prod"',
      '[profile.cluster.tls]',
      'server_name = "frontend.cluster.local"',
      `server_ca_cert_path = "${ca}"`,
    ].join('\n')
  );
  // HOME points at an empty folder: no ~/.config/temporalio/temporal.toml of the machine leaks in.
  const base = { HOME: dir };

  it('without a profile is plain 127.0.0.1:7233 in namespace default (make start)', () => {
    const env = loadEnv(base);
    expect(temporalConnectionOptions(env)).toEqual({ address: '127.0.0.1:7233' });
    expect(env.TEMPORAL_NAMESPACE).toBe('default');
  });

  it('takes address, namespace and TLS from the profile named by TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE', () => {
    const env = loadEnv({ ...base, TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cluster' });
    expect(env.TEMPORAL_NAMESPACE).toBe('prod');
    const options = temporalConnectionOptions(env);
    expect(options.address).toBe('10.0.0.5:7233');
    expect(options.tls).toMatchObject({ serverNameOverride: 'frontend.cluster.local' });
  });

  it('lets TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE override the profile, as the stock CLI does', () => {
    const env = loadEnv({
      ...base,
      TEMPORAL_CONFIG_FILE: file,
      TEMPORAL_PROFILE: 'cluster',
      TEMPORAL_ADDRESS: '127.0.0.1:17233',
      TEMPORAL_NAMESPACE: 'other',
    });
    expect(env.TEMPORAL_ADDRESS).toBe('127.0.0.1:17233');
    expect(env.TEMPORAL_NAMESPACE).toBe('other');
    expect(temporalConnectionOptions(env).tls).toBeDefined();
  });
});
