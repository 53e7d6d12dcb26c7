/**
 * serverGroup: the server groups' small API for the stock `temporal` CLI (the conductor CLI's
 * `server-group` commands call the same activities through it): `{"action": "create", "name", "policy"}`,
 * `{"action": "list"}`, `{"action": "show", "name"}`, `{"action": "delete", "name"}`. Fails typed:
 * InvalidRequest, ServerGroupNotFound, ServerGroupInUse (a group with members is not deleted).
 */
import type { ServerGroupInput } from '../domain/schemas';
import { ServerGroupInputSchema } from '../domain/schemas';
import type { ServerGroup } from '../activities/conductor/server-groups';
import { parseInput, refusalFailure } from './lib/failures';
import { conductor } from './lib/proxies';
import { FailureType } from '../domain/errors';

export type { ServerGroup };

/** `list` gives every group; the other actions the one group (as it was, for `delete`). */
export async function serverGroup(input: ServerGroupInput): Promise<{ groups: ServerGroup[] }> {
  const req = parseInput(ServerGroupInputSchema, input);
  try {
    switch (req.action) {
      case 'create':
        return { groups: [await conductor.createServerGroup({ name: req.name, policy: req.policy })] };
      case 'list':
        return { groups: await conductor.listServerGroups() };
      case 'show':
        return { groups: [await conductor.getServerGroup({ name: req.name })] };
      case 'delete':
        return { groups: [await conductor.deleteServerGroup({ name: req.name })] };
    }
  } catch (err) {
    throw refusalFailure(err, FailureType.OperationFailed);
  }
}
