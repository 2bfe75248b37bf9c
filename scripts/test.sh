#!/usr/bin/env bash
# The README's test command: installs missing packages, builds with AddressSanitizer+UBSan,
# runs the whole suite (unit, integration with real processes, the npm client check), then
# every fuzz target for a short fixed budget (scripts/fuzz.sh, clang, build-fuzz/), built in the
# background while the suite runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
start=$(date +%s)
scripts/build.sh asan
built=$(date +%s)
# Fuzzing: OASIS_FUZZ_SECONDS per target (10 by default; 0 skips it). Its build (clang,
# build-fuzz/) starts now, at the lowest priority, and takes the CPU the test run leaves idle
# (about a third: integration tests mostly wait on their processes); the tests keep theirs.
fuzz_seconds="${OASIS_FUZZ_SECONDS:-10}"
fuzz_build_log=build-asan/fuzz-build.log
fuzz_build=""
if ((fuzz_seconds > 0)); then
  nice -n 19 scripts/fuzz.sh 0 >"$fuzz_build_log" 2>&1 &
  fuzz_build=$!
fi
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
tests_rc=0
(cd build-asan && ctest --output-on-failure --parallel 2 --timeout 600 "$@") || tests_rc=$?
end=$(date +%s)
if [[ -n "$fuzz_build" ]]; then
  if ! wait "$fuzz_build"; then
    echo "test.sh: the fuzz build failed; its log ($fuzz_build_log) ends:" >&2
    tail -40 "$fuzz_build_log" >&2
    exit 1
  fi
fi
((tests_rc == 0)) || exit "$tests_rc"
if ((fuzz_seconds > 0)); then
  scripts/fuzz.sh "$fuzz_seconds"
fi
fuzzed=$(date +%s)
echo "test.sh: build $((built - start)) s, tests $((end - built)) s, fuzz $((fuzzed - end)) s"
