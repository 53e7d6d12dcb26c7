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

/**
 * Affected-row count of a Kysely UPDATE/DELETE result, or of a driver's result for a compiled query
 * (a prepared statement's, src/store/prepared.ts); bigint on every dialect.
 */
export function affected(result: {
  numUpdatedRows?: bigint;
  numDeletedRows?: bigint;
  numAffectedRows?: bigint;
}): number {
  return Number(result.numUpdatedRows ?? result.numDeletedRows ?? result.numAffectedRows ?? 0n);
}

/** A value or a list of values, as a list. */
export function asList<T>(value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

/** Groups items by a string key, keeping their order within each group. */
export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list === undefined) out.set(k, [item]);
    else list.push(item);
  }
  return out;
}

/** Consecutive slices of at most `size` items (bounded IN lists and multi-row inserts). */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Code-unit order of two strings (as `<`), for sort comparators. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
