/**
 * Real-guest test helpers: drivers on a fresh data directory, the test images and flavors, reading a
 * guest's serial console, and the check that a test left no QEMU process or file behind (only processes
 * whose command line names this test's data directory are ever killed).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { inject, vi } from 'vitest';

import type { GuestFlavor, GuestImage } from '../../src/compute/driver';
import type { QemuDriverOptions } from '../../src/compute/qemu';
import { QemuDriver } from '../../src/compute/qemu';

export const CIRROS: GuestImage = { name: 'cirros', sizeGb: 0.02 };
export const STUBBORN: GuestImage = { name: 'stubborn', sizeGb: 0.02 };
export const DIRTY: GuestImage = { name: 'dirty', sizeGb: 0.02 };
export const SMALL: GuestFlavor = { name: 'g.small', vcpus: 1, memoryMb: 128, diskGb: 1 };
export const MEDIUM: GuestFlavor = { name: 'g.medium', vcpus: 1, memoryMb: 192, diskGb: 2 };

export class GuestLab {
  readonly dataDir: string;
  readonly drivers: QemuDriver[] = [];

  /** A fresh data directory, or `dataDir` (whose QEMU processes it then watches and, on dispose, kills). */
  constructor(dataDir?: string) {
    this.dataDir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'guests-'));
  }

  driver(host: string, options: Partial<QemuDriverOptions> = {}): QemuDriver {
    const d = new QemuDriver({
      host,
      dataDir: this.dataDir,
      imageDir: inject('guestImageDir'),
      bootTimeoutMs: 60_000,
      ...options,
    });
    this.drivers.push(d);
    return d;
  }

  instanceDir(instanceId: string): string {
    return path.join(this.dataDir, 'instances', instanceId);
  }

  console(instanceId: string): string {
    try {
      return readFileSync(path.join(this.instanceDir(instanceId), 'console.log'), 'utf8').replace(/\r/g, '');
    } catch {
      return '';
    }
  }

  /** The boot lines printed so far. */
  boots(instanceId: string): string[] {
    return this.console(instanceId).match(/GUEST-BOOT .*/g) ?? [];
  }

  lastHeartbeat(instanceId: string): number {
    const all = [...this.console(instanceId).matchAll(/HEARTBEAT (\d+)/g)];
    return Number(all.at(-1)?.[1] ?? 0);
  }

  /** Waits until the console holds `count` boot lines; returns the last. */
  async waitForBoot(instanceId: string, count: number, timeout = 60_000): Promise<string> {
    return vi.waitFor(
      () => {
        const boots = this.boots(instanceId);
        if (boots.length < count) throw new Error(`${boots.length} boot line(s) of ${count}`);
        return boots[count - 1] ?? '';
      },
      { timeout, interval: 100 }
    );
  }

  async waitForHeartbeat(instanceId: string, atLeast: number, timeout = 30_000): Promise<number> {
    return vi.waitFor(
      () => {
        const n = this.lastHeartbeat(instanceId);
        if (n < atLeast) throw new Error(`heartbeat ${n} < ${atLeast}`);
        return n;
      },
      { timeout, interval: 100 }
    );
  }

  /** Pids of QEMU processes started on this lab's data directory (none of anyone else's). */
  qemuPids(): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid)) continue;
      try {
        const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (state.slice(state.lastIndexOf(')') + 2).startsWith('Z')) continue;
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmdline.includes('qemu-system') && cmdline.includes(`${this.dataDir}/`)) pids.push(pid);
      } catch {
        // gone
      }
    }
    return pids;
  }

  /** Instance directories left (each test cleans its own guests with the driver). */
  leftovers(): string[] {
    try {
      return readdirSync(path.join(this.dataDir, 'instances'));
    } catch {
      return [];
    }
  }

  /** Kills (by pid) anything a failed test left, closes the drivers, removes the data directory. */
  async dispose(): Promise<void> {
    for (const pid of this.qemuPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await Promise.all(this.drivers.map((d) => d.close()));
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
