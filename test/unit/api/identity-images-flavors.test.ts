/**
 * The API's skeleton through inject: Keystone-lite tokens (201, catalog, 401 in Keystone's shape,
 * expiry, tampering), microversion negotiation (echo, latest, 400, 406, Vary, request ids), the version
 * documents, Glance-lite and flavors, compared with Nova's api-samples for the version asked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { imageId } from '../../../src/api/ids';
import type { TestApi } from '../../helpers/api';
import { openTestApi, TEST_USERS } from '../../helpers/api';
import { keysOnly, novaSample } from '../../helpers/nova-samples';

describe('OpenStack API: identity, versions, images, flavors', () => {
  let api: TestApi;
  let admin: string;
  beforeAll(async () => {
    api = await openTestApi();
    admin = await api.token('admin');
  });
  afterAll(() => api.close());

  const get = (url: string, headers: Record<string, string> = {}, token: string | null = admin) =>
    api.app.inject({ method: 'GET', url, headers: { ...(token ? { 'x-auth-token': token } : {}), ...headers } });

  it('issues a project-scoped token with a catalog of compute, image and identity on one port', async () => {
    const u = TEST_USERS.users[0]!;
    const res = await api.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      payload: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: u.name, domain: { name: 'Default' }, password: u.password } },
          },
          scope: { project: { name: 'admin', domain: { name: 'Default' } } },
        },
      },
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers['x-subject-token']).toMatch(/^[\w-]+\.[\w-]+$/);
    const token = res.json<{
      token: {
        catalog: Array<{ type: string; endpoints: Array<{ url: string; interface: string }> }>;
        roles: Array<{ name: string }>;
        project: { name: string };
      };
    }>().token;
    expect(token.project.name).toBe('admin');
    expect(token.roles.map((r) => r.name).sort()).toEqual(['admin', 'member', 'reader']);
    const urls = Object.fromEntries(
      token.catalog.map((c) => [c.type, c.endpoints.find((e) => e.interface === 'public')!.url])
    );
    expect(urls).toEqual({
      compute: 'http://127.0.0.1:8774/compute/v2.1',
      image: 'http://127.0.0.1:8774/image',
      identity: 'http://127.0.0.1:8774/identity',
    });
  });

  it('refuses a wrong password with 401 in Keystone error shape, and a token for another project', async () => {
    const res = await api.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      payload: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: 'admin', domain: { name: 'Default' }, password: 'nope' } },
          },
        },
      },
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: { code: 401, title: 'Unauthorized', message: expect.any(String) as string } });
    const other = await api.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      payload: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: 'demo', domain: { name: 'Default' }, password: 'demo-secret' } },
          },
          scope: { project: { name: 'admin' } },
        },
      },
    });
    expect(other.statusCode).toBe(401);
  });

  it('answers 401 without a token, with a tampered one, and with an expired one', async () => {
    expect((await get('/compute/v2.1/flavors', {}, null)).statusCode).toBe(401);
    const [payload, mac] = admin.split('.');
    const tampered = `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), roles: ['admin'] })).toString('base64url')}.${mac}`;
    expect((await get('/compute/v2.1/flavors', {}, tampered)).statusCode).toBe(401);
    const later = await openTestApi({ now: () => new Date(Date.now() + 2 * 3600_000) });
    try {
      const res = await later.app.inject({
        method: 'GET',
        url: '/compute/v2.1/flavors',
        headers: { 'x-auth-token': admin },
      });
      expect(res.statusCode).toBe(401);
      expect(res.json<{ error: { code: number } }>().error.code).toBe(401);
    } finally {
      await later.close();
    }
  });

  it('serves the identity version documents keystoneauth discovers', async () => {
    const root = await get('/identity/', {}, null);
    expect(root.json<{ versions: { values: Array<{ id: string }> } }>().versions.values[0]!.id).toBe('v3.14');
    const v3 = await get('/identity/v3', {}, null);
    expect(v3.json<{ version: { links: Array<{ href: string }> } }>().version.links[0]!.href).toBe(
      'http://127.0.0.1:8774/identity/v3/'
    );
  });

  it('serves the compute version documents in the shape of Nova samples, max 2.60 min 2.1', async () => {
    const root = await get('/compute/', {}, null);
    expect(keysOnly(root.json())).toEqual(keysOnly(novaSample('versions/versions-get-resp')));
    const versions = root.json<{ versions: Array<{ id: string; version: string; min_version: string }> }>().versions;
    expect(versions.map((v) => v.id)).toEqual(['v2.0', 'v2.1']);
    expect(versions[1]).toMatchObject({ version: '2.60', min_version: '2.1' });
    const v21 = await get('/compute/v2.1/', {}, null);
    expect(keysOnly(v21.json())).toEqual(keysOnly(novaSample('versions/v21-version-get-resp')));
    const v2 = await get('/compute/v2/', {}, null);
    expect(keysOnly(v2.json())).toEqual(keysOnly(novaSample('versions/v2-version-get-resp')));
  });

  it('negotiates microversions: none is 2.1, latest is 2.60, legacy header, 400 malformed, 406 outside', async () => {
    const none = await get('/compute/v2.1/flavors');
    expect(none.headers['openstack-api-version']).toBe('compute 2.1');
    expect(none.headers['x-openstack-nova-api-version']).toBe('2.1');
    expect(none.headers.vary).toBe('OpenStack-API-Version, X-OpenStack-Nova-API-Version');
    expect(none.headers['x-compute-request-id']).toMatch(/^req-/);
    expect(none.headers['x-openstack-request-id']).toBe(none.headers['x-compute-request-id']);
    const latest = await get('/compute/v2.1/flavors', { 'OpenStack-API-Version': 'compute latest' });
    expect(latest.headers['openstack-api-version']).toBe('compute 2.60');
    const several = await get('/compute/v2.1/flavors', { 'OpenStack-API-Version': 'image 2.5, compute 2.53' });
    expect(several.headers['openstack-api-version']).toBe('compute 2.53');
    const legacy = await get('/compute/v2.1/flavors', { 'X-OpenStack-Nova-API-Version': '2.30' });
    expect(legacy.headers['openstack-api-version']).toBe('compute 2.30');
    const malformed = await get('/compute/v2.1/flavors', { 'OpenStack-API-Version': 'compute 2.x' });
    expect(malformed.statusCode).toBe(400);
    expect(Object.keys(malformed.json())).toEqual(['badRequest']);
    const above = await get('/compute/v2.1/flavors', { 'OpenStack-API-Version': 'compute 2.61' });
    expect(above.statusCode).toBe(406);
    expect(Object.keys(above.json())).toEqual(['HTTPNotAcceptable']);
    expect((await get('/compute/v2.1/flavors', { 'OpenStack-API-Version': 'compute 2.0' })).statusCode).toBe(406);
  });

  it('lists and shows images with deterministic UUIDs, filters and paging', async () => {
    const all = (await get('/image/v2/images')).json<{ images: Array<{ id: string; name: string }> }>();
    expect(all.images.map((i) => i.name).sort()).toEqual([
      'cirros',
      'dirty',
      'fedora-41-aarch64',
      'stubborn',
      'ubuntu-24.04',
    ]);
    const cirros = imageId('cirros');
    expect(cirros).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(all.images.find((i) => i.name === 'cirros')!.id).toBe(cirros);
    expect((await get('/image/v2/images?name=cirros')).json<{ images: unknown[] }>().images).toHaveLength(1);
    const byIds = await get(`/image/v2/images?id=in:${cirros},${imageId('ubuntu-24.04')}`);
    expect(byIds.json<{ images: unknown[] }>().images).toHaveLength(2);
    const first = (await get('/image/v2/images?limit=1')).json<{ images: Array<{ id: string }>; next: string }>();
    expect(first.images).toHaveLength(1);
    expect(first.next).toContain(`marker=${first.images[0]!.id}`);
    const rest = (await get(`/image/v2/images?marker=${first.images[0]!.id}`)).json<{ images: unknown[] }>();
    // Every image after the marker: the catalogue's others.
    expect(rest.images).toHaveLength(all.images.length - 1);
    expect(rest.images).not.toContainEqual(expect.objectContaining({ id: first.images[0]!.id }));
    expect((await get(`/image/v2/images/${cirros}`)).json<{ name: string }>().name).toBe('cirros');
    expect((await get('/image/v2/images/cirros')).statusCode).toBe(404);
    expect((await get('/image/', {}, null)).json<{ versions: Array<{ id: string }> }>().versions[0]!.id).toBe('v2.16');
  });

  it('lists and shows flavors (id = name) in the shape of Nova samples at 2.1 and 2.55', async () => {
    const list = await get('/compute/v2.1/flavors');
    expect(keysOnly(list.json())).toEqual(keysOnly(novaSample('flavors/flavors-list-resp')));
    const detail = await get('/compute/v2.1/flavors/detail');
    expect(keysOnly(detail.json())).toEqual(keysOnly(novaSample('flavors/flavors-detail-resp')));
    const show = await get('/compute/v2.1/flavors/m1.small');
    expect(keysOnly(show.json())).toEqual(keysOnly(novaSample('flavors/flavor-get-resp')));
    expect(show.json<{ flavor: { ram: number; vcpus: number; disk: number } }>().flavor).toMatchObject({
      ram: 2048,
      vcpus: 1,
      disk: 20,
    });
    const v255 = { 'OpenStack-API-Version': 'compute 2.55' };
    expect(keysOnly((await get('/compute/v2.1/flavors/m1.small', v255)).json())).toEqual(
      keysOnly(novaSample('flavors/v2.55/flavor-get-resp'))
    );
    expect(keysOnly((await get('/compute/v2.1/flavors', v255)).json())).toEqual(
      keysOnly(novaSample('flavors/v2.55/flavors-list-resp'))
    );
    expect((await get('/compute/v2.1/flavors/nope')).json()).toEqual({
      itemNotFound: { code: 404, message: 'Flavor nope could not be found.' },
    });
    const big = (await get('/compute/v2.1/flavors/detail?minRam=8192')).json<{ flavors: Array<{ id: string }> }>();
    expect(big.flavors.map((f) => f.id)).toEqual(['m1.large', 'm1.xlarge']);
    const paged = (await get('/compute/v2.1/flavors?limit=2')).json<{ flavors: unknown[]; flavors_links: unknown[] }>();
    expect(paged.flavors).toHaveLength(2);
    expect(paged.flavors_links).toHaveLength(1);
  });

  it('serves its OpenAPI document', async () => {
    const doc = (await get('/openapi.json', {}, null)).json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/identity/v3/auth/tokens', '/image/v2/images', '/compute/v2.1/flavors/{id}'])
    );
  });
});
