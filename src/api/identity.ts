/**
 * Keystone-lite under /identity: the version documents and `POST /v3/auth/tokens` (password method,
 * project scope), answered 201 with `X-Subject-Token` and a catalog naming compute, image and identity
 * on this one port. Failures in Keystone's error shape. NOTE(nova): a token issuer for this API, not
 * Keystone (see users.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { ApiDeps } from './deps';
import { IdentityFault } from './errors';
import { keystoneId } from './ids';
import { claimsFor, issueToken } from './tokens';
import { authenticate } from './users';

const UPDATED = '2024-01-01T00:00:00Z';

function v3Document(base: string) {
  return {
    id: 'v3.14',
    status: 'stable',
    updated: UPDATED,
    links: [{ rel: 'self', href: `${base}/identity/v3/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  };
}

const NamedDomain = z.object({ id: z.string().optional(), name: z.string().optional() }).optional();

const AuthRequestSchema = z.object({
  auth: z.object({
    identity: z.object({
      methods: z.array(z.string()).min(1),
      password: z
        .object({
          user: z.object({
            id: z.string().optional(),
            name: z.string().optional(),
            domain: NamedDomain,
            password: z.string(),
          }),
        })
        .optional(),
    }),
    scope: z
      .object({
        project: z.object({ id: z.string().optional(), name: z.string().optional(), domain: NamedDomain }).optional(),
      })
      .passthrough()
      .optional(),
  }),
});

function endpoint(type: string, name: string, url: string) {
  return {
    type,
    name,
    id: keystoneId('role', `service:${type}`),
    endpoints: ['public', 'internal', 'admin'].map((iface) => ({
      id: keystoneId('role', `endpoint:${type}:${iface}`),
      interface: iface,
      region: 'RegionOne',
      region_id: 'RegionOne',
      url,
    })),
  };
}

export function registerIdentity(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const base = deps.publicUrl;
  r.get('/', { schema: { tags: ['identity'], summary: 'Identity versions' } }, () => ({
    versions: { values: [v3Document(base)] },
  }));
  r.get('/v3', { schema: { tags: ['identity'], summary: 'Identity v3 version document' } }, () => ({
    version: v3Document(base),
  }));

  r.post(
    '/v3/auth/tokens',
    {
      schema: { tags: ['identity'], summary: 'Issue a token (password, project scope)', body: AuthRequestSchema },
      // Keystone's shape for a malformed request too.
      errorHandler: (err, _req, reply) => {
        const fault = err instanceof IdentityFault ? err : new IdentityFault(400, `Invalid request: ${err.message}`);
        void reply.status(fault.code).send(fault.body());
      },
    },
    async (req: FastifyRequest<{ Body: z.infer<typeof AuthRequestSchema> }>, reply) => {
      const { identity, scope } = req.body.auth;
      const password = identity.password;
      if (!identity.methods.includes('password') || !password)
        throw new IdentityFault(401, 'The request you have made requires authentication.');
      const wanted = password.user;
      const name = wanted.name ?? deps.users.users.find((u) => keystoneId('user', u.name) === wanted.id)?.name ?? '';
      const user = authenticate(deps.users, name, wanted.password);
      if (!user) throw new IdentityFault(401, 'The request you have made requires authentication.');
      const project = scope?.project;
      if (project && project.name !== user.project && project.id !== keystoneId('project', user.project))
        throw new IdentityFault(
          401,
          `User ${keystoneId('user', user.name)} has no access to project ${project.name ?? project.id ?? ''}`
        );
      const now = (deps.now ?? (() => new Date()))();
      const claims = claimsFor(user, now, deps.tokenTtlSeconds);
      const domain = { id: 'default', name: 'Default' };
      void reply.header('X-Subject-Token', issueToken(deps.users.tokenKey, claims));
      return reply.status(201).send({
        token: {
          methods: ['password'],
          expires_at: claims.expiresAt.replace(/\.(\d{3})Z$/, '.$1000Z'),
          issued_at: claims.issuedAt.replace(/\.(\d{3})Z$/, '.$1000Z'),
          audit_ids: [claims.auditId],
          user: { id: claims.userId, name: claims.userName, domain, password_expires_at: null },
          project: { id: claims.projectId, name: claims.projectName, domain },
          is_domain: false,
          roles: claims.roles.map((role) => ({ id: keystoneId('role', role), name: role })),
          catalog: [
            endpoint('compute', 'nova', `${base}/compute/v2.1`),
            endpoint('image', 'glance', `${base}/image`),
            endpoint('identity', 'keystone', `${base}/identity`),
          ],
        },
      });
    }
  );
}
