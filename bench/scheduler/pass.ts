/**
 * B3, the pass itself: selectDestinations (1 instance, default filters and weighers, maxAttempts 3)
 * over in-memory hosts, against a baseline on the same host objects: one indexed loop summing
 * `failedBuilds`. Every size is warmed before any is measured, and every round samples every size,
 * baseline then subject, so that t(10k)/t(1k) compares figures taken over the same stretch of time.
 */
import type { HostState } from '../../src/scheduler';
import { selectDestinations } from '../../src/scheduler/select-destinations';
import { BENCH_CONFIG, BENCH_REQUEST, makeFleet, seededRng } from './fleet';
import { sampleBatched, warmUp } from './sampling';

export const SIZES = [100, 1_000, 10_000] as const;
export const SAMPLES = 400;
const WARMUP_MS = 300;

/** The baseline: one plain indexed loop over the same host objects, summing one numeric field. */
function sumFailedBuilds(hosts: readonly HostState[]): number {
  let sum = 0;
  for (let i = 0; i < hosts.length; i++) sum += hosts[i]!.failedBuilds;
  return sum;
}

export function onePass(hosts: readonly HostState[], rng: () => number): number {
  return selectDestinations(hosts, BENCH_REQUEST, BENCH_CONFIG, rng)[0]!.hosts.length;
}

export interface PassRow {
  hosts: number;
  baselineMedianNs: number;
  baselineP95Ns: number;
  subjectMedianNs: number;
  subjectP95Ns: number;
  ratio: number;
  nsPerHost: number;
}

export async function measurePass(
  sizes: readonly number[] = SIZES,
  fleet: (size: number) => HostState[] = makeFleet
): Promise<PassRow[]> {
  const rng = seededRng(7);
  const fns = sizes.flatMap((n) => {
    const hosts = fleet(n);
    return [
      { name: `baseline ${n}`, fn: () => sumFailedBuilds(hosts) },
      { name: `pass ${n}`, fn: () => onePass(hosts, rng) },
    ];
  });
  warmUp(
    fns.map((f) => f.fn),
    WARMUP_MS
  );
  const summaries = await sampleBatched(fns, SAMPLES);
  return sizes.map((hosts, i) => {
    const baseline = summaries[2 * i]!;
    const subject = summaries[2 * i + 1]!;
    return {
      hosts,
      baselineMedianNs: baseline.median,
      baselineP95Ns: baseline.p95,
      subjectMedianNs: subject.median,
      subjectP95Ns: subject.p95,
      ratio: subject.median / baseline.median,
      nsPerHost: subject.median / hosts,
    };
  });
}

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Right-aligned columns (the last one left-aligned when `leftLast`). */
export function printColumns(header: readonly string[], lines: readonly string[][], leftLast = false): void {
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c]!.length)));
  const last = header.length - 1;
  const row = (cells: readonly string[]) =>
    cells.map((cell, c) => (leftLast && c === last ? cell : cell.padStart(widths[c]!))).join('  ');
  console.log(row(header));
  for (const l of lines) console.log(row(l));
}

export function printPassTable(rows: readonly PassRow[]): void {
  printColumns(
    ['hosts', 'baseline p50 ns', 'baseline p95 ns', 'subject p50 ns', 'subject p95 ns', 'ratio', 'ns/host'],
    rows.map((r) => [
      fmt(r.hosts),
      fmt(r.baselineMedianNs),
      fmt(r.baselineP95Ns),
      fmt(r.subjectMedianNs),
      fmt(r.subjectP95Ns),
      `${fmt(r.ratio, 1)}x`,
      fmt(r.nsPerHost, 1),
    ])
  );
}
