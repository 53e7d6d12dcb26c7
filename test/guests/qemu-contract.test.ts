/**
 * The virt driver contract (test/contract/virt-driver-contract.ts) on real QEMU guests: the same
 * behaviour tests the fake passes, with the real images (`stubborn` ignores ACPI, `dirty` outruns the copy).
 * Its data directories live under one parent of this file's, which holds no QEMU process at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, expect, inject } from 'vitest';

import { QemuDriver } from '../../src/compute/qemu';
import { describeVirtDriverContract } from '../contract/virt-driver-contract';
import { CIRROS, DIRTY, GuestLab, MEDIUM, SMALL, STUBBORN } from './helpers';

const parent = mkdtempSync(path.join(tmpdir(), 'qemu-contract-'));

describeVirtDriverContract('qemu', {
  makeDriver: (host, dataDir) =>
    new QemuDriver({
      host,
      dataDir,
      imageDir: inject('guestImageDir'),
      bootTimeoutMs: 60_000,
      // Below the dirty image's ~120 MB/s, so its copy converges only when forced.
      maxBandwidthBytes: 48 * 1024 * 1024,
    }),
  releaseDriver: (driver) => (driver as QemuDriver).close(),
  images: { cooperative: CIRROS, ignoresAcpi: STUBBORN, dirty: DIRTY },
  flavors: { small: SMALL, large: MEDIUM },
  timeouts: { testMs: 150_000, bootMs: 60_000, shutdownMs: 20_000, ignoredShutdownMs: 3_000 },
  liveMigration: { maxDowntimeMs: 100, downtimeSteps: 3, completionTimeoutSecondsPerGb: 30 },
  tmpDir: parent,
});

afterAll(async () => {
  const lab = new GuestLab(parent);
  expect(lab.qemuPids()).toEqual([]);
  await lab.dispose();
  rmSync(parent, { recursive: true, force: true });
});
