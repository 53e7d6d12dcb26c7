/**
 * The reconciler's decisions (src/domain/reconcile.ts) and the workflow statuses they read
 * (src/domain/workflow-status.ts), on hand-made views: what is healed, what is left alone.
 */
import { describe, expect, it } from 'vitest';

import type { InstanceRecord } from '../../../src/domain/instance';
import type { MigrationRecord } from '../../../src/domain/migration';
import type { InstanceBatch, InstanceView } from '../../../src/domain/reconcile';
import { decideAllocations, decideInstances } from '../../../src/domain/reconcile';
import { isClosed, workflowStatusOf } from '../../../src/domain/workflow-status';

const SMALL = { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 };

function instance(fields: Partial<InstanceRecord>): InstanceRecord {
  return {
    instanceId: 'i-1',
    name: 'vm',
    vmState: 'active',
    taskState: null,
    taskOwner: null,
    powerState: 'running',
    host: 'host-a',
    availabilityZone: 'az1',
    flavor: 'm1.small',
    image: 'cirros',
    vcpus: 1,
    memoryMb: 2048,
    diskGb: 20,
    serverGroup: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...fields,
  };
}

function migration(fields: Partial<MigrationRecord>): MigrationRecord {
  return {
    id: 'm-1',
    instanceId: 'i-1',
    sourceHost: 'host-a',
    destHost: 'host-b',
    oldFlavor: 'm1.small',
    newFlavor: 'm1.medium',
    migrationType: 'resize',
    status: 'finished',
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...fields,
  };
}

function batch(view: Partial<InstanceView> & { instance: InstanceRecord }, rest: Partial<InstanceBatch> = {}) {
  return decideInstances({
    views: [{ migrations: [], ownerAction: null, ...view }],
    allocations: { 'i-1': [{ host: 'host-a', resources: SMALL }] },
    statuses: {},
    hostsUp: { 'host-a': true, 'host-b': true },
    ...rest,
  });
}

