import { describe, expect, it } from 'vitest';

import type { InstanceRecord } from '../../../src/domain/instance';
import { decidePowerSync } from '../../../src/domain/power-sync';
import { liveMigrationAttempts, LiveMigrateInputSchema } from '../../../src/domain/schemas';

const HOST = 'host-a';

function instance(fields: Partial<InstanceRecord>): InstanceRecord {
  return {
    instanceId: 'i-1',
    name: 'vm',
    vmState: 'active',
    taskState: null,
    taskOwner: null,
    powerState: 'running',
    host: HOST,
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

const decide = (fields: Partial<InstanceRecord>, guest?: InstanceRecord['powerState']) =>
  decidePowerSync(HOST, [instance(fields)], guest === undefined ? {} : { 'i-1': guest }).map((p) => p.action);

describe('power-state sync decisions (Nova: _sync_instance_power_state)', () => {
  it('an active instance whose guest is off, crashed or suspended is stopped', () => {
    expect(decide({}, 'shutdown')).toEqual(['stop']);
    expect(decide({}, 'crashed')).toEqual(['stop']);
    expect(decide({}, 'suspended')).toEqual(['stop']);
  });

  it('a stopped instance whose guest runs, is paused or suspended is force-stopped; a paused one found off too', () => {
    expect(decide({ vmState: 'stopped', powerState: 'shutdown' }, 'running')).toEqual(['force-stop']);
    expect(decide({ vmState: 'stopped', powerState: 'shutdown' }, 'paused')).toEqual(['force-stop']);
    expect(decide({ vmState: 'paused', powerState: 'paused' }, 'shutdown')).toEqual(['force-stop']);
  });

  it('a vanished guest (no guest: nostate) only records the power state; a second pass has nothing to do', () => {
    expect(decide({}, undefined)).toEqual(['record']);
    expect(decide({ powerState: 'nostate' }, undefined)).toEqual([]);
  });

  it('no mismatch: active and paused, paused and paused, suspended, resized, building, error (only a copy when it differs)', () => {
    expect(decide({}, 'running')).toEqual([]);
    expect(decide({}, 'paused')).toEqual(['record']);
    expect(decide({ vmState: 'paused', powerState: 'paused' }, 'paused')).toEqual([]);
    expect(decide({ vmState: 'suspended', powerState: 'suspended' }, 'suspended')).toEqual([]);
    expect(decide({ vmState: 'resized', powerState: 'running' }, 'shutdown')).toEqual(['record']);
    expect(decide({ vmState: 'error', powerState: 'running' }, 'running')).toEqual([]);
  });

  it('skips an instance an operation holds, one on another host, and a deleted one', () => {
    expect(decide({ taskState: 'powering-off', taskOwner: 'stop-1' }, 'shutdown')).toEqual([]);
    expect(decide({ host: 'host-b' }, 'shutdown')).toEqual([]);
    expect(decide({ vmState: 'deleted', powerState: 'nostate' }, 'running')).toEqual([]);
  });
});

describe('migrateMaxRetries (Nova: migrate_max_retries, default -1)', () => {
  it('defaults to -1: until the hosts run out (the scheduler returns at most 10)', () => {
    const req = LiveMigrateInputSchema.parse({ instanceId: '6f1e2f3a-0000-4000-8000-000000000001' });
    expect(req.migrateMaxRetries).toBe(-1);
    expect(liveMigrationAttempts(-1)).toBe(10);
    expect(liveMigrationAttempts(0)).toBe(1);
    expect(liveMigrationAttempts(3)).toBe(4);
    expect(liveMigrationAttempts(20)).toBe(10);
    expect(() =>
      LiveMigrateInputSchema.parse({ instanceId: '6f1e2f3a-0000-4000-8000-000000000001', migrateMaxRetries: -2 })
    ).toThrow();
  });
});
