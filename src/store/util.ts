import { randomBytes } from 'node:crypto';

/** Timestamps are stored as ISO-8601 text (portable, sorts chronologically). */
export function nowIso(): string {
  return new Date().toISOString();
}

let lastMs = 0;
let counter = 0;

/**
 * A time-ordered id: 12 hex digits of milliseconds, 4 of a per-process counter, then 8 random hex
 * digits. Rows created by one process sort by id in creation order even within one millisecond.
 */
export function newId(): string {
  const ms = Date.now();
  if (ms === lastMs) counter = (counter + 1) & 0xffff;
  else {
    lastMs = ms;
    counter = 0;
  }
  return `${ms.toString(16).padStart(12, '0')}${counter.toString(16).padStart(4, '0')}-${randomBytes(4).toString('hex')}`;
}

/** Affected-row count of a Kysely UPDATE/DELETE result (bigint on every dialect). */
export function affected(result: { numUpdatedRows?: bigint; numDeletedRows?: bigint }): number {
  return Number(result.numUpdatedRows ?? result.numDeletedRows ?? 0n);
}