describe('reconcile decisions', () => {
  it('maps Temporal status names; only running and continued-as-new are open', () => {
    expect(
      ['RUNNING', 'COMPLETED', 'FAILED', 'TERMINATED', 'TIMED_OUT', 'CANCELLED', 'NOPE'].map(workflowStatusOf)
    ).toEqual(['running', 'completed', 'failed', 'terminated', 'timed-out', 'cancelled', 'unknown']);
    expect(['running', 'continued-as-new', 'terminated', 'unknown'].map((s) => isClosed(s as never))).toEqual([
      false,
      false,
      true,
      true,
    ]);
  });

  it('leaves a task state alone while its workflow runs, and heals it once closed', () => {
    const building = instance({
      vmState: 'building',
      taskState: 'spawning',
      taskOwner: 'build-x',
      powerState: 'nostate',
    });
    expect(batch({ instance: building }, { statuses: { 'build-x': 'running' } })).toEqual([]);
    const [plan] = batch({ instance: building }, { statuses: { 'build-x': 'terminated' } });
    expect(plan).toMatchObject({
      kind: 'interrupted-operation',
      owner: 'build-x',
      destroyGuestOn: ['host-a'],
      releaseInstance: true,
      patch: { vmState: 'error', taskState: null, host: null },
    });
    expect(plan?.kind === 'interrupted-operation' && plan.fault).toMatch(/outcome is unknown/);
  });

  it('a build whose host is down: the claim released, the guest left on it, the host kept', () => {
    const building = instance({ vmState: 'building', taskState: 'spawning', taskOwner: 'build-x' });
    const [plan] = batch(
      { instance: building },
      { statuses: { 'build-x': 'timed-out' }, hostsUp: { 'host-a': false } }
    );
    expect(plan).toMatchObject({ destroyGuestOn: [], hostsDown: ['host-a'], patch: { host: 'host-a' } });
  });

  it('an unshelve that died is healed as a build: its guest destroyed, its claim released, offloaded again', () => {
    const unshelving = instance({
      vmState: 'shelved_offloaded',
      taskState: 'spawning',
      taskOwner: 'unshelve-x',
      powerState: 'nostate',
    });
    expect(batch({ instance: unshelving }, { statuses: { 'unshelve-x': 'running' } })).toEqual([]);
    const [plan] = batch({ instance: unshelving }, { statuses: { 'unshelve-x': 'terminated' } });
    expect(plan).toMatchObject({
      kind: 'interrupted-operation',
      destroyGuestOn: ['host-a'],
      releaseInstance: true,
      patch: { taskState: null, host: null, powerState: 'nostate' },
    });
    expect(plan?.kind === 'interrupted-operation' && plan.patch.vmState).toBeUndefined();
    expect(plan?.kind === 'interrupted-operation' && plan.fault).toMatch(/Unshelve of instance i-1 was interrupted/);
  });

  it('an operation that reached no host is undone: vm state kept, no fault, its migration allocation moved back', () => {
    const resizing = instance({ taskState: 'resize_prep', taskOwner: 'resize-x' });
    const [plan] = batch(
      {
        instance: resizing,
        ownerAction: { actionId: 'a-1', action: 'resize', events: ['conductor_migrate_server'] },
        migrations: [{ migration: migration({ status: 'pre-migrating' }), workflowId: 'resize-x', actionId: 'a-1' }],
      },
      { statuses: { 'resize-x': 'terminated' } }
    );
    expect(plan).toMatchObject({
      patch: { taskState: null },
      fault: null,
      migrations: [{ migrationId: 'm-1', allocation: 'move-back' }],
    });
  });

  it('an operation that reached a host ends in error with a fault; a moved instance keeps its destination', () => {
    const moved = instance({ host: 'host-b', taskState: 'resize_finish', taskOwner: 'resize-x' });
    const [plan] = batch(
      {
        instance: moved,
        ownerAction: { actionId: 'a-1', action: 'resize', events: ['compute_resize_instance'] },
        migrations: [{ migration: migration({ status: 'post-migrating' }), workflowId: 'resize-x', actionId: 'a-1' }],
      },
      { statuses: { 'resize-x': 'terminated' }, allocations: { 'i-1': [{ host: 'host-b', resources: SMALL }] } }
    );
    expect(plan).toMatchObject({
      patch: { vmState: 'error', taskState: null },
      migrations: [{ migrationId: 'm-1', allocation: 'release' }],
    });
  });

  it('an interrupted confirm goes back to resized, its migration to finished', () => {
    const confirming = instance({ vmState: 'resized', host: 'host-b', taskState: 'resize_confirming', taskOwner: 'r' });
    const [plan] = batch(
      {
        instance: confirming,
        migrations: [{ migration: migration({ status: 'confirming' }), workflowId: 'r', actionId: null }],
      },
      { statuses: { r: 'terminated' } }
    );
    expect(plan).toMatchObject({ patch: { taskState: null }, migrations: [{ allocation: 'finished' }] });
  });

  it('confirms a resize only when no workflow waits for its decision; stopped when its guest is shut down', () => {
    const resized = instance({ vmState: 'resized', host: 'host-b', powerState: 'shutdown' });
    const view = {
      instance: resized,
      migrations: [{ migration: migration({}), workflowId: 'resize-x', actionId: 'a-1' }],
    };
    const allocations = { 'i-1': [{ host: 'host-b', resources: SMALL }] };
    expect(batch(view, { statuses: { 'resize-x': 'running' }, allocations })).toEqual([]);
    expect(batch(view, { statuses: { 'resize-x': 'terminated' }, allocations })).toEqual([
      expect.objectContaining({ kind: 'unconfirmed-resize', sourceHost: 'host-a', vmState: 'stopped', sourceUp: true }),
    ]);
  });

  it('recreates the allocation of an active instance holding nothing on its host, never of a deleted one', () => {
    expect(batch({ instance: instance({}) }, { allocations: {} })).toEqual([
      expect.objectContaining({ kind: 'missing-allocation', host: 'host-a', resources: SMALL }),
    ]);
    expect(batch({ instance: instance({ vmState: 'deleted', host: null }) }, { allocations: {} })).toEqual([]);
    expect(batch({ instance: instance({}) })).toEqual([]);
    // A paused or suspended instance keeps its claim on its host too.
    for (const vmState of ['paused', 'suspended'] as const)
      expect(batch({ instance: instance({ vmState }) }, { allocations: {} })).toEqual([
        expect.objectContaining({ kind: 'missing-allocation', host: 'host-a', resources: SMALL }),
      ]);
  });

  it('removes allocations of consumers gone, deleted, failed builds and finished migrations, nothing else', () => {
    const allocations = ['gone', 'deleted', 'failed', 'done-m', 'active', 'held', 'moving-m'].map((consumerId) => ({
      consumerId,
      host: 'host-a',
    }));
    const plans = decideAllocations(allocations, {
      deleted: { kind: 'instance', vmState: 'deleted', taskState: null, host: null },
      failed: { kind: 'instance', vmState: 'error', taskState: null, host: null },
      'done-m': { kind: 'migration', status: 'confirmed', instanceId: 'i-1' },
      active: { kind: 'instance', vmState: 'active', taskState: null, host: 'host-a' },
      held: { kind: 'instance', vmState: 'deleted', taskState: 'deleting', host: null },
      'moving-m': { kind: 'migration', status: 'migrating', instanceId: 'i-1' },
    });
    expect(plans.map((p) => p.consumerId)).toEqual(['gone', 'deleted', 'failed', 'done-m']);
  });
});
