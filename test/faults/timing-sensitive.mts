/**
 * The fault files whose checks are bounds in seconds measured on real processes, which a second stack
 * beside them could break: `host-liveness` (a frozen worker reads down within the window plus one long
 * poll: 28.8 s of a 32 s bound in a quiet CI run) and `freeze-compute` (builds rescheduled off a frozen
 * host within 15 s: 9.6 s quiet, 17-20 s at load 7-10). vitest.faults.config.mts runs them one at a
 * time after the others, which run two files at once.
 */
export const TIMING_SENSITIVE_FAULTS = ['test/faults/host-liveness.test.ts', 'test/faults/freeze-compute.test.ts'];
