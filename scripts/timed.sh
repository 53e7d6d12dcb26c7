#!/usr/bin/env bash
# timed.sh NAME CMD...: runs CMD and prints `timed: NAME took N s (exit E)` after it; exits with CMD's
# status. `make test` times its phases with it, so a CI log says where its minutes went.
set -uo pipefail
name=$1
shift
start=$(date +%s)
"$@"
rc=$?
echo "timed: $name took $(($(date +%s) - start)) s (exit $rc)"
exit $rc
