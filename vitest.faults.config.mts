import { defineConfig } from 'vitest/config';

import { TIMING_SENSITIVE_FAULTS } from './test/faults/timing-sensitive.mjs';
import LongestFirstSequencer from './test/setup/sequencer.mjs';

// `npm run test:faults`: the fault suite (test/faults), apart from `npm test`. Real worker processes on
// a dev server per file, killed, frozen and restarted. It waits (heartbeat timeouts, restarts, the
// reconciler's period) far more than it computes: one file at a time kept the load average near 1 on two
// cores. So two projects, one after the other (groupOrder): `faults`, every file but two, two files at
// once, longest first (test/setup/sequencer.mts); then `faults-timed`, the files whose checks are bounds
// in seconds (test/faults/timing-sensitive.mts), one at a time with nothing beside them. Each file has its
// own dev server on free loopback ports and its own data folder (mkdtemp). Its own JSON report, which
// scripts/test-summary.ts adds to the main run's.
const common = {
  globalSetup: ['test/setup/global-setup.ts'],
  pool: 'forks' as const,
  testTimeout: 240_000,
  hookTimeout: 180_000,
};

export default defineConfig({
  test: {
    reporters: [
      'default',
      './test/faults/summary-reporter.ts',
      // VITEST_JSON: another file, for one project run apart (`make test` runs the two one after the other).
      ['json', { outputFile: process.env.VITEST_JSON ?? 'test-artifacts/vitest-faults.json' }],
    ],
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      {
        test: {
          ...common,
          name: 'faults-timed',
          include: TIMING_SENSITIVE_FAULTS,
          sequence: { groupOrder: 1 },
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
      {
        test: {
          ...common,
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          exclude: TIMING_SENSITIVE_FAULTS,
          sequence: { groupOrder: 0 },
          maxWorkers: 2,
          fileParallelism: true,
        },
      },
    ],
  },
});
