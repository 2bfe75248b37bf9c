#!/usr/bin/env bash
# The README's test command: installs missing packages, builds with AddressSanitizer+UBSan,
# runs the whole suite (unit, integration with real processes, the npm client check), then
# every fuzz target for a short fixed budget (scripts/fuzz.sh, clang, build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
start=$(date +%s)
scripts/build.sh asan
built=$(date +%s)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd build-asan && ctest --output-on-failure --parallel 2 --timeout 600 "$@")
end=$(date +%s)
# Fuzzing: OASIS_FUZZ_SECONDS per target (10 by default; 0 skips it).
fuzz_seconds="${OASIS_FUZZ_SECONDS:-10}"
if ((fuzz_seconds > 0)); then
  scripts/fuzz.sh "$fuzz_seconds"
fi
fuzzed=$(date +%s)
echo "test.sh: build $((built - start)) s, tests $((end - built)) s, fuzz $((fuzzed - end)) s"
