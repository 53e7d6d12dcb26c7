/**
 * The one place a compute worker's driver is chosen: `createDriver(kind, options)`, where `kind` is the
 * fleet file's per-host `driver`, else COMPUTE_DRIVER (default `fake`). Everything past it sees only
 * `VirtDriver`.
 *
 * - `fake`: the fake hypervisor, its state under `<dataDir>/compute/<host>/` (guests/<instance>.json, snapshots.json, faults.json).
 * - `qemu`: real guests (src/compute/qemu), their instance directories under `<dataDir>/instances/`,
 *   shared by every host of the data directory (Nova's shared instance path). Loaded on demand, so a
 *   fake-only worker never loads it.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import type { VirtDriver } from '../compute/driver';
import { FakeDriver } from '../compute/fake';
import type { ComputeDriverKind } from '../domain/fleet';

export interface DriverFactoryOptions {
  host: string;
  /** `$DATA_DIR`. */
  dataDir: string;
  /** Seconds a fake spawn takes (COMPUTE_SPAWN_SECONDS); the fake only. */
  spawnSeconds?: number;
}

export async function createDriver(kind: ComputeDriverKind, options: DriverFactoryOptions): Promise<VirtDriver> {
  switch (kind) {
    case 'fake': {
      const stateDir = path.join(options.dataDir, 'compute');
      // The host's folder exists from the start, so a user can drop a faults.json in it at any time.
      mkdirSync(path.join(stateDir, options.host), { recursive: true });
      return new FakeDriver({
        host: options.host,
        stateDir,
        ...(options.spawnSeconds === undefined ? {} : { spawnSeconds: options.spawnSeconds }),
      });
    }
    case 'qemu': {
      const { QemuDriver } = await import('../compute/qemu/index.js');
      return new QemuDriver({ host: options.host, dataDir: options.dataDir });
    }
  }
}
