import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import type { GuestFlavor, GuestImage } from '../../../src/compute/driver';

export const TINY: GuestFlavor = { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 };
export const SMALL: GuestFlavor = { name: 'm1.small', vcpus: 1, memoryMb: 2048, diskGb: 20 };
export const CIRROS: GuestImage = { name: 'cirros', sizeGb: 0.02 };
export const UBUNTU: GuestImage = { name: 'ubuntu-24.04', sizeGb: 3 };

/** A fresh state directory per test, removed afterwards. */
export async function makeStateDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fake-driver-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A clock the test moves by hand. */
export function manualClock(start = Date.UTC(2025, 0, 1)): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** A random source that replays `values` in turn. */
export function sequenceRng(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}
