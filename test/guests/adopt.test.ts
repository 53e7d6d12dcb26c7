/**
 * Guests outlive their compute worker: the process that owns a guest is killed with SIGKILL, the guest
 * keeps running (its heartbeat goes on), and a new driver on the same data directory re-adopts it (pid
 * alive, command line, query-name, QMP answering) and drives it. A QEMU of this host that no record
 * names is an orphan: re-adoption kills it.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';

import { afterAll, afterEach, describe, expect, inject, it, vi } from 'vitest';

import { QmpClient } from '../../src/compute/qemu';
import { CIRROS, DIRTY, GuestLab, SMALL } from './helpers';

describe('QEMU driver: re-adoption after the owner is killed', () => {
  const lab = new GuestLab();

  afterEach(() => {
    expect(lab.qemuPids()).toEqual([]);
    expect(lab.leftovers()).toEqual([]);
  });
  afterAll(() => lab.dispose());

  it('the guest runs on after kill -9 of its owner; a new driver re-adopts it, stops and destroys it', async () => {
    const owner = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(__dirname, 'fixtures', 'owner.ts'),
        'ad-a',
        lab.dataDir,
        inject('guestImageDir'),
        'vm-a1',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] }
    );
    let out = '';
    owner.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise((resolve) => owner.once('exit', resolve));
    await vi.waitFor(() => expect(out).toContain('SPAWNED vm-a1'), { timeout: 90_000, interval: 100 });
    const [qemuPid] = lab.qemuPids();
    expect(qemuPid).toBeDefined();

    owner.kill('SIGKILL');
    await exited;
    const beat = lab.lastHeartbeat('vm-a1');
    await lab.waitForHeartbeat('vm-a1', beat + 2);
    expect(lab.qemuPids()).toEqual([qemuPid]);

    const started = Date.now();
    const heir = lab.driver('ad-a');
    const report = await heir.adoptGuests();
    const adoptMs = Date.now() - started;
    console.log(`re-adoption after kill -9 of the owner: ${adoptMs} ms`);
    expect(report).toEqual({
      guests: [
        expect.objectContaining({ instanceId: 'vm-a1', pid: qemuPid, process: 'running', powerState: 'running' }),
      ],
      orphansKilled: [],
    });
    expect(await heir.getPowerState({ instanceId: 'vm-a1' })).toBe('running');
    expect(lab.boots('vm-a1')).toHaveLength(1);
    expect(await heir.powerOff({ instanceId: 'vm-a1' })).toBe('shutdown');
    expect(await heir.destroy({ instanceId: 'vm-a1' })).toBe(true);
  });

  it('kill -9 of the owner mid-spawn: the retried spawn on a new driver takes the half-made guest over and boots it once', async () => {
    const owner = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(__dirname, 'fixtures', 'owner.ts'),
        'ad-s',
        lab.dataDir,
        inject('guestImageDir'),
        'vm-s1',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] }
    );
    const exited = new Promise((resolve) => owner.once('exit', resolve));
    // Killed once its QEMU runs, before the guest's boot line.
    await vi.waitFor(() => expect(lab.qemuPids()).toHaveLength(1), { timeout: 60_000, interval: 20 });
    owner.kill('SIGKILL');
    await exited;
    const [halfMade] = lab.qemuPids();

    const heir = lab.driver('ad-s');
    const report = await heir.adoptGuests();
    expect(report.guests).toEqual([expect.objectContaining({ instanceId: 'vm-s1', status: 'spawning' })]);
    const retried = await heir.spawn({ instanceId: 'vm-s1', name: 'vm-s1', flavor: SMALL, image: CIRROS });
    expect(retried.created).toBe(true);
    expect(lab.qemuPids()).not.toContain(halfMade);
    expect(lab.qemuPids()).toHaveLength(1);
    expect(lab.boots('vm-s1').at(-1)).toMatch(/boot=1 image=cirros/);
    await heir.destroy({ instanceId: 'vm-s1' });
  });

  it('the owner lost mid-copy: the retried live migration on a new driver re-attaches to the copy QEMU runs on', async () => {
    const bandwidth = { maxBandwidthBytes: 48 * 1024 * 1024 };
    const a = lab.driver('ad-m', bandwidth);
    const b = lab.driver('ad-n', bandwidth);
    await a.spawn({ instanceId: 'vm-m1', name: 'vm-m1', flavor: SMALL, image: DIRTY });
    await lab.waitForHeartbeat('vm-m1', 2);
    await b.preLiveMigration({ instanceId: 'vm-m1', migrationId: 'mm-1', name: 'vm-m1', flavor: SMALL, image: DIRTY });
    const request = {
      instanceId: 'vm-m1',
      migrationId: 'mm-1',
      maxDowntimeMs: 1,
      downtimeSteps: 1,
      completionTimeoutSecondsPerGb: 120,
    };
    const rounds: number[] = [];
    const first = a.liveMigration(request, { onProgress: (p) => rounds.push(p.round) }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(rounds.at(-1)).toBeGreaterThanOrEqual(2), { timeout: 60_000 });
    // The worker's connection gone (as when its process dies): its call fails, QEMU's copy runs on.
    await a.close();
    expect(await first).toBeInstanceOf(Error);

    const heir = lab.driver('ad-m', bandwidth);
    const progress: number[] = [];
    const retried = heir.liveMigration(request, { onProgress: (p) => progress.push(p.round) });
    await vi.waitFor(() => expect(progress.length).toBeGreaterThanOrEqual(1), { timeout: 30_000 });
    expect(progress[0]).toBeGreaterThanOrEqual(2); // the same copy, not a new one
    expect(await heir.forceCompleteLiveMigration({ instanceId: 'vm-m1' })).toBe(true);
    expect(await retried).toMatchObject({ switched: true, forced: true });
    expect(await b.postLiveMigrationAtDestination({ instanceId: 'vm-m1', migrationId: 'mm-1' })).toBe('running');
    expect(await heir.postLiveMigration({ instanceId: 'vm-m1', migrationId: 'mm-1' })).toBe(true);
    expect(lab.boots('vm-m1')).toHaveLength(1);
    await b.destroy({ instanceId: 'vm-m1' });
  });

  it('a guest whose QEMU is gone reads off; a QEMU of this host that no record names is killed', async () => {
    const a = lab.driver('ad-b');
    await a.spawn({
      instanceId: 'vm-b1',
      name: 'vm-b1',
      flavor: { name: 'g', vcpus: 1, memoryMb: 128, diskGb: 1 },
      image: { name: 'cirros', sizeGb: 0.02 },
    });
    const record = await a.guestRecord('vm-b1');
    const pid = record?.process?.pid ?? 0;
    // The record lost (a worker killed between launch and record): the process is an orphan.
    rmSync(path.join(lab.instanceDir('vm-b1'), 'guest.ad-b.json'));
    await a.close();
    const heir = lab.driver('ad-b');
    const report = await heir.adoptGuests();
    expect(report).toEqual({ guests: [], orphansKilled: [pid] });
    expect(lab.qemuPids()).toEqual([]);
    rmSync(lab.instanceDir('vm-b1'), { recursive: true, force: true });
  });

  it('a record whose QEMU died reads stopped and off, and a monitor another client holds is unresponsive', async () => {
    const a = lab.driver('ad-c');
    const flavor = { name: 'g', vcpus: 1, memoryMb: 128, diskGb: 1 };
    await a.spawn({ instanceId: 'vm-c1', name: 'vm-c1', flavor, image: { name: 'cirros', sizeGb: 0.02 } });
    await a.spawn({ instanceId: 'vm-c2', name: 'vm-c2', flavor, image: { name: 'cirros', sizeGb: 0.02 } });
    const c1 = await a.guestRecord('vm-c1');
    const c2 = await a.guestRecord('vm-c2');
    process.kill(c1?.process?.pid ?? 0, 'SIGKILL');
    await a.close();
    // Someone else holds vm-c2's worker monitor: a new driver gets no greeting there.
    const holder = await QmpClient.connect(c2?.process?.qmp ?? '');
    try {
      const report = await lab.driver('ad-c').adoptGuests();
      expect(report.guests).toEqual([
        expect.objectContaining({ instanceId: 'vm-c1', pid: null, process: 'stopped', powerState: 'shutdown' }),
        expect.objectContaining({ instanceId: 'vm-c2', process: 'unresponsive', powerState: 'nostate' }),
      ]);
    } finally {
      await holder.close();
    }
    const heir = lab.driver('ad-c');
    expect(await heir.getPowerState({ instanceId: 'vm-c1' })).toBe('shutdown');
    expect(await heir.getPowerState({ instanceId: 'vm-c2' })).toBe('running');
    await heir.destroy({ instanceId: 'vm-c1' });
    await heir.destroy({ instanceId: 'vm-c2' });
  });
});
