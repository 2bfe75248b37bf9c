#!/usr/bin/env bash
# The benchmark suite in one command: release build, then idle cost, overhead (direct vs through
# oasisd), batch submit and status under load, scale (10k/100k/1M trials) and the incident replay
# (naive vs oasisd). Prints every figure with its target and PASS/FAIL and writes
# build/bench-results.json. Under 10 minutes on a 2-core machine once the build is done.
#   scripts/bench.sh            # everything
#   scripts/bench.sh --quick    # one overhead round, no 1M point, 20 s idle: a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh   # does nothing when every package is present
bash scripts/build.sh release
python3 tests/bench/run_all.py build "$@"
