/**
 * Sampling with tinybench, interleaved: each round runs every task for a few iterations in turn (for a
 * baseline and a subject, A A A B B B A A A ...), and the rounds' samples are pooled, so that a busy
 * spell on the machine hits every figure alike. Fast functions are timed in batches of ~20 µs (one
 * untimed call first, so that a batch starts with its own data in the caches; then back-to-back calls
 * timed with process.hrtime.bigint), reported to tinybench as the batch mean: the timer's own cost
 * (tens of ns) would swamp a 100-host baseline loop otherwise.
 */
import type { Fn, FnOptions } from 'tinybench' with { 'resolution-mode': 'import' };

const SAMPLE_TARGET_NS = 20_000;
/** Iterations of each task per round. */
const PER_ROUND = 4;

/** Results feed this, so that no measured call can be optimised away. */
let sink = 0;
export const consume = (n: number): void => {
  sink += n;
};
/** Reading it keeps every measured result live. */
export const checksum = (): number => sink;

export interface Summary {
  /** Nanoseconds per call. */
  median: number;
  p95: number;
  samples: number;
}

export function summarize(perCallNs: readonly number[]): Summary {
  const sorted = [...perCallNs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { median: at(0.5), p95: at(0.95), samples: sorted.length };
}

export interface BenchTask {
  name: string;
  fn: Fn;
  options?: FnOptions;
}

/** Runs the tasks in interleaved rounds until each has `samples` samples; nanoseconds per sample, per task. */
export async function interleave(tasks: readonly BenchTask[], samples: number): Promise<number[][]> {
  // tinybench is an ES module: loaded with import(), from this CommonJS code.
  const { Bench, hrtimeNowTimestampProvider } = await import('tinybench');
  const bench = new Bench({
    iterations: PER_ROUND,
    time: 0,
    warmup: false,
    retainSamples: true,
    timestampProvider: hrtimeNowTimestampProvider,
  });
  for (const t of tasks) bench.add(t.name, t.fn, t.options);
  const pooled = tasks.map(() => [] as number[]);
  while ((pooled[0]?.length ?? samples) < samples) {
    bench.reset(); // a completed task does not run again until reset
    await bench.run();
    bench.tasks.forEach((task, i) => {
      const result = task.result;
      if (result.state !== 'completed') throw new Error(`${task.name}: ${result.state}`);
      pooled[i]!.push(...(result.latency.samples ?? []).map((ms) => ms * 1e6));
    });
  }
  return pooled.map((s) => s.slice(0, samples));
}

/** Nanoseconds for `reps` back-to-back calls of `fn`. */
function timeBatch(fn: () => number, reps: number): number {
  let acc = 0;
  const start = process.hrtime.bigint();
  for (let r = 0; r < reps; r++) acc += fn();
  const elapsed = Number(process.hrtime.bigint() - start);
  sink += acc;
  return elapsed;
}

/** How many calls make a batch of about SAMPLE_TARGET_NS. */
function batchSize(fn: () => number): number {
  let reps = 1;
  for (;;) {
    const ns = timeBatch(fn, reps);
    if (ns >= SAMPLE_TARGET_NS || reps >= 1 << 16)
      return Math.max(1, Math.round((reps * SAMPLE_TARGET_NS) / Math.max(ns, 1)));
    reps *= 2;
  }
}

/** A tinybench task that times `fn` in batches and reports the mean per call. */
export function batched(name: string, fn: () => number): BenchTask {
  const reps = batchSize(fn);
  return {
    name,
    fn: () => {
      sink += fn();
      const ns = timeBatch(fn, reps);
      return { overriddenDuration: ns / reps / 1e6, overriddenIterationCost: ns / 1e6 };
    },
  };
}

export function warmUp(fns: readonly (() => number)[], ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) for (const fn of fns) sink += fn();
}

/** Interleaved, batched samples of fast synchronous functions (a baseline and its subjects). */
export async function sampleBatched(
  fns: readonly { name: string; fn: () => number }[],
  samples: number
): Promise<Summary[]> {
  const perCall = await interleave(
    fns.map((f) => batched(f.name, f.fn)),
    samples
  );
  return perCall.map(summarize);
}
