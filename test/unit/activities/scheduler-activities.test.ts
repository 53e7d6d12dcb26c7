/**
 * The scheduler activities over a real SQLite store (temp file), with a steerable liveness view and a
 * fixed random source, run inside MockActivityEnvironment (they log through @temporalio/activity).
 * Bad input fails as InvalidRequest naming the field and writes nothing; claims are all or nothing.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createSchedulerActivities, type SchedulerActivities } from '../../../src/activities/scheduler';
import { StaticLiveness } from '../../../src/activities/scheduler/liveness';
import { DEFAULT_CATALOGUE } from '../../../src/domain/catalogue';
import { FailureType, type InvalidRequest } from '../../../src/domain/errors';
import { type HostSpec, HostSpecSchema } from '../../../src/domain/fleet';
import type { RequestSpecInput } from '../../../src/domain/request-spec';
import { DEFAULT_SCHEDULER_CONFIG } from '../../../src/scheduler/types';
import { migrateToLatest, openStore, type Store } from '../../../src/store/db';
import { createInstanceRepository, type InstanceRepository } from '../../../src/store/instances';
import { createPlacementRepository, type PlacementRepository } from '../../../src/store/placement';

/** m1.tiny: 1 VCPU, 512 MB, 1 GB. Hosts are sized in m1.tiny slots by memory (reserved 512, ratio 1). */
const TINY_MB = 512;

function host(name: string, tinySlots: number, overrides: Partial<Record<keyof HostSpec, unknown>> = {}): HostSpec {
  return HostSpecSchema.parse({
    name,
    vcpus: 64,
    memoryMb: 512 + tinySlots * TINY_MB,
    diskGb: 1000,
    reserved: { vcpus: 0, memoryMb: 512, diskGb: 0 },
    allocationRatio: { vcpus: 1, memoryMb: 1, diskGb: 1 },
    ...overrides,
  });
}

const request = (overrides: Partial<RequestSpecInput> = {}): RequestSpecInput => ({
  instanceIds: [randomUUID()],
  flavor: 'm1.tiny',
  image: 'cirros',
  ...overrides,
});

