/**
 * scripts/nova-openapi.py builds, from the pinned nova sdist's request schemas (read at test time, never
 * copied), the OpenAPI description the "no 5xx" Schemathesis pass runs against: every operation in it is
 * a route this API serves, and it carries Nova's own checks (the metadata key pattern, the server
 * create's required name).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';
import { ROOT } from '../../helpers/cli';

interface Doc {
  paths: Record<string, Record<string, { requestBody?: { content: { 'application/json': { schema: unknown } } } }>>;
}

describe("Nova's request schemas as an OpenAPI description of the paths served here", () => {
  let api: TestApi;
  let doc: Doc;
  const dir = mkdtempSync(path.join(tmpdir(), 'nova-openapi-'));

  beforeAll(async () => {
    const novaDir = path.join(ROOT, '.tools', 'nova');
    const sdist = existsSync(novaDir) ? readdirSync(novaDir).find((f) => /^nova-.*\.tar\.gz$/.test(f)) : undefined;
    if (!sdist)
      throw new Error('the nova sdist is missing: run bash scripts/install-openstack-tools.sh (make test-deps)');
    const out = path.join(dir, 'nova-openapi.json');
    const run = spawnSync('python3', [path.join(ROOT, 'scripts', 'nova-openapi.py'), path.join(novaDir, sdist), out], {
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^nova-openapi: \d+ operations at 2\.60/);
    doc = JSON.parse(readFileSync(out, 'utf8')) as Doc;
    api = await openTestApi();
  });
  afterAll(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('describes only routes this API has', () => {
    const operations = Object.entries(doc.paths).flatMap(([p, methods]) =>
      Object.keys(methods).map((m) => ({
        method: m.toUpperCase(),
        url: `/compute/v2.1${p.replace(/\{(\w+)\}/g, ':$1')}`,
      }))
    );
    expect(operations.length).toBeGreaterThan(20);
    // Our routes name a path's parameters `:id` (and a metadata item's `:key`).
    const ours = (url: string) => url.replace(/:key$/, '\0').replace(/:\w+/g, ':id').replace('\0', ':key');
    const has = (o: { method: string; url: string }) => api.app.hasRoute({ method: o.method, url: ours(o.url) });
    const missing = operations.filter((o) => !has(o));
    expect(has({ method: 'GET', url: '/compute/v2.1/servers/:server_id/nothing-here' })).toBe(false);
    expect(missing).toEqual([]);
  });

  it("carries Nova's own checks: the metadata key pattern and the create's required name", () => {
    const body = (m: string, p: string) =>
      JSON.stringify(doc.paths[p]?.[m]?.requestBody?.content['application/json'].schema);
    expect(body('post', '/servers/{server_id}/metadata')).toContain('^[a-zA-Z0-9-_:. ]{1,255}$');
    expect(body('post', '/servers')).toMatch(/"required":\s*\["name"/);
  });
});
