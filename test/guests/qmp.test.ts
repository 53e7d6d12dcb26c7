/**
 * The QMP client against a real QEMU: a guest process started with `-incoming defer` (its vCPU never runs,
 * so it costs nothing), driven the way the driver drives it.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { detectAccel } from '../../src/compute/qemu/accel';
import {
  guestMarkers,
  isGuestProcess,
  killGuest,
  launchDetached,
  qemuArgv,
  connectWhenReady,
} from '../../src/compute/qemu/process';
import { QmpClient, QmpError, QmpUnavailable } from '../../src/compute/qemu/qmp';
import { GuestLab } from './helpers';

describe('QMP client against a real QEMU', () => {
  const lab = new GuestLab();
  let pid = 0;
  let markers: string[] = [];
  let sockets = { qmp: '', testQmp: '' };
  let client: QmpClient;

  beforeAll(async () => {
    const dir = lab.instanceDir('qmp-1');
    mkdirSync(dir, { recursive: true });
    const d = lab.driver('qmp-host');
    sockets = await d.layout.newSockets();
    const images = d.layout;
    const argv = qemuArgv({
      instanceId: 'qmp-1',
      accel: 'tcg',
      memoryMb: 128,
      vcpus: 1,
      kernel: images.kernel(),
      initrd: images.initrd(),
      disk: path.join(images.imageDir, 'cirros.qcow2'),
      console: path.join(dir, 'console.log'),
      qmp: sockets.qmp,
      testQmp: sockets.testQmp,
      pidFile: path.join(dir, 'qemu.pid'),
      incoming: true,
    });
    // The base opened read-only by a guest that never runs: nothing is written to it.
    argv[argv.indexOf('-drive') + 1] += ',readonly=on';
    pid = launchDetached(argv, path.join(dir, 'qemu.log'));
    markers = guestMarkers('qmp-1', sockets.qmp);
    client = await connectWhenReady(sockets.qmp, pid, markers, 15_000);
  });

  afterAll(async () => {
    await client.close();
    if (pid) await killGuest(pid, markers);
    expect(lab.qemuPids()).toEqual([]);
    await lab.dispose();
  });

  it('negotiates capabilities and answers commands by id, concurrently', async () => {
    const [name, status, kvm] = await Promise.all([
      client.execute<{ name: string }>('query-name'),
      client.execute<{ status: string }>('query-status'),
      client.execute<{ enabled: boolean }>('query-kvm'),
    ]);
    expect(name).toEqual({ name: 'qmp-1' });
    expect(status.status).toBe('inmigrate');
    expect(kvm.enabled).toBe(false);
  });

  it('rejects an error reply with its class and description', async () => {
    const err = await client.execute('no-such-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ command: 'no-such-command', errorClass: 'CommandNotFound' });
  });

  it('delivers events to listeners and to the second monitor', async () => {
    const second = await QmpClient.connect(sockets.testQmp);
    try {
      const onFirst = client.waitForEvent('MIGRATION', 5000);
      const onSecond = second.waitForEvent('MIGRATION', 5000);
      await client.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
      await client.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
      expect((await onFirst).data).toMatchObject({ status: 'setup' });
      expect((await onSecond).data).toMatchObject({ status: 'setup' });
      const info = await client.execute<{ 'socket-address': { port: string }[] }>('query-migrate');
      expect(Number(info['socket-address'][0]?.port)).toBeGreaterThan(0);
    } finally {
      await second.close();
    }
  });

  it('gets no greeting from a monitor another client holds: QmpUnavailable within the timeout', async () => {
    const started = Date.now();
    const err = await QmpClient.connect(sockets.qmp, { greetingTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpUnavailable);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('times a command out, and rejects everything once the process is gone', async () => {
    // A frozen QEMU (SIGSTOP) answers nothing: the command times out; once thawed it answers again.
    process.kill(pid, 'SIGSTOP');
    try {
      await expect(client.execute('query-status', undefined, 300)).rejects.toThrow(/no reply within 300 ms/);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(await client.execute('query-name')).toEqual({ name: 'qmp-1' });
    expect(await isGuestProcess(pid, markers)).toBe(true);
    await killGuest(pid, markers);
    expect(await isGuestProcess(pid, markers)).toBe(false);
    await client.closed;
    await expect(client.execute('query-status')).rejects.toBeInstanceOf(QmpUnavailable);
    pid = 0;
  });

  it('uses TCG on this machine unless told: KVM here is PVM or absent', () => {
    expect(detectAccel({}).accel).toBe('tcg');
    expect(detectAccel({ QEMU_ACCEL: 'kvm' }).accel).toBe('kvm');
    expect(() => detectAccel({ QEMU_ACCEL: 'hvf' })).toThrow(/tcg or kvm/);
  });
});
