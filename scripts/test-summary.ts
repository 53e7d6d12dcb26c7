/** Prints the plain closing line of a test run from vitest's JSON report: "tests: N passed, N failed, N skipped". */
import { readFileSync } from 'node:fs';

interface VitestJsonReport {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests?: number;
  numTodoTests?: number;
}

const file = process.argv[2] ?? 'test-artifacts/vitest.json';
const report = JSON.parse(readFileSync(file, 'utf8')) as VitestJsonReport;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
process.exit(report.numFailedTests > 0 || report.numTotalTests === 0 ? 1 : 0);