/** Runs `fn` (an activity call) in a fresh MockActivityEnvironment (a cancelled one stays cancelled). */
function inActivity<R>(fn: () => Promise<R>): Promise<R> {
  const env = new MockActivityEnvironment({ taskQueue: 'scheduler' }, { logger: new DefaultLogger('ERROR') });
  return env.run<[], R, typeof fn>(fn);
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe('scheduler activities', () => {
  let dir: string;
  let store: Store;
  let placement: PlacementRepository;
  let instances: InstanceRepository;
  let liveness: StaticLiveness;
  let activities: SchedulerActivities;

  const build = (p: PlacementRepository = placement) =>
    createSchedulerActivities({
      placement: p,
      instances,
      catalogue: DEFAULT_CATALOGUE,
      liveness,
      config: DEFAULT_SCHEDULER_CONFIG,
      rng: () => 0,
    });

  /** Everything a scheduler activity could write to placement. */
  async function snapshot() {
    const [allocations, generations, version] = await Promise.all([
      store.db
        .selectFrom('allocations')
        .select(['consumer_id', 'provider', 'resource_class', 'used'])
        .orderBy('provider')
        .orderBy('consumer_id')
        .orderBy('resource_class')
        .execute(),
      store.db.selectFrom('resource_providers').select(['name', 'generation']).orderBy('name').execute(),
      store.db.selectFrom('placement_state').select('version').execute(),
    ]);
    return { allocations, generations, version };
  }

  const select = (input: unknown, a: SchedulerActivities = activities) =>
    inActivity(() => a.selectDestinations(input as RequestSpecInput));

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'scheduler-activities-'));
    store = await openStore({ sqlitePath: path.join(dir, 'conductor.sqlite') });
    await migrateToLatest(store);
    placement = createPlacementRepository(store);
    instances = createInstanceRepository(store);
    liveness = new StaticLiveness();
    activities = build();
    await placement.upsertProviders([host('host-a', 4), host('host-b', 2), host('host-c', 1)]);
  });

  it('never leaves a retried selection holding two claims', async () => {
    const spec = request();
    const [id] = spec.instanceIds as [string];
    const first = await select(spec);
    // The first answer was lost (worker crash, timeout): the retry may weigh the hosts differently.
    await placement.claim(randomUUID(), first.selections[0]!.hosts[0]!, {
      VCPU: 1,
      MEMORY_MB: 3 * TINY_MB,
      DISK_GB: 1,
    });
    const retry = await select(spec);
    expect((await placement.getAllocations(id)).map((a) => a.host)).toEqual([retry.selections[0]!.hosts[0]]);
  });

  it("keeps an evacuating instance's allocation on its current host when it selects a destination", async () => {
    const spec = request();
    const [id] = spec.instanceIds as [string];
    await instances.create({
      instanceId: id,
      name: 'evacuee',
      vmState: 'active',
      taskState: 'rebuilding',
      powerState: 'running',
      host: 'host-a',
      availabilityZone: null,
      flavor: 'm1.tiny',
      image: 'cirros',
      vcpus: 1,
      memoryMb: 512,
      diskGb: 1,
      serverGroup: null,
    });
    await placement.claim(id, 'host-a', { VCPU: 1, MEMORY_MB: TINY_MB, DISK_GB: 1 });
    const selected = await select({ ...spec, ignoreHosts: ['host-a'] });
    expect((await placement.getAllocations(id)).map((a) => a.host).sort()).toEqual(
      ['host-a', selected.selections[0]!.hosts[0]!].sort()
    );
  });

  it('claims the next ranked host when the chosen one filled up after it was weighed', async () => {
    // Another scheduler wins host-a between this one's weighing and its claim.
    const racing: PlacementRepository = {
      ...placement,
      claim: async (consumer, hostName, resources) => {
        if (hostName === 'host-a')
          await placement.claim(randomUUID(), 'host-a', { VCPU: 1, MEMORY_MB: 4 * TINY_MB, DISK_GB: 1 });
        return placement.claim(consumer, hostName, resources);
      },
    };
    const spec = request();
    const result = await select(spec, build(racing));
    expect(result.selections[0]!.hosts[0]).toBe('host-b');
    expect((await placement.getAllocations(spec.instanceIds[0]!)).map((a) => a.host)).toEqual(['host-b']);
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('bad request specs fail with InvalidRequest naming the field and write nothing', () => {
    const longHost = 'a'.repeat(2_000);
    const cases: Array<[string, () => unknown, string]> = [
      [
        'negative vCPUs in a flavor object',
        () => request({ flavor: { name: 'bad', vcpus: -2, memoryMb: 512, diskGb: 1 } }),
        'flavor.vcpus',
      ],
      ['an unknown flavor name', () => request({ flavor: 'm9.galactic' }), 'flavor'],
      ['an unknown image name', () => request({ image: 'plan9' }), 'image'],
      [
        'a malformed trait in the flavor extra specs',
        () =>
          request({
            flavor: {
              name: 'odd',
              vcpus: 1,
              memoryMb: 512,
              diskGb: 1,
              extraSpecs: { 'trait:not-a-trait': 'required' },
            },
          }),
        'flavor.extraSpecs.trait:not-a-trait',
      ],
      ['a 2,000-character requested host', () => request({ requestedHost: longHost }), 'requestedHost'],
      ['a 2,000-character forced host', () => request({ forcedHost: longHost }), 'forcedHost'],
      ['a 2,000-character ignored host', () => request({ ignoreHosts: ['host-b', longHost] }), 'ignoreHosts.1'],
      ["instanceIds: 'x'", () => ({ ...request(), instanceIds: 'x' }), 'instanceIds'],
      ['an instance id that is not a UUID', () => request({ instanceIds: ['not-a-uuid'] }), 'instanceIds.0'],
      ["maxAttempts: '3'", () => ({ ...request(), maxAttempts: '3' }), 'maxAttempts'],
      ['maxAttempts: 0', () => request({ maxAttempts: 0 }), 'maxAttempts'],
      ['an unknown key', () => ({ ...request(), flavour: 'm1.tiny' }), 'flavour'],
      [
        'a sameHost hint that is not a UUID',
        () => request({ schedulerHints: { sameHost: ['x'] } }),
        'schedulerHints.sameHost.0',
      ],
    ];

    it.each(cases)('%s', async (_label, input, field) => {
      // A claim already held, so that "nothing written" also means "nothing released".
      await select(request({ requestedHost: 'host-a' }));
      const before = await snapshot();
      const err = await failure(select(input()));
      expect(err.name).toBe(FailureType.InvalidRequest);
      expect((err as InvalidRequest).field).toBe(field);
      expect(err.message).toContain(`${field}:`);
      expect(await snapshot()).toEqual(before);
    });

    it('claimResources refuses negative amounts, naming the resource class', async () => {
      const before = await snapshot();
      const err = await failure(
        inActivity(() =>
          activities.claimResources({
            consumerId: randomUUID(),
            host: 'host-a',
            resources: { VCPU: -1, MEMORY_MB: 512, DISK_GB: 1 },
          })
        )
      );
      expect(err.name).toBe(FailureType.InvalidRequest);
      expect(err.message).toContain('resources.VCPU');
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('all or nothing', () => {
    it('a multi-instance request that fits only partly fails NoValidHost and holds no claim', async () => {
      const before = await snapshot();
      const ids = Array.from({ length: 8 }, () => randomUUID()); // 4 + 2 + 1 = 7 slots
      const err = await failure(select(request({ instanceIds: ids })));
      expect(err.name).toBe(FailureType.NoValidHost);
      for (const id of ids) expect(await placement.getAllocations(id)).toEqual([]);
      expect(await snapshot()).toEqual(before);
    });

    it('releases the claims it made when a later claim of the request loses its host', async () => {
      // Two one-slot hosts only, and a competitor that takes the second host between selection and claim.
      await placement.upsertProviders([host('host-a', 1), host('host-b', 1), host('host-c', 1)]);
      liveness.down.add('host-c');
      const ids = [randomUUID(), randomUUID()];
      const intruder = randomUUID();
      let raced = false;
      const racing: PlacementRepository = {
        ...placement,
        async claim(consumerId, target, resources) {
          if (!raced && consumerId === ids[1]) {
            raced = true;
            await placement.claim(intruder, target, resources);
          }
          return placement.claim(consumerId, target, resources);
        },
      };
      const err = await failure(select(request({ instanceIds: ids }), build(racing)));
      expect(raced).toBe(true);
      expect(err.name).toBe(FailureType.NoValidHost);
      expect(await placement.getAllocations(ids[0]!)).toEqual([]);
      expect(await placement.getAllocations(ids[1]!)).toEqual([]);
      const all = (await snapshot()).allocations.map((a) => a.consumer_id);
      expect(new Set(all)).toEqual(new Set([intruder]));
    });

    it('claims every instance of a request that fits', async () => {
      const ids = Array.from({ length: 7 }, () => randomUUID());
      const { selections, resources } = await select(request({ instanceIds: ids }));
      expect(resources).toEqual({ VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 });
      expect(selections.map((s) => s.instanceId)).toEqual(ids);
      for (const s of selections) {
        expect(await placement.getAllocations(s.instanceId)).toEqual([{ host: s.hosts[0], resources }]);
      }
      const audit = await inActivity(() => activities.auditPlacement());
      expect(audit.overCapacity).toEqual([]);
      // Every allocation above belongs to no instance record: the audit sees them all as orphans.
      expect(audit.orphans).toHaveLength(7);
    });

    it('claims nothing for a rebuild', async () => {
      const before = await snapshot();
      const { selections } = await select(request({ isRebuild: true, requestedHost: 'host-b' }));
      expect(selections[0]?.hosts[0]).toBe('host-b');
      expect(await snapshot()).toEqual(before);
    });

    it('isHostUp looks at a host that reads down again before answering (a worker back since the last refresh)', async () => {
      liveness.down.add('host-a');
      liveness.down.add('host-b');
      const rechecked: string[] = [];
      // host-a's worker is back: the recheck finds it polling; host-b stays down.
      (liveness as StaticLiveness & { recheck(host: string): Promise<void> }).recheck = (h) => {
        rechecked.push(h);
        if (h === 'host-a') liveness.down.delete(h);
        return Promise.resolve();
      };
      const [a, b, c] = await Promise.all(
        ['host-a', 'host-b', 'host-c'].map((h) => inActivity(() => activities.isHostUp({ host: h })))
      );
      expect([a?.up, b?.up, c?.up]).toEqual([true, false, true]);
      expect(b?.reason).toBe('no live compute worker');
      expect(rechecked.sort()).toEqual(['host-a', 'host-b']);
    });

    it('skips hosts the liveness view reports down', async () => {
      liveness.down.add('host-a');
      const { selections } = await select(request({ maxAttempts: 3 }));
      expect(selections[0]?.hosts).not.toContain('host-a');
      expect(selections[0]?.hosts.length).toBe(2);
    });
  });

  describe('claimResources', () => {
    it('throws ClaimFailed on a full host and writes nothing', async () => {
      const resources = { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 };
      await inActivity(() => activities.claimResources({ consumerId: randomUUID(), host: 'host-c', resources }));
      const before = await snapshot();
      const late = randomUUID();
      const err = await failure(
        inActivity(() => activities.claimResources({ consumerId: late, host: 'host-c', resources }))
      );
      expect(err.name).toBe(FailureType.ClaimFailed);
      expect(err.message).toContain('MEMORY_MB');
      expect(await placement.getAllocations(late)).toEqual([]);
      expect(await snapshot()).toEqual(before);
    });

    it('throws ClaimFailed for an unknown host', async () => {
      const err = await failure(
        inActivity(() =>
          activities.claimResources({
            consumerId: randomUUID(),
            host: 'host-zzz',
            resources: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 },
          })
        )
      );
      expect(err.name).toBe(FailureType.ClaimFailed);
    });

    it('is idempotent and released by releaseAllocations', async () => {
      const consumerId = randomUUID();
      const resources = { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 };
      await inActivity(() => activities.claimResources({ consumerId, host: 'host-c', resources }));
      await inActivity(() => activities.claimResources({ consumerId, host: 'host-c', resources }));
      expect(await placement.getAllocations(consumerId)).toEqual([{ host: 'host-c', resources }]);
      expect(await inActivity(() => activities.releaseAllocations({ consumerId }))).toEqual({ released: 1 });
      expect(await inActivity(() => activities.releaseAllocations({ consumerId }))).toEqual({ released: 0 });
    });
  });

  describe('registerHost', () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['an upper-case name', { name: 'Bad_Host' }, 'name'],
      ['a 2,000-character name', { name: 'h'.repeat(2_000) }, 'name'],
      ['negative vCPUs', { vcpus: -4 }, 'vcpus'],
      ['vCPUs as a string', { vcpus: '8' }, 'vcpus'],
      ['a malformed trait', { traits: ['lower-case'] }, 'traits.0'],
      ['a zero allocation ratio', { allocationRatio: { memoryMb: 0 } }, 'allocationRatio.memoryMb'],
    ];

    it.each(cases)('rejects %s with InvalidRequest and registers nothing', async (_label, overrides, field) => {
      const before = await snapshot();
      const spec = { name: 'host-new', vcpus: 8, memoryMb: 16384, diskGb: 100, ...overrides };
      const err = await failure(inActivity(() => activities.registerHost(spec as never)));
      expect(err.name).toBe(FailureType.InvalidRequest);
      expect((err as InvalidRequest).field).toBe(field);
      expect(await snapshot()).toEqual(before);
    });

    it('registers a good host, which is then schedulable', async () => {
      const spec = await inActivity(() =>
        activities.registerHost({
          name: 'host-new',
          vcpus: 8,
          memoryMb: 512 + 64 * TINY_MB,
          diskGb: 100,
        })
      );
      expect(spec.reserved.memoryMb).toBe(512);
      const { selections } = await select(request({ requestedHost: 'host-new' }));
      expect(selections[0]?.hosts).toEqual(['host-new']);
    });
  });

  describe('hints resolve through allocations', () => {
    it('sameHost places next to the named instance, even off the best host', async () => {
      const anchor = randomUUID();
      await select(request({ instanceIds: [anchor], requestedHost: 'host-b' }));
      const { selections } = await select(request({ schedulerHints: { sameHost: [anchor] } }));
      expect(selections[0]?.hosts).toEqual(['host-b']);
    });

    it('differentHost keeps away from the named instance, alternates included', async () => {
      const anchor = randomUUID();
      const first = await select(request({ instanceIds: [anchor] }));
      const anchorHost = first.selections[0]!.hosts[0]!;
      const { selections } = await select(request({ schedulerHints: { differentHost: [anchor] }, maxAttempts: 3 }));
      expect(selections[0]?.hosts.length).toBe(2);
      expect(selections[0]?.hosts).not.toContain(anchorHost);
    });

    it('sameHost naming an instance that holds nothing finds no host', async () => {
      const before = await snapshot();
      const err = await failure(select(request({ schedulerHints: { sameHost: [randomUUID()] } })));
      expect(err.name).toBe(FailureType.NoValidHost);
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('server groups', () => {
    it('with minCount, claims for the instances an anti-affinity group has hosts for and leaves out the rest', async () => {
      await instances.ensureServerGroup('spread', 'anti-affinity');
      const ids = Array.from({ length: 5 }, () => randomUUID());
      const { selections } = await select(
        request({ instanceIds: ids, minCount: 2, schedulerHints: { group: 'spread' } })
      );
      expect(selections.map((s) => s.instanceId)).toEqual(ids.slice(0, 3));
      for (const s of selections) expect((await placement.getAllocations(s.instanceId))[0]?.host).toBe(s.hosts[0]);
      for (const id of ids.slice(3)) expect(await placement.getAllocations(id)).toEqual([]);
    });

    it('below minCount, NoValidHost with nothing claimed', async () => {
      await instances.ensureServerGroup('spread', 'anti-affinity');
      const before = await snapshot();
      const ids = Array.from({ length: 5 }, () => randomUUID());
      const err = await failure(
        select(request({ instanceIds: ids, minCount: 4, schedulerHints: { group: 'spread' } }))
      );
      expect(err.name).toBe(FailureType.NoValidHost);
      expect(err.message).toMatch(/Filter ServerGroupAntiAffinityFilter returned 0 hosts/);
      expect(await snapshot()).toEqual(before);
    });

    it('refuses a minCount above the number of instances as InvalidRequest', async () => {
      const err = await failure(select(request({ instanceIds: [randomUUID()], minCount: 2 })));
      expect(err.name).toBe(FailureType.InvalidRequest);
      expect(err.message).toMatch(/minCount/);
    });

    it('anti-affinity spreads the instances of one request over distinct hosts', async () => {
      await instances.ensureServerGroup('spread', 'anti-affinity');
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      const { selections } = await select(request({ instanceIds: ids, schedulerHints: { group: 'spread' } }));
      const chosen = selections.map((s) => s.hosts[0]);
      expect(new Set(chosen).size).toBe(3);
      for (const s of selections) expect((await placement.getAllocations(s.instanceId))[0]?.host).toBe(s.hosts[0]);
    });

    it('anti-affinity keeps away from the hosts of existing members', async () => {
      await instances.ensureServerGroup('spread', 'anti-affinity');
      const member = randomUUID();
      await instances.create({
        instanceId: member,
        name: 'member',
        vmState: 'active',
        taskState: null,
        powerState: 'running',
        host: 'host-a',
        availabilityZone: null,
        flavor: 'm1.tiny',
        image: 'cirros',
        vcpus: 1,
        memoryMb: 512,
        diskGb: 1,
        serverGroup: 'spread',
      });
      const { selections } = await select(request({ schedulerHints: { group: 'spread' }, maxAttempts: 3 }));
      expect(selections[0]?.hosts).not.toContain('host-a');
    });

    it('anti-affinity with more instances than hosts fails NoValidHost and holds no claim', async () => {
      await instances.ensureServerGroup('spread', 'anti-affinity');
      const before = await snapshot();
      const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const err = await failure(select(request({ instanceIds: ids, schedulerHints: { group: 'spread' } })));
      expect(err.name).toBe(FailureType.NoValidHost);
      expect(await snapshot()).toEqual(before);
    });

    it('affinity packs the instances of one request on one host', async () => {
      await instances.ensureServerGroup('pack', 'affinity');
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      const { selections } = await select(request({ instanceIds: ids, schedulerHints: { group: 'pack' } }));
      expect(new Set(selections.map((s) => s.hosts[0])).size).toBe(1);
    });

    it('an unknown group is NoValidHost and writes nothing', async () => {
      const before = await snapshot();
      const err = await failure(select(request({ schedulerHints: { group: 'nope' } })));
      expect(err.name).toBe(FailureType.NoValidHost);
      expect(await snapshot()).toEqual(before);
    });
  });
});
