/**
 * confirmResize / revertResize right after the server shows VERIFY_RESIZE: the record says `resized` a
 * moment before the resize workflow opens its decision, and an Update in between is refused ("no resize
 * awaits confirmation"). The API asks again while the record still says resized (Tempest's
 * test_resize_server_confirm_from_stopped met the 409 on a loaded machine), and answers 409 otherwise.
 */
import { randomUUID } from 'node:crypto';

import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { keystoneId } from '../../../src/api/ids';
import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';

const early = () =>
  Object.assign(new Error('update rejected'), {
    cause: { type: 'InstanceInvalidState', message: 'Cannot confirmResize: no resize awaits confirmation' },
  });

describe('OpenStack API: a resize decision asked as the workflow opens it', () => {
  let api: TestApi;
  let demo: string;
  /** Per workflow id: how many Updates to refuse before accepting, and how many were asked. */
  const refusals = new Map<string, number>();
  const asked = new Map<string, number>();

  beforeAll(async () => {
    const fake = {
      workflow: {
        getHandle: (workflowId: string) => ({
          describe: () => Promise.resolve({ status: { name: 'RUNNING' } }),
          executeUpdate: () => {
            asked.set(workflowId, (asked.get(workflowId) ?? 0) + 1);
            const left = refusals.get(workflowId) ?? 0;
            if (left === 0) return Promise.resolve({});
            refusals.set(workflowId, left - 1);
            return Promise.reject(early());
          },
        }),
      },
    };
    api = await openTestApi({ temporal: () => Promise.resolve(fake as unknown as Client) });
    demo = await api.token('demo');
  });
  afterAll(async () => {
    await api.close();
  });

  async function resized(workflowId: string): Promise<string> {
    const instanceId = randomUUID();
    await api.deps.instances.create({
      instanceId,
      name: 'vm',
      vmState: 'resized',
      taskState: null,
      powerState: 'shutdown',
      host: 'node-2',
      availabilityZone: 'nova',
      flavor: 'm1.small',
      image: 'cirros',
      vcpus: 1,
      memoryMb: 2048,
      diskGb: 20,
      serverGroup: null,
    });
    await api.deps.api.setInstanceOwner(instanceId, {
      projectId: keystoneId('project', 'demo'),
      userId: keystoneId('user', 'demo'),
    });
    await api.deps.instances.startAction(instanceId, 'resize', workflowId);
    return instanceId;
  }
  const confirm = (id: string) =>
    api.app.inject({
      method: 'POST',
      url: `/compute/v2.1/servers/${id}/action`,
      payload: { confirmResize: null },
      headers: { 'x-auth-token': demo, 'OpenStack-API-Version': 'compute 2.60' },
    });

  it('asks again until the workflow takes the decision', async () => {
    const id = await resized('resize-a');
    refusals.set('resize-a', 2);
    const res = await confirm(id);
    expect(res.statusCode).toBe(204);
    expect(asked.get('resize-a')).toBe(3);
  });

  it('answers 409 at once when the record no longer says resized', async () => {
    const id = await resized('resize-b');
    refusals.set('resize-b', 1);
    // The record moved on (the workflow reverted by itself, say) while the refusal was on its way.
    const original = api.deps.instances.find.bind(api.deps.instances);
    let reads = 0;
    api.deps.instances.find = async (instanceId: string) => {
      const found = await original(instanceId);
      return found && instanceId === id && ++reads > 1 ? { ...found, vmState: 'active' } : found;
    };
    try {
      const res = await confirm(id);
      expect(res.statusCode).toBe(409);
      expect(res.json<{ conflictingRequest: { message: string } }>().conflictingRequest.message).toMatch(
        /no resize awaits confirmation/
      );
      expect(asked.get('resize-b')).toBe(1);
    } finally {
      api.deps.instances.find = original;
    }
  });
});
