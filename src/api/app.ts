/**
 * The OpenStack-compatible API on one port, in devstack's path layout: Keystone-lite under /identity,
 * Glance-lite under /image, Compute v2.1 under /compute. Fastify with zod schemas through
 * fastify-type-provider-zod, so the routes' schemas validate requests and generate the OpenAPI document
 * (GET /openapi.json); `inject` runs it socket-less in tests. Response bodies depend on the microversion,
 * so they are built by version-gated views and checked against Nova's api-samples in tests, not by
 * response schemas (a serializer would strip the fields a schema does not name).
 */
import { randomUUID } from 'node:crypto';

import fastifySwagger from '@fastify/swagger';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';

import { registerCompute } from './compute';
import type { ApiDeps } from './deps';
import { ApiFault, badRequest, IdentityFault } from './errors';
import { registerIdentity } from './identity';
import { registerImages } from './images';
import { plugin } from './plugin';
import type { Microversion } from './microversion';
import { MIN_VERSION, requestedVersion, versionHeaders } from './microversion';
import type { TokenClaims } from './tokens';
import { verifyToken } from './tokens';

declare module 'fastify' {
  interface FastifyRequest {
    /** The compute microversion asked for (2.1 outside /compute). */
    apiVersion: Microversion;
    /** The caller's token claims (undefined on the routes that need none). */
    auth: TokenClaims | undefined;
    /** Echoed as x-openstack-request-id / x-compute-request-id: the workflow id of a write. */
    requestId: string;
  }
}

/** Paths answered without a token: version documents, token issue, the OpenAPI document. */
function isPublic(url: string, method: string): boolean {
  const path = url.split('?')[0]!.replace(/\/+$/, '');
  if (path === '/openapi.json' || path === '' || path.startsWith('/documentation')) return true;
  if (path === '/identity' || path === '/identity/v3') return true;
  if (path === '/identity/v3/auth/tokens' && method === 'POST') return true;
  if (path === '/image' || path === '/image/versions') return true;
  return path === '/compute' || path === '/compute/v2' || path === '/compute/v2.1';
}

export interface BuildOptions {
  logger?: boolean;
}

export async function buildApp(deps: ApiDeps, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    routerOptions: { ignoreTrailingSlash: true },
    genReqId: () => `req-${randomUUID()}`,
    bodyLimit: 1024 * 1024,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Clients send an empty body with Content-Type: application/json (e.g. a DELETE): that is no body.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(badRequest('Malformed request body'), undefined);
    }
  });
  app.decorateRequest('apiVersion', { getter: () => MIN_VERSION });
  app.decorateRequest('auth', undefined);
  app.decorateRequest('requestId', '');

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Conductor on Temporal: OpenStack-compatible API (Keystone-lite, Glance-lite, Compute v2.1)',
        version: '2.60',
        description:
          'Compute microversions 2.1 to 2.60 (OpenStack-API-Version: compute X.Y). Response bodies depend on the microversion; see the README.',
      },
      components: { securitySchemes: { token: { type: 'apiKey', in: 'header', name: 'X-Auth-Token' } } },
      security: [{ token: [] }],
    },
    transform: jsonSchemaTransform,
  });

  app.addHook('onRequest', (req: FastifyRequest, _reply, done) => {
    try {
      authenticateRequest(req);
      done();
    } catch (err) {
      done(err as Error);
    }
  });
  function authenticateRequest(req: FastifyRequest): void {
    req.requestId = String(req.id);
    if (req.url.startsWith('/compute')) {
      const version = requestedVersion(req.headers);
      Object.defineProperty(req, 'apiVersion', { value: version, writable: true });
    }
    if (isPublic(req.url, req.method)) return;
    const token = req.headers['x-auth-token'];
    const claims =
      typeof token === 'string'
        ? verifyToken(deps.users.tokenKey, token, (deps.now ?? (() => new Date()))())
        : undefined;
    if (!claims) throw new IdentityFault(401, 'The request you have made requires authentication.');
    req.auth = claims;
  }

  app.addHook('onSend', (req, reply, payload, done) => {
    void reply.header('x-openstack-request-id', req.requestId);
    if (req.url.startsWith('/compute')) {
      void reply.header('x-compute-request-id', req.requestId);
      if (reply.statusCode !== 400 && reply.statusCode !== 406)
        for (const [k, v] of Object.entries(versionHeaders(req.apiVersion))) void reply.header(k, v);
    }
    done(null, payload);
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApiFault) return reply.status(err.code).send(err.body());
    if (err instanceof IdentityFault) return reply.status(err.code).send(err.body());
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issue = err.validation[0];
      const where = issue?.instancePath
        ? issue.instancePath.replace(/^\//, '').replace(/\//g, '.')
        : err.validationContext;
      return reply
        .status(400)
        .send(badRequest(`Invalid input for field/attribute ${where}. ${issue?.message ?? ''}`.trim()).body());
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500)
      return reply.status(status === 415 ? 400 : status).send(badRequest((err as Error).message).body());
    req.log.error(err);
    return reply.status(500).send(new ApiFault(500, 'Unexpected API Error. Please report this at the project.').body());
  });
  app.setNotFoundHandler((_req, reply) =>
    reply.status(404).send(new ApiFault(404, 'The resource could not be found.').body())
  );

  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  await app.register(
    plugin((scope) => registerIdentity(scope, deps)),
    { prefix: '/identity' }
  );
  await app.register(
    plugin((scope) => registerImages(scope, deps)),
    { prefix: '/image' }
  );
  await app.register(
    plugin((scope) => registerCompute(scope, deps)),
    { prefix: '/compute' }
  );
  return app;
}
