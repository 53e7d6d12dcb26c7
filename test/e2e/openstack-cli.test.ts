/**
 * The real, pinned `openstack` CLI (python-openstackclient from PyPI in .tools/osc, installed by
 * scripts/install-openstack-tools.sh) against the API process's app on a loopback port, with the dev
 * server and the conductor, scheduler and compute workers in-process (TestCloud): every command the
 * issue lists, each checked by `server show` and by the store; tenancy, a wrong password, a bad flavor.
 * Ends with the placement audit clean and no workflow running.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { buildApp } from '../../src/api/app';
import { imageId, serverGroupId } from '../../src/api/ids';
import { CONDUCTOR_TASK_QUEUE, workflowIds } from '../../src/shared/task-queues';
import { createApiRepository } from '../../src/store/api';
import type { reconcileHost } from '../../src/workflows/reconcile-host';
import type { InstanceRecord } from '../../src/domain/instance';
import { TEST_USERS } from '../helpers/api';
import { sampleKeys } from '../helpers/nova-samples';
import { ROOT, runProcess } from '../helpers/cli';
import { TEST_CATALOGUE, TestCloud } from '../helpers/cloud';
import { freePort } from '../helpers/ports';
import { createDevServerEnv } from '../helpers/temporal';

const OPENSTACK = path.join(ROOT, '.tools', 'osc', 'bin', 'openstack');
const SDK_SCRIPT = path.join(ROOT, 'test', 'e2e', 'fixtures', 'openstacksdk_flow.py');

describe('the real openstack CLI against the API (dev server)', () => {
  let env: TestWorkflowEnvironment;
  let cloud: TestCloud;
  let app: FastifyInstance;
  let url: string;
  let hosts: string[];
  let stopWorkers: () => void;
  let workers: Promise<void>;

  beforeAll(async () => {
    if (!existsSync(OPENSTACK)) throw new Error(`${OPENSTACK} missing: run bash scripts/install-openstack-tools.sh`);
    env = await createDevServerEnv();
    cloud = await new TestCloud(env).open();
    hosts = await cloud.addHosts([
      // The most free memory: the scheduler's first choice (Nova's RAM weigher spreads).
      { name: 'os-a', availabilityZone: 'nova', memoryMb: 65536 },
      { name: 'os-b', availabilityZone: 'nova' },
      { name: 'os-c', availabilityZone: 'nova' },
    ]);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    app = await buildApp({
      instances: cloud.instances,
      api: createApiRepository(cloud.store),
      catalogue: TEST_CATALOGUE,
      users: TEST_USERS,
      publicUrl: url,
      tokenTtlSeconds: 3600,
      temporal: () => Promise.resolve(env.client),
      hostStates: () => cloud.placement.listHostStates((h) => cloud.liveness.isUp(h)),
    });
    await app.listen({ host: '127.0.0.1', port });
    workers = cloud.run(hosts, () => new Promise<void>((resolve) => (stopWorkers = resolve)));
  });
  afterAll(async () => {
    const running: string[] = [];
    if (env)
      for await (const w of env.client.workflow.list({ query: 'ExecutionStatus = "Running"' }))
        running.push(w.workflowId);
    stopWorkers?.();
    await workers;
    await app?.close();
    expect(running).toEqual([]);
    if (cloud) expect(await cloud.placement.audit()).toEqual({ orphans: [], overCapacity: [] });
    await cloud?.close();
    await env?.teardown();
  });

  /** `openstack …` as a user (password from TEST_USERS unless given): exit status and output. */
  function os(args: string[], user = 'admin', password?: string) {
    const u = TEST_USERS.users.find((x) => x.name === user)!;
    return runProcess(OPENSTACK, args, {
      OS_CLOUD: undefined,
      OS_AUTH_URL: `${url}/identity/v3`,
      OS_USERNAME: u.name,
      OS_PASSWORD: password ?? u.password,
      OS_PROJECT_NAME: u.project,
      OS_USER_DOMAIN_NAME: 'Default',
      OS_PROJECT_DOMAIN_NAME: 'Default',
      OS_IDENTITY_API_VERSION: '3',
      OS_REGION_NAME: 'RegionOne',
    });
  }
  /** `openstack … -f json` that must succeed: its parsed output. */
  async function osJson<T>(args: string[], user = 'admin'): Promise<T> {
    const run = await os([...args, '-f', 'json'], user);
    expect(run.code, `openstack ${args.join(' ')}: ${run.stderr}`).toBe(0);
    return JSON.parse(run.stdout) as T;
  }
  async function osOk(args: string[], user = 'admin'): Promise<string> {
    const run = await os(args, user);
    expect(run.code, `openstack ${args.join(' ')}: ${run.stderr}`).toBe(0);
    return run.stdout;
  }
  const show = (ref: string) => osJson<Record<string, unknown>>(['server', 'show', ref]);
  const record = (id: string): Promise<InstanceRecord> => cloud.instances.get(id);
  /** Polls `server show` until its status is `status` (the commands without --wait). */
  async function waitStatus(ref: string, status: string): Promise<Record<string, unknown>> {
    let last: Record<string, unknown> = {};
    await vi.waitFor(
      async () => {
        last = await show(ref);
        expect(last.status).toBe(status);
      },
      { timeout: 60_000, interval: 500 }
    );
    return last;
  }

  let vm1: string;

  it('server create --wait builds the instance (one spawn fault rescheduled), list and show agree with the store', async () => {
    // The first choice fails its next spawn: the build is rescheduled to an alternate.
    await cloud.driver('os-a').setFaults({ spawn: { failNext: 1, kind: 'reschedule' } });
    const created = await osJson<{ id: string; status: string; image: string; flavor: string }>([
      'server',
      'create',
      '--flavor',
      'm1.small',
      '--image',
      'cirros',
      '--wait',
      'vm1',
    ]);
    vm1 = created.id;
    expect(created.status).toBe('ACTIVE');
    expect(created.image).toContain(imageId('cirros'));
    for (const h of hosts) await cloud.driver(h).setFaults({});
    const stored = await record(vm1);
    expect(stored).toMatchObject({ vmState: 'active', taskState: null, powerState: 'running' });
    expect(stored.host).not.toBe('os-a');
    const [create] = await cloud.instances.listActions(vm1);
    expect(create!.events.some((e) => e.host === 'os-a' && e.result === 'Error')).toBe(true);
    const list = await osJson<Array<{ ID: string; Name: string; Status: string }>>(['server', 'list']);
    expect(list).toEqual([expect.objectContaining({ ID: vm1, Name: 'vm1', Status: 'ACTIVE' })]);
    const shown = await show('vm1');
    expect(shown).toMatchObject({
      id: vm1,
      status: 'ACTIVE',
      'OS-EXT-SRV-ATTR:host': stored.host,
      'OS-EXT-STS:power_state': 1,
    });
  });
  it('server stop and start (no --wait: polled), reboot --wait (soft, then --hard), rebuild --wait, each checked by show and the store', async () => {
    await osOk(['server', 'stop', 'vm1']);
    await waitStatus('vm1', 'SHUTOFF');
    expect(await record(vm1)).toMatchObject({ vmState: 'stopped', powerState: 'shutdown', taskState: null });
    await osOk(['server', 'start', 'vm1']);
    await waitStatus('vm1', 'ACTIVE');
    expect(await record(vm1)).toMatchObject({ vmState: 'active', powerState: 'running' });
    await osOk(['server', 'reboot', '--wait', 'vm1']);
    await osOk(['server', 'reboot', '--hard', '--wait', 'vm1']);
    expect(await record(vm1)).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null });
    const reboots = (await cloud.instances.listActions(vm1)).filter((a) => a.action === 'reboot');
    expect(reboots.map((a) => [a.result, (a.events[0]?.details ?? '').split(':')[0]])).toEqual([
      ['Success', 'soft reboot'],
      ['Success', 'hard reboot'],
    ]);
    await osOk(['server', 'rebuild', '--image', 'ubuntu-24.04', '--wait', 'vm1']);
    const shown = await show('vm1');
    expect(shown.status).toBe('ACTIVE');
    expect(String(shown.image)).toContain(imageId('ubuntu-24.04'));
    expect(await record(vm1)).toMatchObject({ vmState: 'active', image: 'ubuntu-24.04', taskState: null });
  });

  it("server pause and unpause, suspend and resume (polled), each checked by show and the store; from the wrong state Nova's 409", async () => {
    await osOk(['server', 'pause', 'vm1']);
    expect((await waitStatus('vm1', 'PAUSED'))['OS-EXT-STS:power_state']).toBe(3);
    expect(await record(vm1)).toMatchObject({ vmState: 'paused', powerState: 'paused', taskState: null });
    const again = await os(['server', 'pause', 'vm1']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('ConflictException: 409');
    expect(again.stderr).toContain(`Cannot 'pause' instance ${vm1} while it is in vmState paused`);
    await osOk(['server', 'unpause', 'vm1']);
    await waitStatus('vm1', 'ACTIVE');
    expect(await record(vm1)).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null });

    await osOk(['server', 'suspend', 'vm1']);
    expect((await waitStatus('vm1', 'SUSPENDED'))['OS-EXT-STS:power_state']).toBe(7);
    expect(await record(vm1)).toMatchObject({ vmState: 'suspended', powerState: 'suspended', taskState: null });
    const host = (await record(vm1)).host!;
    expect((await cloud.driver(host).getGuest(vm1))?.savedMemory).toBeTruthy();
    await osOk(['server', 'resume', 'vm1']);
    await waitStatus('vm1', 'ACTIVE');
    expect(await record(vm1)).toMatchObject({ vmState: 'active', powerState: 'running', taskState: null });
    expect((await cloud.instances.listActions(vm1)).slice(-4).map((a) => [a.action, a.result])).toEqual([
      ['pause', 'Success'],
      ['unpause', 'Success'],
      ['suspend', 'Success'],
      ['resume', 'Success'],
    ]);
  });

  it('server resize --wait then resize confirm; resize --wait then resize revert', async () => {
    await osOk(['server', 'resize', '--flavor', 'm1.medium', '--wait', 'vm1']);
    expect((await show('vm1')).status).toBe('VERIFY_RESIZE');
    expect(await record(vm1)).toMatchObject({ vmState: 'resized', flavor: 'm1.medium' });
    await osOk(['server', 'resize', 'confirm', 'vm1']);
    const confirmed = await waitStatus('vm1', 'ACTIVE');
    expect(confirmed.flavor).toMatchObject({ name: 'm1.medium', vcpus: 2 });
    await osOk(['server', 'resize', '--flavor', 'm1.large', '--wait', 'vm1']);
    expect(await record(vm1)).toMatchObject({ vmState: 'resized', flavor: 'm1.large' });
    await osOk(['server', 'resize', 'revert', 'vm1']);
    const reverted = await waitStatus('vm1', 'ACTIVE');
    expect(reverted.flavor).toMatchObject({ name: 'm1.medium' });
    expect(await record(vm1)).toMatchObject({ vmState: 'active', flavor: 'm1.medium', taskState: null });
  });

  it('server migrate --wait (confirmed), migrate --live-migration --wait, migration list, event list', async () => {
    const before = (await record(vm1)).host;
    await osOk(['server', 'migrate', '--wait', 'vm1']);
    expect((await show('vm1')).status).toBe('VERIFY_RESIZE');
    await osOk(['server', 'migration', 'confirm', 'vm1']);
    await waitStatus('vm1', 'ACTIVE');
    const migrated = (await record(vm1)).host;
    expect(migrated).not.toBe(before);
    await osOk(['server', 'migrate', '--live-migration', '--wait', 'vm1']);
    const live = await record(vm1);
    expect(live).toMatchObject({ vmState: 'active', taskState: null, powerState: 'running' });
    expect(live.host).not.toBe(migrated);
    expect((await show('vm1'))['OS-EXT-SRV-ATTR:host']).toBe(live.host);
    const migrations = await osJson<Array<{ Type: string; Status: string }>>([
      'server',
      'migration',
      'list',
      '--server',
      'vm1',
    ]);
    expect(migrations.map((m) => m.Type).sort()).toEqual(['live-migration', 'migration', 'resize', 'resize']);
    const events = await osJson<Array<{ Action: string; 'Request ID': string }>>(['server', 'event', 'list', 'vm1']);
    expect(events.map((e) => e.Action).sort()).toEqual(
      [
        'confirmResize',
        'confirmResize',
        'create',
        'live-migration',
        'migrate',
        'pause',
        'reboot',
        'reboot',
        'rebuild',
        'resize',
        'resize',
        'resume',
        'revertResize',
        'start',
        'stop',
        'suspend',
        'unpause',
      ].sort()
    );
    const create = events.find((e) => e.Action === 'create')!;
    const detail = await osJson<{ events: Array<{ event: string; result: string }> }>([
      'server',
      'event',
      'show',
      'vm1',
      create['Request ID'],
    ]);
    expect(detail.events.some((e) => e.result === 'Success')).toBe(true);
  });

  it('server evacuate while its host is forced down re-creates it elsewhere (polled: OSC --wait bug); the host returns and cleans up', async () => {
    const source = (await record(vm1)).host!;
    await osOk(['compute', 'service', 'set', '--down', source, 'nova-compute']);
    try {
      await osOk(['server', 'evacuate', 'vm1']);
      await vi.waitFor(
        async () => {
          const now = await record(vm1);
          expect(now).toMatchObject({ vmState: 'active', taskState: null });
          expect(now.host).not.toBe(source);
        },
        { timeout: 60_000, interval: 500 }
      );
      expect((await show('vm1'))['OS-EXT-SRV-ATTR:host']).toBe((await record(vm1)).host);
    } finally {
      await osOk(['compute', 'service', 'set', '--up', source, 'nova-compute']);
    }
    // The returning host's start-up reconciliation destroys the evacuated guest and frees its allocation.
    await env.client.workflow.execute<typeof reconcileHost>('reconcileHost', {
      taskQueue: CONDUCTOR_TASK_QUEUE,
      workflowId: `${workflowIds.reconcileHost(source)}-api-test`,
      args: [{ host: source }],
    });
    const events = await osJson<Array<{ Action: string }>>(['server', 'event', 'list', 'vm1']);
    expect(events.map((e) => e.Action)).toContain('evacuate');
  });

  it('server group create --policy anti-affinity, then create --hint group= --min 2 --max 2 lands on two hosts', async () => {
    const group = await osJson<{ id: string; name: string; policy?: string; policies?: string }>([
      'server',
      'group',
      'create',
      '--policy',
      'anti-affinity',
      'spread',
    ]);
    // Names are not keys (as in Nova): the conductor holds the group under a fresh key; the id is derived from it.
    expect(group.name).toBe('spread');
    const key = (await cloud.instances.listServerGroups()).find((g) => serverGroupId(g.name) === group.id)?.name;
    expect(key).toMatch(/^[0-9a-f-]{36}$/);
    await osOk([
      'server',
      'create',
      '--flavor',
      'm1.tiny',
      '--image',
      'cirros',
      '--hint',
      `group=${group.id}`,
      '--min',
      '2',
      '--max',
      '2',
      '--wait',
      'web',
    ]);
    const web = (await cloud.instances.list()).filter((i) => i.name.startsWith('web-'));
    expect(web).toHaveLength(2);
    await vi.waitFor(
      async () => {
        const now = await Promise.all(web.map((w) => record(w.instanceId)));
        expect(now.map((w) => w.vmState)).toEqual(['active', 'active']);
        expect(new Set(now.map((w) => w.host)).size).toBe(2);
      },
      { timeout: 60_000, interval: 500 }
    );
    const shown = await osJson<{ members: string }>(['server', 'group', 'show', 'spread']);
    for (const w of web) expect(shown.members).toContain(w.instanceId);
  });

  it('compute service set --disable / --enable / --down / --up and hypervisor list', async () => {
    await osOk(['compute', 'service', 'set', '--disable', '--disable-reason', 'fw', 'os-c', 'nova-compute']);
    const services = await osJson<Array<{ Host: string; Status: string; State: string }>>([
      'compute',
      'service',
      'list',
      '--long',
    ]);
    expect(services.find((s) => s.Host === 'os-c')).toMatchObject({ Status: 'disabled' });
    expect((await cloud.placement.listHostStates(() => true)).find((h) => h.host === 'os-c')).toMatchObject({
      enabled: false,
      disabledReason: 'fw',
    });
    await osOk(['compute', 'service', 'set', '--enable', 'os-c', 'nova-compute']);
    await osOk(['compute', 'service', 'set', '--down', 'os-c', 'nova-compute']);
    const down = await osJson<Array<{ Host: string; Status: string; State: string }>>(['compute', 'service', 'list']);
    expect(down.find((s) => s.Host === 'os-c')).toMatchObject({ Status: 'enabled', State: 'down' });
    await osOk(['compute', 'service', 'set', '--up', 'os-c', 'nova-compute']);
    expect((await cloud.placement.listHostStates(() => true)).find((h) => h.host === 'os-c')).toMatchObject({
      enabled: true,
      forcedDown: false,
    });
    const hypervisors = await osJson<Array<{ 'Hypervisor Hostname': string; State: string }>>(['hypervisor', 'list']);
    expect(hypervisors.map((h) => h['Hypervisor Hostname']).sort()).toEqual(hosts);
  });

  it("keeps a member from the admin's server, refuses a wrong password (401) and a bad flavor (400, nothing created)", async () => {
    const hidden = await os(['server', 'show', vm1], 'demo');
    expect(hidden.code).not.toBe(0);
    expect(hidden.stderr).toMatch(/No Server found|could not be found/);
    expect(await osJson<unknown[]>(['server', 'list'], 'demo')).toEqual([]);
    const wrong = await os(['server', 'list'], 'admin', 'not-the-password');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/401|authenticat/i);
    const count = (await cloud.instances.list()).length;
    const badCli = await os(['server', 'create', '--flavor', 'm1.nope', '--image', 'cirros', 'bad']);
    expect(badCli.code).not.toBe(0);
    // The same through the API itself: 400 in Nova's envelope, nothing started or written.
    const token = (
      await app.inject({
        method: 'POST',
        url: '/identity/v3/auth/tokens',
        payload: {
          auth: {
            identity: {
              methods: ['password'],
              password: { user: { name: 'demo', domain: { name: 'Default' }, password: 'demo-secret' } },
            },
            scope: { project: { name: 'demo' } },
          },
        },
      })
    ).headers['x-subject-token'] as string;
    const bad = await app.inject({
      method: 'POST',
      url: '/compute/v2.1/servers',
      headers: { 'x-auth-token': token, 'OpenStack-API-Version': 'compute 2.60' },
      payload: { server: { name: 'bad', flavorRef: 'm1.nope', imageRef: imageId('cirros'), networks: 'auto' } },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ badRequest: { code: 400, message: 'Flavor m1.nope could not be found.' } });
    expect((await cloud.instances.list()).length).toBe(count);
    // A good create through the API: Nova's create response, and x-compute-request-id is the request_id
    // of the instance's create action (Tempest follows it).
    const good = await app.inject({
      method: 'POST',
      url: '/compute/v2.1/servers',
      headers: { 'x-auth-token': token, 'OpenStack-API-Version': 'compute 2.60' },
      payload: { server: { name: 'demo-vm', flavorRef: 'm1.tiny', imageRef: imageId('cirros'), networks: 'none' } },
    });
    expect(good.statusCode).toBe(202);
    const body = good.json<{ server: Record<string, unknown> }>();
    expect(Object.keys(body.server).sort()).toEqual(sampleKeys('servers/server-create-resp', 'server'));
    const id = body.server.id as string;
    const [created] = await cloud.instances.listActions(id);
    expect(created).toMatchObject({ action: 'create', requestId: good.headers['x-compute-request-id'] });
    expect(await osJson<Array<{ ID: string }>>(['server', 'list'], 'demo')).toEqual([
      expect.objectContaining({ ID: id }),
    ]);
  });

  it("the same through openstacksdk's Python API: its own waits hold (create, stop, start, resize, confirm, live-migrate, delete)", async () => {
    const u = TEST_USERS.users[0]!;
    const run = await runProcess(path.join(ROOT, '.tools', 'osc', 'bin', 'python'), [SDK_SCRIPT], {
      OS_CLOUD: undefined,
      OS_AUTH_URL: `${url}/identity/v3`,
      OS_USERNAME: u.name,
      OS_PASSWORD: u.password,
      OS_PROJECT_NAME: u.project,
    });
    expect(run.code, run.stderr).toBe(0);
    const seen = JSON.parse(run.stdout) as {
      created: { id: string; status: string };
      stopped: string;
      started: string;
      resized: string;
      confirmed: { status: string; flavor: string };
      after_live_migrate_call: string;
      live_migrated: { from: string; to: string };
      actions: string[];
      services: string[];
      hypervisors: number;
      deleted: boolean;
    };
    expect(seen).toMatchObject({
      created: { status: 'ACTIVE' },
      stopped: 'SHUTOFF',
      started: 'ACTIVE',
      resized: 'VERIFY_RESIZE',
      after_live_migrate_call: 'MIGRATING',
      confirmed: { status: 'ACTIVE', flavor: 'm1.medium' },
      services: hosts,
      hypervisors: 3,
      deleted: true,
    });
    const moves = await cloud.instances.listMigrations(seen.created.id);
    const live = moves.find((m) => m.migrationType === 'live-migration');
    expect(live, JSON.stringify({ moves, seen })).toMatchObject({
      status: 'completed',
      sourceHost: seen.live_migrated.from,
    });
    expect(seen.live_migrated.to, JSON.stringify({ moves, seen })).toBe(live!.destHost);
    expect(seen.actions).toEqual(['confirmResize', 'create', 'live-migration', 'resize', 'start', 'stop']);
    expect(await record(seen.created.id)).toMatchObject({ vmState: 'deleted', flavor: 'm1.medium' });
  });

  it('server delete --wait removes them: show 404, the store says deleted', async () => {
    const ids = (await cloud.instances.list()).filter((i) => i.vmState !== 'deleted').map((i) => i.instanceId);
    await osOk(['server', 'delete', '--wait', ...ids]);
    for (const id of ids) {
      expect((await os(['server', 'show', id])).code).not.toBe(0);
      expect((await record(id)).vmState).toBe('deleted');
    }
    await osOk(['server', 'group', 'delete', 'spread']);
    expect(await osJson<unknown[]>(['server', 'list', '--all-projects'])).toEqual([]);
  });
});
