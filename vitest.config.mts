import { defineConfig } from 'vitest/config';

import LongestFirstSequencer from './test/setup/sequencer.mjs';

// Four projects: `unit` runs pure and store tests with no Temporal server; `temporal` runs workflow
// tests (time-skipping server) and end-to-end tests (dev server, worker processes); `guests` runs the QEMU
// driver against real guests; `notifications` runs the RabbitMQ transport against a real broker. Temporal workers
// run in forked processes (the threads pool hits wasm OOMs with the SDK's core bridge).
export default defineConfig({
  test: {
    // The JSON report feeds the plain closing line .ci/run prints (scripts/test-summary.ts); VITEST_JSON names
    // another file for a run of some projects beside another run (`make test` runs the guests apart).
    reporters: ['default', ['json', { outputFile: process.env.VITEST_JSON ?? 'test-artifacts/vitest.json' }]],
    // Longest files first (test/setup/file-durations.json on a fresh clone), so no slow file runs alone at the end.
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          sequence: { groupOrder: 0 },
          pool: 'forks',
          // Two files at once: vitest's default is one fewer than the cores, one file at a time on two, and
          // many unit files wait on subprocesses (the CLIs, the build), PostgreSQL or the disk.
          maxWorkers: 2,
          // A type-aware lint of the whole program (test/unit/lint) takes 40 s beside another file on a loaded machine.
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'temporal',
          include: ['test/workflows/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          sequence: { groupOrder: 1 },
          globalSetup: ['test/setup/global-setup.ts'],
          pool: 'forks',
          // One Temporal server per test file; two cores, so at most two files at once.
          maxWorkers: 2,
          fileParallelism: true,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      // Real QEMU guests (src/compute/qemu): one file at a time, at most 2 guests booting and about 6 alive.
      // The global setup builds the guest images once (scripts/build-guest-images.sh) when they are missing.
      {
        test: {
          name: 'guests',
          include: ['test/guests/**/*.test.ts'],
          sequence: { groupOrder: 2 },
          // The Temporal binaries and the workflow bundle (the whole-stack test), then the guest images.
          globalSetup: ['test/setup/global-setup.ts', 'test/setup/guest-images.ts'],
          pool: 'forks',
          maxWorkers: 1,
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      // The RabbitMQ notification transport against a real broker and the oslo.messaging listener
      // (scripts/install-rabbitmq.sh, scripts/install-oslo-listener.sh): one file at a time.
      {
        test: {
          name: 'notifications',
          include: ['test/notifications/**/*.test.ts'],
          sequence: { groupOrder: 3 },
          pool: 'forks',
          maxWorkers: 1,
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      // Only for `npm run replay:record`: records test/replay/ histories from the current code.
      ...(process.env.REPLAY_RECORD === '1'
        ? [
            {
              test: {
                name: 'replay-record',
                include: ['test/replay/record.ts'],
                globalSetup: ['test/setup/global-setup.ts'],
                pool: 'forks' as const,
                testTimeout: 300_000,
                hookTimeout: 180_000,
              },
            },
          ]
        : []),
    ],
  },
});
