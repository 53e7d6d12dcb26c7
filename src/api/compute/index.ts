/** Compute v2.1 under /compute: version documents at the root, the API under /v2.1 (and /v2). */
import type { FastifyInstance } from 'fastify';

import { plugin } from '../plugin';
import type { ApiDeps } from '../deps';
import { registerFlavorManage } from './flavor-manage';
import { registerFlavors } from './flavors';
import { registerHosts } from './hosts';
import { registerInstanceActions } from './instance-actions';
import { registerLimits } from './limits';
import { registerMigrations } from './migrations';
import { registerServerGroups } from './server-groups';
import { registerServerMetadata } from './server-metadata';
import { registerServerActions } from './server-actions';
import { registerServerReads } from './servers-read';
import { registerServerWrites } from './servers-write';
import { registerVersions } from './versions';

export function registerCompute(app: FastifyInstance, deps: ApiDeps): void {
  registerVersions(app, deps);
  void app.register(
    plugin((v21) => {
      registerFlavors(v21, deps);
      registerFlavorManage(v21, deps);
      registerServerReads(v21, deps);
      registerServerWrites(v21, deps);
      registerServerActions(v21, deps);
      registerServerMetadata(v21, deps);
      registerServerGroups(v21, deps);
      registerInstanceActions(v21, deps);
      registerMigrations(v21, deps);
      registerHosts(v21, deps);
      registerLimits(v21, deps);
    }),
    { prefix: '/v2.1' }
  );
}
