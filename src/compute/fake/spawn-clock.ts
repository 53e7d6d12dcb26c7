/**
 * The fake hypervisor's timing: a spawn or a disk transfer takes `spawnSeconds` of real time, reporting
 * progress at least every SPAWN_PROGRESS_INTERVAL_MS; an injected fault strikes at SPAWN_FAULT_POINT.
 * Waits are abortable and reject with the signal's reason (e.g. the activity's CancelledFailure).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** How often a running spawn reports progress (the brief asks for at least every 500 ms). */
export const SPAWN_PROGRESS_INTERVAL_MS = 200;
/** Where in a spawn an injected failure or hang strikes (fraction of spawnSeconds). */
export const SPAWN_FAULT_POINT = 0.5;

/** The longest a single Node timer waits (2^31 - 1 ms); longer waits are made of several. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ProgressClock {
  /** Real time the whole run takes. */
  totalMs: number;
  signal: AbortSignal | undefined;
  /** Called with 0..99 while it runs, then once with 100. */
  onProgress: ((percent: number) => void) | undefined;
  /** An injected fault: run once at SPAWN_FAULT_POINT; it throws, or waits for the abort (a hang). */
  strike?: () => Promise<void>;
}

/** Progress from 0 to 100 over `totalMs` of real time; an injected fault strikes at SPAWN_FAULT_POINT. */
export async function runProgressClock({ totalMs, signal, onProgress, strike }: ProgressClock): Promise<void> {
  const started = performance.now();
  for (;;) {
    throwIfAborted(signal);
    const elapsed = performance.now() - started;
    const fraction = totalMs === 0 ? 1 : Math.min(1, elapsed / totalMs);
    if (strike && fraction >= SPAWN_FAULT_POINT) await strike();
    if (fraction >= 1) break;
    onProgress?.(Math.floor(fraction * 100));
    const untilFault = strike ? SPAWN_FAULT_POINT * totalMs - elapsed : Infinity;
    const wait = Math.min(SPAWN_PROGRESS_INTERVAL_MS, totalMs - elapsed, untilFault > 0 ? untilFault : Infinity);
    await delay(Math.max(1, wait), signal);
  }
  onProgress?.(100);
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** Resolves after `ms`; rejects with the signal's reason on abort. */
export async function delay(ms: number, signal: AbortSignal | undefined, ref = true): Promise<void> {
  try {
    await sleep(ms, undefined, { signal, ref });
  } catch (err) {
    if (signal?.aborted) throw abortReason(signal);
    throw err;
  }
}

/** Never resolves; rejects with the signal's reason once it is aborted. Keeps no process alive. */
export async function waitForAbort(signal: AbortSignal | undefined): Promise<never> {
  for (;;) await delay(MAX_TIMER_MS, signal, false);
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}
