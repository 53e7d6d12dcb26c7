/**
 * The one place a compute worker's driver is chosen: `createDriver(kind, options)`, where `kind` is the
 * fleet file's per-host `driver`, else COMPUTE_DRIVER (default `fake`). Everything past it sees only
 * `VirtDriver`.
 *
 * - `fake`: the fake hypervisor, its state under `<dataDir>/compute/<host>/` (guests.json, faults.json).
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

/** The driver module's path, relative to this file (a variable: a build without it still compiles). */
const QEMU_MODULE = '../compute/qemu';

interface QemuModule {
  QemuDriver: new (options: { host: string; dataDir: string }) => VirtDriver;
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
      const { QemuDriver } = await loadQemu();
      return new QemuDriver({ host: options.host, dataDir: options.dataDir });
    }
  }
}

async function loadQemu(): Promise<QemuModule> {
  let loaded: Partial<QemuModule>;
  try {
    loaded = (await import(QEMU_MODULE)) as Partial<QemuModule>;
  } catch (err) {
    if (isModuleNotFound(err))
      throw new Error('the qemu driver is not built in (no src/compute/qemu in this build)', { cause: err });
    throw err;
  }
  if (typeof loaded.QemuDriver !== 'function')
    throw new Error('the qemu driver is not built in (src/compute/qemu exports no QemuDriver)');
  return loaded as QemuModule;
}

/** Node's (MODULE_NOT_FOUND) and a bundler's or test runner's ("Cannot find module") word for it. */
function isModuleNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (
    code === 'MODULE_NOT_FOUND' ||
    code === 'ERR_MODULE_NOT_FOUND' ||
    (err instanceof Error && /Cannot find module .*compute\/qemu/.test(err.message))
  );
}
