/**
 * The fake hypervisor's injected faults: `<stateDir>/<host>/faults.json` (see ../faults.ts), re-read at
 * each operation that can fail, with counters consumed by writing the file back.
 */
import { z } from 'zod';

import type { Faults, SpawnFault } from './faults';
import { FaultsSchema, takeSpawnFault } from './faults';
import { readJsonFile, withFileLock, writeJsonFileAtomic } from './json-file';

/** The resize steps a `failNext` can be injected into. */
export type ResizeFaultStep = 'prepResize' | 'migrateDisk' | 'finishResize' | 'snapshot';

export class FaultStore {
  constructor(
    private readonly host: string,
    /** `<stateDir>/<host>/faults.json` */
    readonly file: string,
    private readonly rng: () => number
  ) {}

  /** Replaces the injected faults (validated, written atomically: a running worker sees them next op). */
  async set(faults: Faults): Promise<void> {
    const valid = FaultsSchema.parse(faults);
    await withFileLock(this.file, () => writeJsonFileAtomic(this.file, valid));
  }

  /** The faults currently injected; `{}` when there is no file or it is malformed (with a warning). */
  async get(): Promise<Faults> {
    let raw: unknown;
    try {
      raw = await readJsonFile(this.file);
    } catch (err) {
      console.warn(`fake-driver ${this.host}: ignoring unreadable ${this.file}: ${String(err)}`);
      return {};
    }
    if (raw === undefined) return {};
    const parsed = FaultsSchema.safeParse(raw);
    if (!parsed.success) {
      console.warn(`fake-driver ${this.host}: ignoring invalid ${this.file}: ${z.prettifyError(parsed.error)}`);
      return {};
    }
    return parsed.data;
  }

  /** The instances whose guests power themselves off now (`guestPowersOff`), consumed. */
  async takeGuestPowersOff(): Promise<string[]> {
    if ((await this.get()).guestPowersOff === undefined) return [];
    return withFileLock(this.file, async () => {
      const { guestPowersOff = [], ...rest } = await this.get();
      if (guestPowersOff.length > 0) await writeJsonFileAtomic(this.file, rest);
      return guestPowersOff;
    });
  }

  /** Decides the next spawn's fault and writes the consumed counters back. */
  async consumeSpawnFault(): Promise<SpawnFault> {
    return withFileLock(this.file, async () => {
      const faults = await this.get();
      const { fault, next } = takeSpawnFault(faults, this.rng);
      if (next !== faults) await writeJsonFileAtomic(this.file, next);
      return fault;
    });
  }

  /** Consumes one of a live-migration counter; true when this run must fail (or hang). */
  async consumeLiveMigrationFault(
    counter: 'checkDestinationFailNext' | 'failNext' | 'receiveHangNext' | 'postFailNext'
  ): Promise<boolean> {
    return withFileLock(this.file, async () => {
      const faults = await this.get();
      const live = faults.liveMigration ?? {};
      const left = live[counter] ?? 0;
      if (left <= 0) return false;
      await writeJsonFileAtomic(this.file, { ...faults, liveMigration: { ...live, [counter]: left - 1 } });
      return true;
    });
  }

  /** Consumes one `failNext` of a resize step's injected fault; true when this run must fail. */
  async consumeResizeFault(step: ResizeFaultStep): Promise<boolean> {
    return withFileLock(this.file, async () => {
      const faults = await this.get();
      const left = faults[step]?.failNext ?? 0;
      if (left <= 0) return false;
      await writeJsonFileAtomic(this.file, { ...faults, [step]: { ...faults[step], failNext: left - 1 } });
      return true;
    });
  }
}
