/**
 * The virt driver contract (test/contract/virt-driver-contract.ts) on the fake hypervisor, with the
 * real guest images' names: `stubborn` ignores ACPI and `dirty` outruns a live migration's copy in the
 * fake as on QEMU.
 */
import { describeVirtDriverContract } from '../../contract/virt-driver-contract';
import { FakeDriver } from '../../../src/compute/fake';

describeVirtDriverContract('fake', {
  makeDriver: (host, dataDir) =>
    // A short spawn (so a spawn can be aborted part-way) and a short cooperative shutdown.
    new FakeDriver({ host, stateDir: dataDir, spawnSeconds: 0.2, shutdownSeconds: 0.3 }),
  images: {
    cooperative: { name: 'cirros', sizeGb: 0.02 },
    ignoresAcpi: { name: 'stubborn', sizeGb: 0.02 },
    dirty: { name: 'dirty', sizeGb: 0.02 },
  },
  flavors: {
    small: { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 },
    large: { name: 'm1.small', vcpus: 1, memoryMb: 2048, diskGb: 20 },
  },
  timeouts: { testMs: 20_000, bootMs: 2_000, shutdownMs: 3_000, ignoredShutdownMs: 500 },
});
