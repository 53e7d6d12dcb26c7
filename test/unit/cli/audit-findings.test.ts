/**
 * The audit's findings, kind by kind, each from a store the test seeds, with Temporal's answers (which
 * workflows run) and the compute hosts' answers (which guests they run) given by a stand-in client.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { Client } from '@temporalio/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { auditStore } from '../../../src/cli/audit';
import { HostSpecSchema } from '../../../src/domain/fleet';
import type { InstanceRecord } from '../../../src/domain/instance';
import type { Store } from '../../../src/store/db';
import { migrateToLatest, openStore } from '../../../src/store/db';
import { createInstanceRepository } from '../../../src/store/instances';
import { createPlacementRepository } from '../../../src/store/placement';

const TINY = { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 };

/** A stand-in Temporal client: workflows in `running` are RUNNING, others closed; hosts answer from `guests`. */
function fakeClient(running: Set<string>, guests: Record<string, string[] | null>): Client {
  return {
    workflow: {
      getHandle: (workflowId: string) => ({
        describe: () => Promise.resolve({ status: { name: running.has(workflowId) ? 'RUNNING' : 'TERMINATED' } }),
      }),
      execute: (_type: string, options: { args: [{ hosts: string[] }] }) =>
        Promise.resolve(Object.fromEntries(options.args[0].hosts.map((h) => [h, h in guests ? guests[h] : []]))),
    },
  } as unknown as Client;
}

