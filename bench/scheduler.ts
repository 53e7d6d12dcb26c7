/**
 * B3, scheduler pass scaling (shared/reference/perf-reliability.md §6): the wall time of one
 * filter-weigh-select pass (selectDestinations, 1 instance, default filters and weighers,
 * maxAttempts 3) over 100, 1,000 and 10,000 in-memory hosts, against a baseline measured in the same
 * run on the same host objects: one indexed loop summing `failedBuilds`; then the whole
 * selectDestinations activity with its SQLite claim at 1,000 and 10,000 hosts.
 *
 * Measured with tinybench, in interleaved rounds (bench/scheduler/sampling.ts): every round samples
 * every size, baseline then subject, so that a busy spell on the machine hits every figure alike,
 * including the t(10k)/t(1k) ratio; fast calls are timed in batches of ~20 µs.
 * Targets: subject/baseline (medians) <= 30 at every size, t(10,000)/t(1,000) <= 12, and the activity's
 * p50 <= 10 ms at 10,000 hosts. The script reports misses and still exits 0; it exits 1 only if it crashes.
 *
 *   npm run bench:scheduler            (tsx bench/scheduler.ts)
 *   tsx bench/scheduler.ts 1000        a quick look at some sizes (the targets need all three)
 *
 * bench/scheduler/: fleet.ts (fixtures), sampling.ts (tinybench, interleaving, batches), pass.ts (B3),
 * activity.ts (the activity with its claim).
 */
import { type ActivityRow, measureSelectActivity } from './scheduler/activity';
import { fmt, measurePass, printPassTable, SAMPLES, SIZES } from './scheduler/pass';
import { checksum } from './scheduler/sampling';

const MAX_RATIO = 30;
const MAX_SCALING = 12;

/** Further measurements of the activity side; each prints its own table. */
export const ACTIVITY_MEASUREMENTS: { name: string; run(): Promise<ActivityRow[]> }[] = [
  { name: 'selectDestinations activity + SQLite claim', run: () => measureSelectActivity() },
];

async function main(): Promise<void> {
  console.log(
    `B3 scheduler pass: 1 instance, default filters and weighers, maxAttempts 3; ${SAMPLES} interleaved samples per figure (tinybench)`
  );
  console.log(`node ${process.version}, baseline = indexed loop summing hosts[i].failedBuilds over the same hosts`);
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  const rows = await measurePass(sizes.length > 0 ? sizes : SIZES);
  printPassTable(rows);
  if (!Number.isFinite(checksum())) console.warn('warning: result checksum is not finite');

  const ratioOk = rows.every((r) => r.ratio <= MAX_RATIO);
  const t1k = rows.find((r) => r.hosts === 1_000)?.subjectMedianNs ?? NaN;
  const t10k = rows.find((r) => r.hosts === 10_000)?.subjectMedianNs ?? NaN;
  const scaling = t10k / t1k;
  const scalingOk = scaling <= MAX_SCALING;
  const scalingText = Number.isFinite(scaling) ? fmt(scaling, 2) : 'n/a (needs 1,000 and 10,000 hosts)';
  console.log(
    `targets: ratio <= ${MAX_RATIO}x at every size: ${ratioOk ? 'met' : 'MISSED'}; ` +
      `t(10k)/t(1k) = ${scalingText} <= ${MAX_SCALING}: ${scalingOk ? 'met' : 'MISSED'}`
  );

  const activity: ActivityRow[] = [];
  for (const m of ACTIVITY_MEASUREMENTS) activity.push(...(await m.run()));
  for (const a of activity)
    console.log(`${a.name} @ ${fmt(a.hosts)} hosts: p50 ${fmt(a.medianNs)} ns, p95 ${fmt(a.p95Ns)} ns`);

  const round = (n: number) => Math.round(n * 100) / 100;
  console.log(
    JSON.stringify({
      benchmark: 'B3-scheduler-pass',
      samples: SAMPLES,
      rows: rows.map((r) => ({
        hosts: r.hosts,
        baselineMedianNs: round(r.baselineMedianNs),
        baselineP95Ns: round(r.baselineP95Ns),
        subjectMedianNs: round(r.subjectMedianNs),
        subjectP95Ns: round(r.subjectP95Ns),
        ratio: round(r.ratio),
      })),
      scaling10kOver1k: Number.isFinite(scaling) ? round(scaling) : null,
      targets: { maxRatio: MAX_RATIO, maxScaling: MAX_SCALING, ratioOk, scalingOk, allOk: ratioOk && scalingOk },
      activity,
    })
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
