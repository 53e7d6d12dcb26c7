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
import { GuestLab } from './helpers';

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
