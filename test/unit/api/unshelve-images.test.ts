/**
 * The Compute API's `unshelve` action (the `unshelve` workflow started with what the body asks, by
 * microversion; its refusal answered as Nova's 409) and the image API's stored images (snapshots and
 * shelved images beside the catalogue; deleted ones gone). Temporal is a recording stub.
 */
import { randomUUID } from 'node:crypto';

import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { imageId, keystoneId } from '../../../src/api/ids';
import type { TestApi } from '../../helpers/api';
import { openTestApi } from '../../helpers/api';

describe('OpenStack API: unshelve and stored images', () => {
  let api: TestApi;
  let demo: string;
  const server = randomUUID();
  const started: Array<{ type: string; workflowId: string; args: unknown[] }> = [];
  /** The failure the next workflow ends with (none: it completes). */
  let failWith: { type: string; message: string } | undefined;

  const stub = {
    workflow: {
      start: (type: string, options: { workflowId: string; args: unknown[] }) => {
        started.push({ type, workflowId: options.workflowId, args: options.args });
        const failure = failWith;
        return Promise.resolve({
          workflowId: options.workflowId,
          describe: () => Promise.resolve({ status: { name: 'COMPLETED' } }),
          result: () =>
            failure ? Promise.reject(Object.assign(new Error('failed'), { cause: failure })) : Promise.resolve({}),
        });
      },
    },
  } as unknown as Client;

  beforeAll(async () => {
    api = await openTestApi({ temporal: () => Promise.resolve(stub) });
    demo = await api.token('demo');
    await api.deps.instances.create({
      instanceId: server,
      name: 'vm',
      vmState: 'shelved_offloaded',
      taskState: null,
      powerState: 'nostate',
      host: null,
      availabilityZone: 'nova',
      flavor: 'm1.small',
      image: 'cirros',
      vcpus: 1,
      memoryMb: 2048,
      diskGb: 20,
      serverGroup: null,
    });
    await api.deps.api.setInstanceOwner(server, {
      projectId: keystoneId('project', 'demo'),
      userId: keystoneId('user', 'demo'),
    });
  });
  afterAll(() => api.close());

  const action = (payload: object, version = '2.60') =>
    api.app.inject({
      method: 'POST',
      url: `/compute/v2.1/servers/${server}/action`,
      payload,
      headers: { 'x-auth-token': demo, 'x-openstack-nova-api-version': version },
    });

  it('starts the unshelve workflow (202); below 2.77 a zone in the body is ignored, as Nova', async () => {
    expect((await action({ unshelve: null })).statusCode).toBe(202);
    expect((await action({ unshelve: { availability_zone: 'az-2' } })).statusCode).toBe(202);
    expect(started.map((s) => [s.type, s.args])).toEqual([
      ['unshelve', [{ instanceId: server }]],
      ['unshelve', [{ instanceId: server }]],
    ]);
    expect(started[0]!.workflowId).toMatch(new RegExp(`^unshelve-${server}-`));
  });

  it("answers the workflow's refusal as Nova's 409", async () => {
    failWith = {
      type: 'InstanceInvalidState',
      message: `Cannot 'unshelve' instance ${server} while it is in vmState active`,
    };
    const res = await action({ unshelve: null });
    failWith = undefined;
    expect(res.statusCode).toBe(409);
    expect(res.json<{ conflictingRequest: { message: string } }>().conflictingRequest.message).toContain(
      "Cannot 'unshelve' instance"
    );
  });

  it('lists and shows stored images after the catalogue, with their status; a deleted one is gone', async () => {
    const instanceId = randomUUID();
    const stored = (name: string) =>
      api.deps.instances.createImage({
        imageId: randomUUID(),
        name,
        sizeGb: 0.02,
        minDiskGb: 20,
        minRamMb: 64,
        properties: { traitsRequired: [] },
        instanceId,
      });
    await stored(`shelved-${instanceId}`);
    const gone = await stored('snap-gone');
    await api.deps.instances.updateImage(gone.imageId, { status: 'deleted' });
    const get = (url: string) =>
      api.app.inject({ method: 'GET', url: `/image${url}`, headers: { 'x-auth-token': demo } });
    const list = (await get('/v2/images')).json<{ images: Array<{ name: string; status: string }> }>().images;
    expect(list.find((i) => i.name === `shelved-${instanceId}`)).toMatchObject({ status: 'queued', min_disk: 20 });
    expect(list.some((i) => i.name === 'cirros')).toBe(true);
    expect(list.some((i) => i.name === 'snap-gone')).toBe(false);
    const shown = await get(`/v2/images/${imageId(`shelved-${instanceId}`)}`);
    expect(shown.statusCode).toBe(200);
    expect(shown.json()).toMatchObject({ name: `shelved-${instanceId}`, status: 'queued' });
    expect((await get(`/v2/images/${imageId('snap-gone')}`)).statusCode).toBe(404);
    const queued = (await get('/v2/images?status=queued')).json<{ images: Array<{ name: string }> }>().images;
    expect(queued.map((i) => i.name)).toEqual([`shelved-${instanceId}`]);
  });
});
