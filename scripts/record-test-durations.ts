/**
 * `npm run test:durations [report.json]`: rewrites test/setup/file-durations.json (the seconds each test
 * file took, which test/setup/sequencer.ts orders files by) from a vitest JSON report (default
 * test-artifacts/vitest.json, which `npm test` writes; test-artifacts/vitest-faults.json, the fault
 * suite's, orders it too). Files the report lacks keep their figure.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface Report {
  testResults: Array<{ name: string; startTime: number; endTime: number; assertionResults: Array<unknown> }>;
}

const root = path.resolve(__dirname, '..');
const DURATIONS_FILE = path.join(root, 'test', 'setup', 'file-durations.json');

async function main(): Promise<void> {
  // An ES module, as vitest.faults.config.mts imports it.
  const { TIMING_SENSITIVE_FAULTS } = await import('../test/faults/timing-sensitive.mjs');
  const report = JSON.parse(
    readFileSync(process.argv[2] ?? path.join(root, 'test-artifacts', 'vitest.json'), 'utf8')
  ) as Report;
  const table = JSON.parse(readFileSync(DURATIONS_FILE, 'utf8')) as Record<string, number>;
  // The report names files, not projects: the project is the one whose include the file's folder matches
  // (vitest.config.mts, and vitest.faults.config.mts for test-artifacts/vitest-faults.json).
  const project = (file: string) =>
    TIMING_SENSITIVE_FAULTS.includes(file)
      ? 'faults-timed'
      : file.startsWith('test/faults/')
        ? 'faults'
        : file.startsWith('test/unit/')
          ? 'unit'
          : file.startsWith('test/guests/')
            ? 'guests'
            : file.startsWith('test/notifications/')
              ? 'notifications'
              : 'temporal';
  for (const r of report.testResults) {
    // Relative to the repository the report was written in (e.g. a CI clone's): from its test folder on.
    const file = /\/(test\/[^/]+\/.*)$/.exec(r.name)?.[1] ?? path.relative(root, r.name);
    table[`${project(file)}:${file}`] = Math.round((r.endTime - r.startTime) / 100) / 10;
  }
  const sorted = Object.fromEntries(Object.entries(table).sort(([a], [b]) => a.localeCompare(b)));
  writeFileSync(DURATIONS_FILE, `${JSON.stringify(sorted, null, 2)}\n`);
  console.log(`${Object.keys(sorted).length} files in ${path.relative(root, DURATIONS_FILE)}`);
}

void main();
