import { defineConfig } from 'vitest/config';

// `npm run test:cluster`: the end-to-end test on `make cluster` (test/cluster): PostgreSQL, the four
// Temporal services built from source (scripts/install-temporal-server.sh), mTLS, replicated workers.
// Apart from `npm test` like the fault suite; its own JSON report, which scripts/test-summary.ts adds.
export default defineConfig({
  test: {
    reporters: ['default', ['json', { outputFile: 'test-artifacts/vitest-cluster.json' }]],
    projects: [
      {
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['test/setup/global-setup.ts'],
          pool: 'forks',
          maxWorkers: 1,
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
