import { defineConfig } from 'vitest/config';

// `npm run test:faults`: the fault suite (test/faults), apart from `npm test`. Real worker processes on
// a dev server per scenario, killed, frozen and restarted; one file at a time on two cores. Its own
// JSON report, which scripts/test-summary.ts adds to the main run's.
export default defineConfig({
  test: {
    reporters: [
      'default',
      './test/faults/summary-reporter.ts',
      ['json', { outputFile: 'test-artifacts/vitest-faults.json' }],
    ],
    projects: [
      {
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          globalSetup: ['test/setup/global-setup.ts'],
          pool: 'forks',
          maxWorkers: 1,
          fileParallelism: false,
          testTimeout: 240_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
