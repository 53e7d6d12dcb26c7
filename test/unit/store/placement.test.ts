import { describe, expect, it } from 'vitest';

import { ClaimFailed, FailureType, InvalidRequest } from '../../../src/domain/errors';
import { createInstanceRepository } from '../../../src/store/instances';
import { createPlacementRepository, type PlacementRepository } from '../../../src/store/placement';
import type { HostState } from '../../../src/scheduler/types';
import { BACKENDS, useFreshStore } from './backends';
import { hostSpec, newInstance, plainHost, res } from './fixtures';

const allUp = () => true;

async function hostState(placement: PlacementRepository, host: string, isUp = allUp): Promise<HostState> {
  const state = (await placement.listHostStates(isUp)).find((h) => h.host === host);
  if (state === undefined) throw new Error(`no host state for ${host}`);
  return state;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe.each(BACKENDS)('placement repository on $name', (backend) => {
  const fx = useFreshStore(backend);

  describe('providers', () => {
    it('registers a host with inventories, traits and generation 1', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(hostSpec('compute-a', { availabilityZone: 'az1', traits: ['HW_CPU_X86_AVX2'] }));
      const a = await hostState(placement, 'compute-a');
      expect(a).toMatchObject({
        host: 'compute-a',
        availabilityZone: 'az1',
        architecture: 'x86_64',
        enabled: true,
        disabledReason: null,
        forcedDown: false,
        up: true,
        generation: 1,
        failedBuilds: 0,
        used: { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 },
        inventories: {
          VCPU: { total: 16, reserved: 0, allocationRatio: 4 },
          MEMORY_MB: { total: 65536, reserved: 512, allocationRatio: 1 },
          DISK_GB: { total: 1000, reserved: 0, allocationRatio: 1 },
        },
      });
      expect([...a.traits]).toEqual(['HW_CPU_X86_AVX2']);
      expect(a.instances.size).toBe(0);
    });

    it('bumps the generation only when something changed, and replaces traits', async () => {
      const placement = createPlacementRepository(fx.store);
      const spec = hostSpec('compute-a', { traits: ['HW_CPU_X86_AVX2', 'COMPUTE_STATUS_SSD'] });
      await placement.upsertProvider(spec);
      await placement.upsertProvider(spec);
      await placement.upsertProvider({ ...spec, traits: ['COMPUTE_STATUS_SSD', 'HW_CPU_X86_AVX2'] });
      expect((await hostState(placement, 'compute-a')).generation).toBe(1);

      await placement.upsertProvider({ ...spec, traits: ['CUSTOM_GPU'] });
      let a = await hostState(placement, 'compute-a');
      expect(a.generation).toBe(2);
      expect([...a.traits]).toEqual(['CUSTOM_GPU']);

      await placement.upsertProvider({ ...spec, traits: ['CUSTOM_GPU'], vcpus: 32 });
      a = await hostState(placement, 'compute-a');
      expect(a.generation).toBe(3);
      expect(a.inventories.VCPU.total).toBe(32);

      await placement.upsertProvider({ ...spec, traits: ['CUSTOM_GPU'], vcpus: 32, availabilityZone: 'az9' });
      a = await hostState(placement, 'compute-a');
      expect(a.generation).toBe(4);
      expect(a.availabilityZone).toBe('az9');
    });

    it('registers many hosts in batches (upsertProviders), updating the ones that exist', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(hostSpec('host-0000', { vcpus: 2 }));
      const specs = Array.from({ length: 250 }, (_, i) =>
        hostSpec(`host-${String(i).padStart(4, '0')}`, { traits: i % 2 ? ['CUSTOM_ODD'] : [] })
      );
      await placement.upsertProviders(specs);
      await placement.upsertProviders(specs);
      const states = await placement.listHostStates(allUp);
      expect(states.map((s) => s.host)).toEqual(specs.map((s) => s.name));
      expect(states[0]).toMatchObject({ generation: 2, inventories: { VCPU: { total: 16 } } });
      expect(states[1]).toMatchObject({ generation: 1 });
      expect([...states[1]!.traits]).toEqual(['CUSTOM_ODD']);
      await expect(placement.upsertProviders([specs[0]!, specs[0]!])).rejects.toBeInstanceOf(InvalidRequest);
    });

    it('disables, enables and forces a host down', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(hostSpec('compute-a'));
      await placement.setDisabled('compute-a', true, 'maintenance');
      expect(await hostState(placement, 'compute-a')).toMatchObject({ enabled: false, disabledReason: 'maintenance' });
      await placement.setDisabled('compute-a', false);
      expect(await hostState(placement, 'compute-a')).toMatchObject({ enabled: true, disabledReason: null });

      expect((await hostState(placement, 'compute-a', () => false)).up).toBe(false);
      await placement.setForcedDown('compute-a', true);
      expect(await hostState(placement, 'compute-a', () => true)).toMatchObject({ up: false, forcedDown: true });
      await placement.setForcedDown('compute-a', false);
      expect(await hostState(placement, 'compute-a', () => true)).toMatchObject({ up: true, forcedDown: false });

      await expect(placement.setDisabled('nope', true)).rejects.toBeInstanceOf(InvalidRequest);
      await expect(placement.setForcedDown('nope', true)).rejects.toBeInstanceOf(InvalidRequest);
    });

    it('counts failed builds and resets them on success', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(hostSpec('compute-a'));
      await placement.recordBuildResult('compute-a', false);
      await placement.recordBuildResult('compute-a', false);
      expect((await hostState(placement, 'compute-a')).failedBuilds).toBe(2);
      await placement.recordBuildResult('compute-a', true);
      expect((await hostState(placement, 'compute-a')).failedBuilds).toBe(0);
      await placement.recordBuildResult('compute-a', true);
      expect((await hostState(placement, 'compute-a')).failedBuilds).toBe(0);
      await expect(placement.recordBuildResult('nope', false)).rejects.toBeInstanceOf(InvalidRequest);
    });
  });

  describe('claims', () => {
    it('claims within capacity: allocation, usage, generation and instances', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(hostSpec('compute-a'));
      await placement.claim('vm-1', 'compute-a', res(2, 4096, 40));
      const a = await hostState(placement, 'compute-a');
      expect(a.used).toEqual(res(2, 4096, 40));
      expect(a.generation).toBe(2);
      expect([...a.instances]).toEqual(['vm-1']);
      expect(await placement.getAllocations('vm-1')).toEqual([{ host: 'compute-a', resources: res(2, 4096, 40) }]);
      expect(await placement.allocationsByHost('compute-a')).toEqual([
        { consumerId: 'vm-1', resources: res(2, 4096, 40) },
      ]);
    });

    it('fills a host exactly, then refuses one more with ClaimFailed naming the class', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(plainHost('compute-a', 4));
      for (let i = 0; i < 4; i++) await placement.claim(`vm-${i}`, 'compute-a', res(1, 100));
      const err = await failure(placement.claim('vm-over', 'compute-a', res(1, 100)));
      expect(err).toBeInstanceOf(ClaimFailed);
      expect(err.name).toBe(FailureType.ClaimFailed);
      expect(err.message).toMatch(/compute-a.*insufficient VCPU: requested 1, used 4, capacity 4/);
      expect(await placement.getAllocations('vm-over')).toEqual([]);
      expect((await hostState(placement, 'compute-a')).used.VCPU).toBe(4);
    });

    it('names MEMORY_MB and DISK_GB when they are the short class', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(
        plainHost('compute-a', 100, { memoryMb: 1024, diskGb: 10, reserved: { vcpus: 0, memoryMb: 0, diskGb: 0 } })
      );
      await expect(placement.claim('vm-1', 'compute-a', res(1, 1025, 1))).rejects.toThrow(/insufficient MEMORY_MB/);
      await expect(placement.claim('vm-1', 'compute-a', res(1, 1024, 11))).rejects.toThrow(/insufficient DISK_GB/);
      await placement.claim('vm-1', 'compute-a', res(1, 1024, 10));
    });

    it('applies reserved amounts and allocation ratios: floor((total - reserved) * ratio)', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(
        hostSpec('compute-a', {
          vcpus: 8,
          memoryMb: 4096,
          diskGb: 100,
          reserved: { vcpus: 2, memoryMb: 512, diskGb: 10 },
          allocationRatio: { vcpus: 2.0, memoryMb: 1.5, diskGb: 0.9 },
        })
      );
      // VCPU (8-2)*2 = 12; MEMORY_MB (4096-512)*1.5 = 5376; DISK_GB floor((100-10)*0.9) = 81.
      await expect(placement.claim('big', 'compute-a', res(13, 1, 1))).rejects.toThrow(/VCPU.*capacity 12/);
      await expect(placement.claim('big', 'compute-a', res(1, 5377, 1))).rejects.toThrow(/MEMORY_MB.*capacity 5376/);
      await expect(placement.claim('big', 'compute-a', res(1, 1, 82))).rejects.toThrow(/DISK_GB.*capacity 81/);
      await placement.claim('big', 'compute-a', res(12, 5376, 81));
      expect((await hostState(placement, 'compute-a')).used).toEqual(res(12, 5376, 81));
    });

    it('a class asked at 0 is not claimed (no inventory needed)', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(plainHost('compute-a', 1));
      await placement.claim('vm-1', 'compute-a', res(1, 0, 0));
      expect(await placement.allocationsByHost('compute-a')).toEqual([{ consumerId: 'vm-1', resources: res(1) }]);
    });

    it('re-claiming the same resources is a no-op; other amounts replace the allocation', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(plainHost('compute-a', 4));
      await placement.claim('vm-1', 'compute-a', res(3, 10));
      await placement.claim('vm-1', 'compute-a', res(3, 10));
      let a = await hostState(placement, 'compute-a');
      expect(a.generation).toBe(2);
      expect(a.used).toEqual(res(3, 10));
      // Replacement is checked as a delta: 3 -> 4 fits a 4-VCPU host.
      await placement.claim('vm-1', 'compute-a', res(4, 10));
      a = await hostState(placement, 'compute-a');
      expect(a.used).toEqual(res(4, 10));
      expect(a.generation).toBe(3);
      await expect(placement.claim('vm-1', 'compute-a', res(5, 10))).rejects.toThrow(/VCPU/);
    });

    it('refuses an unknown host with ClaimFailed and bad amounts with InvalidRequest', async () => {
      const placement = createPlacementRepository(fx.store);
      const err = await failure(placement.claim('vm-1', 'ghost', res(1)));
      expect(err).toBeInstanceOf(ClaimFailed);
      expect(err.message).toMatch(/ghost/);
      await placement.upsertProvider(plainHost('compute-a', 4));
      await expect(placement.claim('vm-1', 'compute-a', res(-1))).rejects.toBeInstanceOf(InvalidRequest);
      await expect(placement.claim('vm-1', 'compute-a', res(1.5))).rejects.toBeInstanceOf(InvalidRequest);
    });

    it('lets one consumer hold allocations on two hosts (evacuation) and release one of them', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(plainHost('compute-a', 4));
      await placement.upsertProvider(plainHost('compute-b', 4));
      await placement.claim('vm-1', 'compute-a', res(2, 10));
      await placement.claim('vm-1', 'compute-b', res(2, 10));
      expect(await placement.getAllocations('vm-1')).toEqual([
        { host: 'compute-a', resources: res(2, 10) },
        { host: 'compute-b', resources: res(2, 10) },
      ]);
      expect(await placement.releaseConsumer('vm-1', 'compute-a')).toBe(1);
      expect(await placement.getAllocations('vm-1')).toEqual([{ host: 'compute-b', resources: res(2, 10) }]);
      expect((await hostState(placement, 'compute-a')).used.VCPU).toBe(0);
    });
  });

  describe('release and move', () => {
    it('releases every allocation of a consumer, idempotently, bumping generations', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(plainHost('compute-a', 4));
      await placement.upsertProvider(plainHost('compute-b', 4));
      await placement.claim('vm-1', 'compute-a', res(1));
      await placement.claim('vm-1', 'compute-b', res(1));
      await placement.claim('vm-2', 'compute-a', res(1));
      expect(await placement.releaseConsumer('vm-1')).toBe(2);
      expect(await placement.releaseConsumer('vm-1')).toBe(0);
      expect(await placement.releaseConsumer('never-claimed')).toBe(0);
      const a = await hostState(placement, 'compute-a');
      expect(a.generation).toBe(4);
      expect([...a.instances]).toEqual(['vm-2']);
      expect(a.used.VCPU).toBe(1);
      expect((await hostState(placement, 'compute-b')).generation).toBe(3);
    });

    it('moves allocations to a migration and back (resize, revert), atomically and idempotently', async () => {
      const placement = createPlacementRepository(fx.store);
      await placement.upsertProvider(plainHost('compute-a', 4));
      await placement.upsertProvider(plainHost('compute-b', 4));
      await placement.claim('vm-1', 'compute-a', res(2, 512));

      // resize: the source allocation now belongs to the migration; the instance claims the destination.
      await placement.moveAllocations('vm-1', 'mig-1');
      expect(await placement.getAllocations('vm-1')).toEqual([]);
      expect(await placement.getAllocations('mig-1')).toEqual([{ host: 'compute-a', resources: res(2, 512) }]);
      await placement.moveAllocations('vm-1', 'mig-1'); // retried activity: already moved, no-op
      expect(await placement.getAllocations('mig-1')).toEqual([{ host: 'compute-a', resources: res(2, 512) }]);
      await placement.claim('vm-1', 'compute-b', res(4, 1024));

      // revert: the instance gets its source allocation back and drops the destination one.
      await placement.moveAllocations('mig-1', 'vm-1');
      expect(await placement.getAllocations('mig-1')).toEqual([]);
      expect(await placement.getAllocations('vm-1')).toEqual([{ host: 'compute-a', resources: res(2, 512) }]);
      expect((await hostState(placement, 'compute-b')).used.VCPU).toBe(0);
      expect((await hostState(placement, 'compute-a')).instances).toEqual(new Set(['vm-1']));
    });
  });

  describe('audit', () => {
    it('keeps the allocation of an error instance still on its host, and flags one with no host', async () => {
      const placement = createPlacementRepository(fx.store);
      const instances = createInstanceRepository(fx.store);
      await placement.upsertProvider(plainHost('compute-a', 8));
      // A failed rebuild leaves the instance in error on its host, holding its allocation (as Nova).
      await instances.create(
        newInstance('vm-rebuild-failed', { vmState: 'error', taskState: null, host: 'compute-a' })
      );
      // A failed build must hold nothing: an error instance with no host is an orphan consumer.
      await instances.create(newInstance('vm-build-failed', { vmState: 'error', taskState: null }));
      // A build in progress holds its claim before its record names the host.
      await instances.create(newInstance('vm-building', { vmState: 'building', taskState: 'spawning' }));
      for (const consumer of ['vm-rebuild-failed', 'vm-build-failed', 'vm-building'])
        await placement.claim(consumer, 'compute-a', res(1));
      expect((await placement.audit()).orphans).toEqual([{ consumerId: 'vm-build-failed', host: 'compute-a' }]);
    });

    it('finds orphaned allocations and over-capacity hosts', async () => {
      const placement = createPlacementRepository(fx.store);
      const instances = createInstanceRepository(fx.store);
      await placement.upsertProvider(plainHost('compute-a', 8));
      await placement.upsertProvider(plainHost('compute-b', 8));
      await instances.create(newInstance('vm-active', { vmState: 'active', taskState: null, host: 'compute-a' }));
      await instances.create(newInstance('vm-error', { vmState: 'error', taskState: null }));
      await instances.create(newInstance('vm-deleted', { vmState: 'deleted', taskState: null }));
      const migration = {
        instanceId: 'vm-active',
        sourceHost: 'compute-a',
        destHost: 'compute-b',
        oldFlavor: 'm1.small',
        newFlavor: 'm1.medium',
        migrationType: 'resize' as const,
      };
      await instances.createMigration({ id: 'mig-running', status: 'migrating', ...migration });
      await instances.createMigration({ id: 'mig-done', status: 'confirmed', ...migration });

      for (const consumer of ['vm-active', 'vm-error', 'vm-deleted', 'mig-running', 'mig-done', 'ghost'])
        await placement.claim(consumer, 'compute-a', res(1));
      await placement.claim('ghost', 'compute-b', res(1));

      let report = await placement.audit();
      expect(report.orphans).toEqual([
        { consumerId: 'ghost', host: 'compute-a' },
        { consumerId: 'mig-done', host: 'compute-a' },
        { consumerId: 'vm-deleted', host: 'compute-a' },
        { consumerId: 'vm-error', host: 'compute-a' },
        { consumerId: 'ghost', host: 'compute-b' },
      ]);
      expect(report.overCapacity).toEqual([]);

      // The fleet file shrinks compute-a below what it hands out.
      await placement.upsertProvider(plainHost('compute-a', 4));
      report = await placement.audit();
      expect(report.overCapacity).toEqual([{ host: 'compute-a', resourceClass: 'VCPU', used: 6, capacity: 4 }]);

      for (const o of report.orphans) await placement.releaseConsumer(o.consumerId, o.host);
      report = await placement.audit();
      expect(report).toEqual({ orphans: [], overCapacity: [] });
    });
  });

  describe('host-state cache', () => {
    it('sees writes made through another repository or store handle', async () => {
      const writer = createPlacementRepository(fx.store);
      const reader = createPlacementRepository(fx.store);
      const uncached = createPlacementRepository(fx.store, { cacheHostStates: false });
      await writer.upsertProvider(plainHost('compute-a', 4));
      expect((await hostState(reader, 'compute-a')).used.VCPU).toBe(0);
      await writer.claim('vm-1', 'compute-a', res(1));
      await writer.upsertProvider(plainHost('compute-b', 4, { traits: ['CUSTOM_X'] }));
      await writer.setDisabled('compute-a', true, 'x');
      await writer.recordBuildResult('compute-a', false);
      const cached = await reader.listHostStates(allUp);
      expect(cached.map((h) => h.host)).toEqual(['compute-a', 'compute-b']);
      expect(cached).toEqual(await uncached.listHostStates(allUp));
      expect(cached[0]).toMatchObject({ enabled: false, failedBuilds: 1, used: { VCPU: 1 } });
      // Unchanged: the same cached records, no reload.
      const again = await reader.listHostStates(allUp);
      expect(again[0]!.inventories).toBe(cached[0]!.inventories);
      await writer.releaseConsumer('vm-1');
      expect((await hostState(reader, 'compute-a')).used.VCPU).toBe(0);
      expect(Object.isFrozen((await hostState(reader, 'compute-a')).used)).toBe(true);
    });
  });
});
