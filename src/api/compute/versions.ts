/** Compute version documents: `/compute/`, `/compute/v2/`, `/compute/v2.1/` (keystoneauth discovery). */
import type { FastifyInstance } from 'fastify';

import type { ApiDeps } from '../deps';
import { format, MAX_VERSION, MIN_VERSION } from '../microversion';
import { computeBase } from './common';

const MEDIA = [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }];

function v2(deps: ApiDeps) {
  return {
    id: 'v2.0',
    status: 'DEPRECATED',
    version: '',
    min_version: '',
    updated: '2025-07-04T12:00:00Z',
    links: [{ rel: 'self', href: `${computeBase(deps)}/v2/` }],
  };
}

function v21(deps: ApiDeps) {
  return {
    id: 'v2.1',
    status: 'CURRENT',
    version: format(MAX_VERSION),
    min_version: format(MIN_VERSION),
    updated: '2013-07-23T11:33:21Z',
    links: [{ rel: 'self', href: `${computeBase(deps)}/v2.1/` }],
  };
}

const described = [{ rel: 'describedby', type: 'text/html', href: 'http://docs.openstack.org/' }];

export function registerVersions(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/', { schema: { tags: ['compute'], summary: 'Compute versions' } }, () => ({
    versions: [v2(deps), v21(deps)],
  }));
  app.get('/v2', { schema: { tags: ['compute'], summary: 'Compute v2.0 version document' } }, () => {
    const v = v2(deps);
    return { version: { ...v, links: [...v.links, ...described], 'media-types': MEDIA } };
  });
  app.get('/v2.1', { schema: { tags: ['compute'], summary: 'Compute v2.1 version document' } }, () => {
    const v = v21(deps);
    return { version: { ...v, links: [...v.links, ...described], 'media-types': MEDIA } };
  });
}
