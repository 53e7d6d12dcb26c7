/**
 * docker-compose.yml is for users: no Docker engine runs here, so it is checked statically. It must
 * be valid Compose (the Compose JSON schema), pin its images, start services in a sound order, and run
 * the project's workers with exactly the commands and environment the code reads, run Temporal 1.32.2
 * with mTLS (the TLS files mounted wherever a client or server needs them), mount the payload codec key,
 * and give no compute service a store credential.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { FleetSchema } from '../../../src/domain/fleet';
import { CONDUCTOR_SEARCH_ATTRIBUTES } from '../../../src/shared/search-attributes';
import { storeCredentialNames } from '../../../src/workers/compute-env';
import { EnvSchema } from '../../../src/workers/config';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const SCHEMA = path.resolve(ROOT, '..', 'shared', 'data', 'compose-spec.json');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  environment?: Record<string, string | number>;
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test: unknown };
  volumes?: string[];
}
interface ComposeFile {
  services: Record<string, Service>;
}

const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as ComposeFile;
const services = Object.entries(compose.services);
const built = services.filter(([, s]) => s.build !== undefined);
const workers = built.filter(([, s]) => JSON.stringify(s.command).includes('-worker'));
const storeWorkers = workers.filter(([name]) => name === 'conductor' || name === 'scheduler');
const computes = workers.filter(([, s]) => JSON.stringify(s.command).includes('compute-worker'));

/** The Temporal connection profile, read by @temporalio/envconfig (as the stock temporal CLI does), not EnvSchema. */
const ENVCONFIG_VARIABLES = new Set([
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_NAME',
]);
const TEMPORAL_SERVER_VERSION = '1.32.2';
const env = (s: Service) => Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));

function dependencies(service: Service): Record<string, string> {
  const deps = service.depends_on ?? {};
  return Array.isArray(deps)
    ? Object.fromEntries(deps.map((d) => [d, 'service_started']))
    : Object.fromEntries(Object.entries(deps).map(([name, d]) => [name, d.condition]));
}

