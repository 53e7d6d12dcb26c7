/**
 * The virt driver contract (test/contract/virt-driver-contract.ts) on real QEMU guests: the same
 * behaviour tests the fake passes, with the real images (`stubborn` ignores ACPI, `dirty` outruns the copy).
 */
import { inject } from 'vitest';

import { QemuDriver } from '../../src/compute/qemu';
import { describeVirtDriverContract } from '../contract/virt-driver-contract';
import { CIRROS, DIRTY, MEDIUM, SMALL, STUBBORN } from './helpers';

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
});
