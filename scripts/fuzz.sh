#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan+UBSan) in build-fuzz/ and runs each for
# a fixed budget, starting from the committed seed corpora (tests/fuzz/corpus/<target>/).
#   scripts/fuzz.sh                  # 10 s per target: what CI runs (scripts/test.sh)
#   scripts/fuzz.sh 600              # 10 min per target: a developer's run
#   scripts/fuzz.sh 60 fuzz_config   # only the named targets
#   scripts/fuzz.sh 0                # build the targets, run nothing (scripts/test.sh's early build)
# New inputs that found coverage go to build-fuzz/corpus/<target>/ (kept between runs, never
# committed); a crash, leak, timeout or invariant failure leaves its input in
# build-fuzz/artifacts/<target>/ and makes the script exit non-zero. Reproduce one with
#   build-fuzz/tests/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-10}"
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift || true
all=(fuzz_config fuzz_memory_parse fuzz_proc_parse fuzz_api_bodies fuzz_ollama_wire fuzz_ollama_stream fuzz_http_request)
targets=("${@:-${all[@]}}")

# Longest input per target: a few times the largest real sample, so mutations stay fast.
max_len() {
  case "$1" in
    fuzz_memory_parse) echo 16384 ;;
    fuzz_ollama_stream) echo 16384 ;;
    *) echo 8192 ;;
  esac
}
dict_for() {
  case "$1" in
    fuzz_config|fuzz_api_bodies|fuzz_ollama_wire) echo tests/fuzz/dict/json.dict ;;
    fuzz_http_request|fuzz_ollama_stream) echo tests/fuzz/dict/http.dict ;;
    *) echo "" ;;
  esac
}

cxx="${OASIS_FUZZ_CXX:-}"
if [[ -z "$cxx" ]]; then
  # Homebrew's llvm first: Apple's /usr/bin/clang++ ships no libFuzzer.
  for c in /opt/homebrew/opt/llvm/bin/clang++ /usr/local/opt/llvm/bin/clang++ clang++ clang++-14 clang++-15 clang++-16; do
    if command -v "$c" >/dev/null; then cxx="$c"; break; fi
  done
fi
[[ -n "$cxx" ]] || { echo "fuzz.sh: clang++ not found (scripts/deps.sh installs it)" >&2; exit 1; }

start=$(date +%s)
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [[ -f build-fuzz/CMakeCache.txt ]]; then
  cmake -S . -B build-fuzz >/dev/null
else
  # CMAKE_BUILD_TYPE=Fuzz: no per-configuration flags; tests/fuzz/CMakeLists.txt sets them all.
  cmake -S . -B build-fuzz "${gen[@]}" -DOASIS_FUZZ=ON -DCMAKE_BUILD_TYPE=Fuzz -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
fi
jobs="$(nproc 2>/dev/null || sysctl -n hw.ncpu)"
cmake --build build-fuzz --parallel "$jobs" --target "${targets[@]}"
built=$(date +%s)
if ((budget == 0)); then
  echo "fuzz.sh: built ${targets[*]} in $((built - start)) s"
  exit 0
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# One target: its log, and its exit status in a file beside it.
run_one() {
  local t="$1" bin="build-fuzz/tests/fuzz/$1" work="build-fuzz/corpus/$1" artifacts="build-fuzz/artifacts/$1/"
  local log="build-fuzz/logs/$1.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  local opts=(-max_total_time="$budget" -max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=4096
              -print_final_stats=1 -artifact_prefix="$artifacts")
  local d
  d="$(dict_for "$t")"
  [[ -n "$d" && -f "$d" ]] && opts+=(-dict="$d")
  set +e
  "$bin" "${opts[@]}" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
  echo $? >"build-fuzz/logs/$t.rc"
  set -e
}
# As many targets at once as there are cores: each is one process, so the wall time is the
# budget times targets/cores.
running=0
for t in "${targets[@]}"; do
  echo "fuzz.sh: $t for ${budget} s"
  run_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
failed=()
report=()
for t in "${targets[@]}"; do
  log="build-fuzz/logs/$t.log"
  rc=$(cat "build-fuzz/logs/$t.rc" 2>/dev/null || echo 1)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  line=$(printf '%-20s %10s execs %8s/s  cov %6s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}")
  if ((rc != 0)); then
    failed+=("$t")
    line+="  FAILED (exit $rc, log $log)"
    grep -E 'ERROR:|runtime error|invariant violated|SUMMARY|Test unit written' "$log" | head -8 >&2 || true
  fi
  report+=("$line")
done
end=$(date +%s)
echo
echo "fuzz.sh: ${budget} s per target; build $((built - start)) s, runs $((end - built)) s"
printf '  %s\n' "${report[@]}"
if ((${#failed[@]})); then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs in build-fuzz/artifacts/)" >&2
  exit 1
fi