describe('docker-compose.yml', () => {
  it('validates against the Compose JSON schema', () => {
    if (!existsSync(SCHEMA)) {
      // CI always has ../shared beside the clone; elsewhere the schema may be absent.
      expect(process.env.CI, `${SCHEMA} is missing`).not.toBe('true');
      return;
    }
    // The schema names draft-07 by an https URI Ajv does not list; draft-07 is Ajv's own default.
    const { $schema: _draft, ...schema } = JSON.parse(readFileSync(SCHEMA, 'utf8')) as Record<string, unknown>;
    const validate = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
    // The validator does reject a broken file.
    const broken = structuredClone(compose) as unknown as { services: Record<string, Record<string, unknown>> };
    broken.services.postgres = { ...broken.services.postgres, healthcheck: { test: 42 }, restrat: 'always' };
    expect(validate(broken)).toBe(false);
  });

  it('pins every image to a tag', () => {
    for (const [name, service] of services.filter(([, s]) => s.image)) {
      expect(service.image, name).toMatch(/^[\w./-]+:[\w.-]+$/);
      expect(service.image, name).not.toMatch(/:latest$/);
    }
  });

  it('waits for a healthy dependency only where that dependency has a health check', () => {
    for (const [name, service] of services) {
      for (const [dep, condition] of Object.entries(dependencies(service))) {
        expect(compose.services[dep], `${name} depends on unknown ${dep}`).toBeDefined();
        if (condition === 'service_healthy')
          expect(compose.services[dep]?.healthcheck, `${dep} (for ${name})`).toBeDefined();
      }
    }
  });

  it('starts the workers after the Temporal setup has completed, the store workers once their store is healthy', () => {
    expect(workers.map(([n]) => n).sort()).toEqual(['conductor', 'node-1', 'node-2', 'node-3', 'scheduler']);
    for (const [name, service] of workers)
      expect(dependencies(service), name).toMatchObject({ 'temporal-setup': 'service_completed_successfully' });
    for (const [name, service] of storeWorkers)
      expect(dependencies(service), name).toMatchObject({ postgres: 'service_healthy' });
  });

  it('gives no compute service a store credential (no DATABASE_URL, PG*, postgres:// URL) nor a store dependency', () => {
    expect(computes).toHaveLength(3);
    for (const [name, service] of computes) {
      expect(storeCredentialNames(env(service)), name).toEqual([]);
      expect(
        Object.keys(env(service)).filter((k) => /^(DATABASE_URL|PG)/.test(k)),
        name
      ).toEqual([]);
      expect(Object.keys(dependencies(service)), name).not.toContain('postgres');
    }
    // The check does see the store workers' credential.
    for (const [name, service] of storeWorkers)
      expect(storeCredentialNames(env(service)), name).toEqual(['DATABASE_URL']);
  });

  it('runs Temporal server 1.32.2 as its four services, its schema job and admin tools of the same version', () => {
    const server = services.filter(([, s]) => s.image?.startsWith('temporalio/server:'));
    expect(server.map(([n]) => n).sort()).toEqual([
      'temporal-frontend',
      'temporal-history',
      'temporal-matching',
      'temporal-worker',
    ]);
    for (const [name, s] of server) {
      expect(s.image, name).toBe(`temporalio/server:${TEMPORAL_SERVER_VERSION}`);
      expect(JSON.stringify(s.command), name).toContain(`start --service ${name.replace('temporal-', '')}`);
      expect(dependencies(s), name).toMatchObject({
        'temporal-schema': 'service_completed_successfully',
        secrets: 'service_completed_successfully',
      });
    }
    for (const name of ['temporal-schema', 'temporal-setup', 'temporal-admin-tools'])
      expect(compose.services[name]?.image, name).toBe(`temporalio/admin-tools:${TEMPORAL_SERVER_VERSION}`);
    const schema = JSON.stringify(compose.services['temporal-schema']?.command);
    for (const step of ['create-database', 'setup-schema', 'update-schema', 'temporal_visibility'])
      expect(schema).toContain(step);
    expect(services.some(([, s]) => s.image?.startsWith('temporalio/auto-setup'))).toBe(false);
  });

  it('mounts the TLS files made by the set-up step wherever Temporal is served or called, and points at them', () => {
    const secrets = compose.services.secrets!;
    expect(secrets.volumes).toEqual(expect.arrayContaining(['certs:/certs', 'codec-key:/codec']));
    const script = readFileSync(path.join(ROOT, 'deploy', 'compose', 'gen-secrets.sh'), 'utf8');
    for (const file of ['ca.pem', 'frontend', 'internode', 'client', 'codec.key']) expect(script).toContain(file);
    const tlsUsers = services.filter(
      ([name]) => name.startsWith('temporal-') && name !== 'temporal-schema' && name !== 'temporal-postgres'
    );
    for (const [name, s] of [...tlsUsers, ...workers]) {
      expect(s.volumes, name).toContain('certs:/certs:ro');
    }
    for (const [name, s] of workers)
      expect(env(s), name).toMatchObject({
        TEMPORAL_ADDRESS: 'temporal-frontend:7233',
        TEMPORAL_TLS_CLIENT_CERT_PATH: '/certs/client.pem',
        TEMPORAL_TLS_CLIENT_KEY_PATH: '/certs/client.key',
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/certs/ca.pem',
      });
    const config = readFileSync(path.join(ROOT, 'deploy', 'compose', 'temporal.yaml'), 'utf8');
    expect(config).toMatch(/requireClientAuth: true/);
    for (const [, s] of services.filter(([, s]) => s.image?.startsWith('temporalio/server:')))
      expect(s.volumes).toContain('./deploy/compose/temporal.yaml:/etc/conductor-temporal/temporal.yaml:ro');
  });

  it('mounts the codec key into every worker and the codec server, which the Web UI is pointed at', () => {
    for (const [name, s] of workers) {
      expect(s.volumes, name).toContain('codec-key:/codec:ro');
      expect(env(s).CONDUCTOR_CODEC_KEY_FILE, name).toBe('/codec/codec.key');
    }
    const codec = compose.services['codec-server']!;
    expect(codec.command).toEqual(['node', 'dist/src/workers/codec-server.js']);
    expect(existsSync(path.join(ROOT, 'src', 'workers', 'codec-server.ts'))).toBe(true);
    expect(codec.volumes).toEqual(['codec-key:/codec:ro']);
    expect(EnvSchema.safeParse(env(codec)).error?.issues ?? []).toEqual([]);
    expect(storeCredentialNames(env(codec))).toEqual([]);
    expect(env(compose.services['temporal-ui']!).TEMPORAL_CODEC_ENDPOINT).toBe(
      `http://localhost:${env(codec).CONDUCTOR_CODEC_PORT}`
    );
  });

  it("runs each worker's real entry point with only the variables the code reads, all valid", () => {
    const known = new Set(Object.keys(EnvSchema.shape));
    for (const [name, service] of workers) {
      const command = service.command as string[];
      // Built code (npm run build in the Dockerfile): dist/src/workers/<role>-worker.js from src/workers/<role>-worker.ts.
      expect(command, name).toHaveLength(2);
      expect(command[0], name).toBe('node');
      const [, built, role] = /^dist\/(src\/workers\/(\w+)-worker)\.js$/.exec(command[1] ?? '') ?? [];
      expect(role, `${name}: ${command[1]}`).toMatch(/^(conductor|scheduler|compute)$/);
      expect(existsSync(path.join(ROOT, `${built}.ts`)), `${name}: ${built}.ts`).toBe(true);
      const vars = env(service);
      expect(
        Object.keys(vars).filter((k) => !known.has(k) && !ENVCONFIG_VARIABLES.has(k)),
        `${name}: unknown variables`
      ).toEqual([]);
      const parsed = EnvSchema.safeParse(vars);
      expect(parsed.error?.issues ?? [], name).toEqual([]);
    }
  });

  it('points the workers at the Temporal and PostgreSQL services it defines, with matching credentials', () => {
    const pg = compose.services.postgres?.environment ?? {};
    for (const [name, service] of workers)
      expect(compose.services[env(service).TEMPORAL_ADDRESS!.split(':')[0]!], name).toBeDefined();
    for (const [name, service] of storeWorkers) {
      const url = new URL(env(service).DATABASE_URL!);
      expect(compose.services[url.hostname], `${name}: ${url.hostname}`).toBeDefined();
      expect([url.username, url.password, url.pathname.slice(1)], name).toEqual([
        pg.POSTGRES_USER,
        pg.POSTGRES_PASSWORD,
        pg.POSTGRES_DB,
      ]);
    }
  });

  it('has one compute service per fleet host, differing only in COMPUTE_HOST and its volume', () => {
    const fleetFile = String(computes[0]?.[1].environment?.FLEET_FILE).replace(/^\/app\//, '');
    const fleet = FleetSchema.parse(JSON.parse(readFileSync(path.join(ROOT, fleetFile), 'utf8')));
    const hosts = computes.map(([, s]) => String(s.environment?.COMPUTE_HOST));
    expect(hosts.sort()).toEqual(fleet.hosts.map((h) => h.name).sort());
    const normalised = computes.map(([, s]) => {
      const { COMPUTE_HOST: _host, ...env } = s.environment ?? {};
      return JSON.stringify({ ...s, environment: env, volumes: undefined });
    });
    expect(new Set(normalised).size).toBe(1);
    for (const [name, service] of computes) {
      expect(service.volumes?.at(-1), name).toBe(`${String(service.environment?.COMPUTE_HOST)}:/data`);
    }
  });

  it('registers the search attributes the workflows set', () => {
    const setup = JSON.stringify(compose.services['temporal-setup']?.command);
    for (const { name } of CONDUCTOR_SEARCH_ATTRIBUTES) expect(setup).toContain(name);
  });

  it('builds the workers from a Dockerfile that ships the code and the fleet, built, and runs the built code', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    for (const line of ['COPY src ./src', 'COPY fleet ./fleet', 'RUN npm ci', 'WORKDIR /app']) {
      expect(dockerfile).toContain(line.split(' ').slice(0, 2).join(' '));
    }
    expect(dockerfile).toMatch(/^RUN npm run build\b/m);
    expect(dockerfile).toMatch(/^COPY .*tsconfig\.build\.json/m);
    expect(dockerfile).toMatch(/^COPY scripts\/build-workflow-bundle\.ts /m);
    expect(dockerfile).toContain('ENV NODE_ENV=production');
    const cmd = /^CMD (.*)$/m.exec(dockerfile)?.[1] ?? '';
    expect(JSON.parse(cmd)).toEqual(compose.services.conductor?.command);
    expect(dockerfile).not.toContain('tsx');
  });
});