describe('audit findings', () => {
  let dir: string;
  let store: Store;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'conductor-audit-findings-'));
    store = await openStore({ sqlitePath: path.join(dir, 'conductor.sqlite') });
    await migrateToLatest(store);
    await createPlacementRepository(store).upsertProviders(
      ['host-a', 'host-b'].map((name) => HostSpecSchema.parse({ name, vcpus: 8, memoryMb: 8192, diskGb: 100 }))
    );
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function instance(fields: Partial<InstanceRecord>, claimOn: string | null = fields.host ?? 'host-a') {
    const instanceId = randomUUID();
    await createInstanceRepository(store).create({
      instanceId,
      name: `vm-${instanceId.slice(0, 8)}`,
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
      serverGroup: null,
      ...fields,
    });
    if (claimOn !== null) await createPlacementRepository(store).claim(instanceId, claimOn, TINY);
    return instanceId;
  }

  /** The findings as [kind, subject, host], in a fixed order (subjects are random ids). */
  const kinds = async (client?: Client) =>
    sorted((await auditStore(store, client ? { client } : {})).findings.map((f) => [f.kind, f.subject, f.host]));
  const sorted = (rows: Array<Array<string | null>>) => rows.map((r) => r.join(' ')).sort();

  it('finds nothing in a consistent cloud, store and hosts agreeing', async () => {
    const a = await instance({});
    const report = await auditStore(store, { client: fakeClient(new Set(), { 'host-a': [a], 'host-b': [] }) });
    expect(report.findings).toEqual([]);
    expect(report.clean).toBe(true);
    expect(report.checked).toEqual({ workflows: true, hostsReporting: ['host-a', 'host-b'], hostsNotAnswering: [] });
  });

  it('a paused or a suspended instance is settled on its host: clean while its host reports its guest and it holds its claim', async () => {
    const paused = await instance({ vmState: 'paused', powerState: 'paused' });
    const suspended = await instance({ vmState: 'suspended', powerState: 'suspended' });
    const bare = await instance({ vmState: 'suspended', powerState: 'suspended' }, null);
    const guests = { 'host-a': [paused, suspended, bare], 'host-b': [] };
    expect(await kinds(fakeClient(new Set(), guests))).toEqual(sorted([['missing-allocation', bare, 'host-a']]));
    expect(await kinds(fakeClient(new Set(), { 'host-a': [paused], 'host-b': [] }))).toEqual(
      sorted([
        ['missing-allocation', bare, 'host-a'],
        ['missing-guest', suspended, 'host-a'],
        ['missing-guest', bare, 'host-a'],
      ])
    );
  });

  it('a shelved instance is settled on its host; a shelved-offloaded one holds no allocation and no guest', async () => {
    const shelved = await instance({ vmState: 'shelved', powerState: 'shutdown' });
    const offloaded = await instance({ vmState: 'shelved_offloaded', powerState: 'nostate', host: null }, null);
    expect(await kinds(fakeClient(new Set(), { 'host-a': [shelved], 'host-b': [] }))).toEqual([]);
    // An offloaded instance that still holds a claim, or whose guest a host still runs, is found.
    const leaky = await instance({ vmState: 'shelved_offloaded', powerState: 'nostate', host: null }, 'host-b');
    const found = await kinds(fakeClient(new Set(), { 'host-a': [shelved, offloaded], 'host-b': [] }));
    expect(found.some((f) => f.startsWith('stray-guest') && f.includes(offloaded))).toBe(true);
    expect(found.some((f) => f.includes(leaky) && f.includes('host-b'))).toBe(true);
    expect(found.some((f) => f.includes(shelved))).toBe(false);
  });

  it("an unshelve under way holds its new host's claim and guest; once its workflow is closed the task state is found", async () => {
    const id = await instance({
      vmState: 'shelved_offloaded',
      taskState: 'spawning',
      taskOwner: 'unshelve-x',
      powerState: 'nostate',
      host: 'host-b',
    });
    expect(await kinds(fakeClient(new Set(['unshelve-x']), { 'host-a': [], 'host-b': [id] }))).toEqual([]);
    expect(await kinds(fakeClient(new Set(), { 'host-a': [], 'host-b': [id] }))).toEqual(
      sorted([['task-state-without-workflow', id, 'host-b']])
    );
  });

  it('reports a build whose workflow was terminated mid-spawn: task state held, workflow closed', async () => {
    const id = await instance({
      vmState: 'building',
      taskState: 'spawning',
      taskOwner: 'build-x',
      powerState: 'nostate',
    });
    // Store-only it is an instance under way, as far as anyone can tell.
    expect(await kinds()).toEqual([]);
    expect(await kinds(fakeClient(new Set(['build-x']), { 'host-a': [id] }))).toEqual([]);
    expect(await kinds(fakeClient(new Set(), { 'host-a': [id] }))).toEqual(
      sorted([['task-state-without-workflow', id, 'host-a']])
    );
  });

  it('reports a resize terminated in VERIFY_RESIZE: its migration holds the source allocation with no workflow', async () => {
    const repo = createInstanceRepository(store);
    const id = await instance({ vmState: 'resized', host: 'host-b' });
    await repo.startAction(id, 'resize', 'resize-vm');
    const migrationId = randomUUID();
    await repo.createMigration({
      id: migrationId,
      instanceId: id,
      sourceHost: 'host-a',
      destHost: 'host-b',
      oldFlavor: 'm1.tiny',
      newFlavor: 'm1.small',
      migrationType: 'resize',
      status: 'finished',
    });
    await createPlacementRepository(store).claim(migrationId, 'host-a', TINY);
    const guests = { 'host-a': [id], 'host-b': [id] };
    expect(await kinds(fakeClient(new Set(['resize-vm']), guests))).toEqual([]);
    expect(await kinds(fakeClient(new Set(), guests))).toEqual(
      sorted([['migration-allocation-without-workflow', migrationId, 'host-a']])
    );
  });

  it('reports an active instance with no allocation, and one holding on another host with no move', async () => {
    const bare = await instance({}, null);
    const elsewhere = await instance({ host: 'host-a' }, 'host-b');
    expect(await kinds()).toEqual(
      sorted([
        ['allocation-on-wrong-host', elsewhere, 'host-b'],
        ['missing-allocation', bare, 'host-a'],
        ['missing-allocation', elsewhere, 'host-a'],
      ])
    );
  });

  it('reports a missing guest and stray guests (deleted, failed, unknown, evacuated elsewhere)', async () => {
    const noGuest = await instance({});
    const deleted = await instance({ vmState: 'deleted', host: null, powerState: 'nostate' }, null);
    const failed = await instance({ vmState: 'error', host: null, powerState: 'nostate' }, null);
    const movedAway = await instance({ host: 'host-b' });
    const unknown = randomUUID();
    const client = fakeClient(new Set(), { 'host-a': [deleted, failed, movedAway, unknown], 'host-b': [movedAway] });
    expect(await kinds(client)).toEqual(
      sorted([
        ['missing-guest', noGuest, 'host-a'],
        ['stray-guest', deleted, 'host-a'],
        ['stray-guest', failed, 'host-a'],
        ['stray-guest', movedAway, 'host-a'],
        ['stray-guest', unknown, 'host-a'],
      ])
    );
  });

  it('names a host that did not answer, and skips the guest checks there', async () => {
    await instance({});
    const report = await auditStore(store, { client: fakeClient(new Set(), { 'host-a': null, 'host-b': [] }) });
    expect(report.findings).toEqual([]);
    expect(report.checked).toEqual({ workflows: true, hostsReporting: ['host-b'], hostsNotAnswering: ['host-a'] });
  });

  it('keeps orphaned allocations and hosts over capacity among the findings', async () => {
    const orphan = randomUUID();
    await createPlacementRepository(store).claim(orphan, 'host-b', TINY);
    const report = await auditStore(store);
    expect(report.findings.map((f) => [f.kind, f.subject, f.host])).toEqual([
      ['orphaned-allocation', orphan, 'host-b'],
    ]);
    expect(report.orphans.map((o) => o.consumerId)).toEqual([orphan]);
    expect(report.clean).toBe(false);
  });
});
