/**
 * Prints the plain closing line of a test run from vitest's JSON reports: "tests: N passed, N failed, N
 * skipped", summed over every report given (`npm test`'s and `npm run test:faults`'s in .ci/run).
 */
import { readFileSync } from 'node:fs';

interface VitestJsonReport {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests?: number;
  numTodoTests?: number;
}

const files = process.argv.length > 2 ? process.argv.slice(2) : ['test-artifacts/vitest.json'];
const reports = files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as VitestJsonReport);
const sum = (pick: (r: VitestJsonReport) => number) => reports.reduce((n, r) => n + pick(r), 0);
const passed = sum((r) => r.numPassedTests);
const failed = sum((r) => r.numFailedTests);
const skipped = sum((r) => (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0));
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
// Each run must have run something: an empty report is a failure too.
process.exit(failed > 0 || reports.some((r) => r.numTotalTests === 0) ? 1 : 0);
