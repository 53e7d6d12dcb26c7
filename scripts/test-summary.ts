/**
 * Prints the plain closing line of a test run: "tests: N passed, N failed, N skipped", summed over every
 * report given. A report is vitest's JSON report (`npm test`'s, `npm run test:faults`'s and
 * `npm run test:cluster`'s in .ci/run) or Tempest's totals ({ passed, failed, skipped }, written by
 * scripts/run-tempest.sh). .ci/run prints it last.
 */
import { readFileSync } from 'node:fs';

interface VitestJsonReport {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests?: number;
  numTodoTests?: number;
}

interface Totals {
  passed: number;
  failed: number;
  skipped: number;
}

function totalsOf(file: string): Totals {
  const report = JSON.parse(readFileSync(file, 'utf8')) as VitestJsonReport | Totals;
  if ('numTotalTests' in report)
    return {
      passed: report.numPassedTests,
      failed: report.numFailedTests,
      skipped: (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0),
    };
  return report;
}

const files = process.argv.length > 2 ? process.argv.slice(2) : ['test-artifacts/vitest.json'];
const reports = files.map(totalsOf);
const sum = (pick: (r: Totals) => number) => reports.reduce((n, r) => n + pick(r), 0);
const passed = sum((r) => r.passed);
const failed = sum((r) => r.failed);
const skipped = sum((r) => r.skipped);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
// Each run must have run something: an empty report is a failure too.
process.exit(failed > 0 || reports.some((r) => r.passed + r.failed === 0) ? 1 : 0);
