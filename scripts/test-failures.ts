/**
 * Prints, last in a failed run's log, each failed test of vitest JSON reports in a few plain lines: its
 * file and name, then the first lines of its failure (colour codes removed). A CI log is often read from
 * its end only; vitest's own failure blocks sit above its summary, one long block per failure.
 * `make test` runs it when a phase fails: `tsx scripts/test-failures.ts REPORT...`.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface Assertion {
  fullName: string;
  status: string;
  failureMessages?: string[];
}
interface FileResult {
  name: string;
  status: string;
  message?: string;
  assertionResults: Assertion[];
}

/** Lines of a failure message worth reading at a glance. */
const LINES = 8;
// eslint-disable-next-line no-control-regex
const plain = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, '');

for (const report of process.argv.slice(2)) {
  if (!existsSync(report)) continue;
  const { testResults } = JSON.parse(readFileSync(report, 'utf8')) as { testResults: FileResult[] };
  for (const file of testResults) {
    const where = path.relative(process.cwd(), file.name);
    const failed = file.assertionResults.filter((a) => a.status === 'failed');
    // A file that failed with no failed test failed in a hook or while loading.
    if (file.status === 'failed' && failed.length === 0)
      console.log(
        `FAILED ${where}: ${plain(file.message ?? '')
          .split('\n')
          .slice(0, LINES)
          .join('\n  ')}`
      );
    for (const test of failed) {
      const message = plain(test.failureMessages?.[0] ?? '')
        .split('\n')
        .filter((line) => line.trim() !== '')
        // The stack's first frame (the test's line) says where; the rest says little.
        .filter((line, i, all) => !/^\s+at /.test(line) || !/^\s+at /.test(all[i - 1] ?? ''))
        .slice(0, LINES);
      console.log(`FAILED ${where} > ${test.fullName}\n  ${message.join('\n  ')}`);
    }
  }
}
