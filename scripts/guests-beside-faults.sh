#!/usr/bin/env bash
# `make test`'s middle phase: the real-guest project (test/guests: QEMU guests, one file at a time) beside
# the fault suite's `faults` project (two files at once). Each waits far more than it computes (the
# guests' project used about a fifth of a core over its 9 minutes, the fault suite a load near 1.5), so
# side by side they take about as long as the longer one. The fault suite's `faults-timed` files, whose
# checks are bounds in seconds, run after this, alone. The guests' output is printed whole once both are
# done; each run's failed tests are listed at the end (scripts/test-failures.ts); either failing fails.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
VITEST_JSON=test-artifacts/vitest-guests.json npx vitest run --project guests >test-artifacts/guests-suite.log 2>&1 &
guests=$!
VITEST_JSON=test-artifacts/vitest-faults.json npx vitest run --config vitest.faults.config.mts --project faults
faults_rc=$?
guests_rc=0
wait "$guests" || guests_rc=$?
echo "===== the real-guest project (test-artifacts/guests-suite.log)"
cat test-artifacts/guests-suite.log
[ "$faults_rc" -eq 0 ] || npx tsx scripts/test-failures.ts test-artifacts/vitest-faults.json
[ "$guests_rc" -eq 0 ] || npx tsx scripts/test-failures.ts test-artifacts/vitest-guests.json
[ "$faults_rc" -eq 0 ] && [ "$guests_rc" -eq 0 ]
