/**
 * The QEMU driver's parts that need no QEMU: the accelerator choice on each kind of host, the limits of
 * heavy steps (in-process and machine-wide), the run-state mapping, the command line.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { AccelHost } from '../../../src/compute/qemu/accel';
import { detectAccel } from '../../../src/compute/qemu/accel';
import { powerStateOfStatus, whyExited } from '../../../src/compute/qemu/guest';
import { Layout } from '../../../src/compute/qemu/layout';
import { MachineSlots } from '../../../src/compute/qemu/limits';
import { qemuArgv } from '../../../src/compute/qemu/process';

function host(files: Record<string, string>): AccelHost {
  return { exists: (p) => p in files, read: (p) => files[p] ?? '' };
}

describe('QEMU accelerator', () => {
  it('TCG without /dev/kvm, on a PVM host, and without vmx/svm; KVM with hardware KVM', () => {
    expect(detectAccel({}, host({})).accel).toBe('tcg');
    expect(detectAccel({}, host({ '/dev/kvm': '', '/sys/module/kvm_pvm': '' }))).toMatchObject({
      accel: 'tcg',
      reason: expect.stringContaining('PVM') as string,
    });
    expect(
      detectAccel({}, host({ '/dev/kvm': '', '/sys/module/kvm_intel': '', '/proc/cpuinfo': 'flags : fpu' })).accel
    ).toBe('tcg');
    expect(
      detectAccel({}, host({ '/dev/kvm': '', '/sys/module/kvm_amd': '', '/proc/cpuinfo': 'flags\t\t: fpu svm sse' }))
        .accel
    ).toBe('kvm');
    expect(detectAccel({ QEMU_ACCEL: 'tcg' }, host({ '/dev/kvm': '', '/sys/module/kvm_amd': '' })).accel).toBe('tcg');
  });
});

describe('QEMU heavy-step limits', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'qemu-slots-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('machine-wide slots: taken by mkdir, freed by release, and taken over from a holder that died', async () => {
    const slots = new MachineSlots(dir, 1);
    const release = await slots.acquire();
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('waited')), 300);
    await expect(slots.acquire(controller.signal)).rejects.toThrow('waited');
    await release();
    await (
      await slots.acquire()
    )();
    // A slot whose holder pid is gone is free.
    await mkdir(path.join(dir, 'slot-0'));
    await writeFile(path.join(dir, 'slot-0', 'pid'), '999999999');
    const again = await slots.acquire();
    await again();
  });
});

describe('QEMU run states and command line', () => {
  it('maps QMP run states to Nova power states as libvirt does', () => {
    expect(powerStateOfStatus('running')).toBe('running');
    for (const s of ['paused', 'inmigrate', 'postmigrate', 'finish-migrate', 'prelaunch'])
      expect(powerStateOfStatus(s)).toBe('paused');
    expect(powerStateOfStatus('shutdown')).toBe('shutdown');
    expect(powerStateOfStatus('guest-panicked')).toBe('crashed');
    expect(powerStateOfStatus('internal-error')).toBe('crashed');
  });

  it('builds the reference command line; qboot under TCG only; -incoming defer for a destination', () => {
    const spec = {
      instanceId: 'i-1',
      accel: 'tcg' as const,
      memoryMb: 128,
      vcpus: 1,
      kernel: '/k',
      initrd: '/i',
      disk: '/d/disk.qcow2',
      console: '/d/console.log',
      qmp: '/r/a.qmp',
      testQmp: '/r/a.t.qmp',
      pidFile: '/d/qemu.h.pid',
    };
    const argv = qemuArgv(spec);
    expect(argv.join(' ')).toContain(
      '-name guest=i-1,debug-threads=on -accel tcg,tb-size=64 -machine pc -cpu qemu64 -m 128'
    );
    expect(argv).toEqual(expect.arrayContaining(['-bios', '/usr/share/qemu/qboot.rom', '-no-reboot', '-nodefaults']));
    expect(argv).toContain('file,id=ser0,path=/d/console.log,append=on');
    expect(argv).not.toContain('-incoming');
    const kvm = qemuArgv({ ...spec, accel: 'kvm', incoming: true });
    expect(kvm).not.toContain('-bios');
    expect(kvm.slice(-2)).toEqual(['-incoming', 'defer']);
  });

  it('refuses a QMP socket path longer than a UNIX socket allows', async () => {
    const long = new Layout('/data', 'h', '/images', `/tmp/${'x'.repeat(100)}`);
    await expect(long.newSockets()).rejects.toThrow(/longer than 107 bytes/);
    await rm(`/tmp/${'x'.repeat(100)}`, { recursive: true, force: true });
  });
});

describe('why a guest QEMU is gone', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'why-exited-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("names the guest kernel's panic from its console, else QEMU's own last lines", async () => {
    const layout = new Layout(dir, 'h1', dir, dir);
    expect(await whyExited({ layout }, dir)).toBe('QEMU logged nothing');
    await writeFile(layout.qemuLog(dir), 'qemu-system-x86_64: cannot set up guest memory\n');
    expect(await whyExited({ layout }, dir)).toBe('qemu-system-x86_64: cannot set up guest memory');
    await writeFile(layout.qemuLog(dir), '');
    await writeFile(
      layout.console(dir),
      [
        'HEARTBEAT 45',
        '[   47.018940] general protection fault, probably for non-canonical address 0xdead00000000012a: 0000 [#1]',
        '[   47.029358] Kernel panic - not syncing: Fatal exception in interrupt',
        '',
      ].join('\r\n')
    );
    expect(await whyExited({ layout }, dir)).toBe(
      'its kernel panicked (general protection fault, probably for non-canonical address 0xdead00000000012a: 0000 [#1]; Kernel panic - not syncing: Fatal exception in interrupt)'
    );
  });
});
