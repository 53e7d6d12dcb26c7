/**
 * `npm run test:faults` ends with one line per scenario: the `[scenario]` lines the scenarios log
 * (operation | fault | outcome | seconds to stable, see reportScenario in harness.ts), and for a test that
 * logged none, its file and name, its state and its seconds.
 */
import type { UserConsoleLog } from 'vitest' with { 'resolution-mode': 'import' };
import type { Reporter, TestCase } from 'vitest/node' with { 'resolution-mode': 'import' };

const MARK = '[scenario] ';

export default class ScenarioSummaryReporter implements Reporter {
  private readonly lines: string[] = [];
  private readonly logged = new Set<string>();

  onUserConsoleLog(log: UserConsoleLog): void {
    for (const line of log.content.split('\n'))
      if (line.startsWith(MARK)) {
        this.lines.push(line.slice(MARK.length));
        if (log.taskId) this.logged.add(log.taskId);
      }
  }

  onTestCaseResult(test: TestCase): void {
    if (this.logged.has(test.id)) return;
    const file = test.module.moduleId.replace(/^.*\/test\/faults\//, '');
    const seconds = ((test.diagnostic()?.duration ?? 0) / 1000).toFixed(1);
    this.lines.push(`${file} | ${test.name} | ${test.result().state} | ${seconds} s`);
  }

  onTestRunEnd(): void {
    if (this.lines.length === 0) return;
    console.log(`\nScenarios (operation | fault | outcome | seconds to stable): ${this.lines.length}`);
    for (const line of this.lines) console.log(`  ${line}`);
  }
}
