/**
 * How many heavy steps (a boot, a live migration's copy) run at once: a boot costs about 3 CPU-seconds
 * under TCG and a migration runs two QEMUs, so a 2-core machine takes about 2 at a time. Two limits, both
 * must be held: one per host (in the compute worker's process) and one for the whole machine (slot
 * directories under the runtime dir, each naming its holder's pid, so a holder that died frees its slot).
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Slots } from '../../shared/slots';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Machine-wide slots: `<dir>/slot-<n>` directories made with mkdir (atomic), holding their owner's pid. */
export class MachineSlots {
  constructor(
    readonly dir: string,
    readonly size: number
  ) {}

  async acquire(signal?: AbortSignal, onWait?: () => void): Promise<() => Promise<void>> {
    await mkdir(this.dir, { recursive: true });
    for (;;) {
      signal?.throwIfAborted();
      for (let n = 0; n < this.size; n++) {
        const slot = path.join(this.dir, `slot-${n}`);
        if (await this.tryTake(slot)) {
          let released = false;
          return async () => {
            if (released) return;
            released = true;
            await rm(slot, { recursive: true, force: true });
          };
        }
      }
      onWait?.();
      await sleep(200, undefined, { signal }).catch(() => undefined);
    }
  }

  private async tryTake(slot: string): Promise<boolean> {
    try {
      await mkdir(slot);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Taken: free it when its holder is gone (its pid file written right after the mkdir; a slot with
      // none after a few seconds lost its holder in between).
      const owner = Number(await readFile(path.join(slot, 'pid'), 'utf8').catch(() => ''));
      const age = Date.now() - ((await stat(slot).catch(() => undefined))?.mtimeMs ?? Date.now());
      if ((owner > 0 && !alive(owner)) || (!(owner > 0) && age > 5000))
        await rm(slot, { recursive: true, force: true });
      return false;
    }
    await writeFile(path.join(slot, 'pid'), String(process.pid));
    return true;
  }
}

/** Both limits held for one heavy step; `release` frees them (idempotent). */
export class HeavyStepLimits {
  constructor(
    private readonly host: Slots,
    private readonly machine: MachineSlots
  ) {}

  async hold<T>(signal: AbortSignal | undefined, onWait: (() => void) | undefined, fn: () => Promise<T>): Promise<T> {
    return this.host.run(
      async () => {
        const releaseMachine = await this.machine.acquire(signal, onWait);
        try {
          return await fn();
        } finally {
          await releaseMachine();
        }
      },
      { signal, onWait }
    );
  }
}
