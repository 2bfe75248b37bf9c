#!/usr/bin/env bash
# Configures and builds one flavour of the tree.
#   scripts/build.sh            -> build/        (RelWithDebInfo)
#   scripts/build.sh asan       -> build-asan/   (AddressSanitizer + UBSan, what CI tests)
#   scripts/build.sh demo       -> build-demo/   (-O0, no debug info: quickest to compile)
#   scripts/build.sh release oasisd oasisctl     (only those targets)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
case "$flavour" in
  # -O2 with GCC 12 raises false-positive -Warray-bounds/-Wmismatched-new-delete inside
  # libstdc++ and Asio; warnings stay errors in the sanitizer build that CI tests.
  release) dir=build; extra=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DOASIS_SANITIZE=OFF -DOASIS_WERROR=OFF) ;;
  asan)    dir=build-asan; extra=(-DCMAKE_BUILD_TYPE=Debug -DOASIS_SANITIZE=ON -DOASIS_WERROR=ON) ;;
  # The demo's: unoptimised and without debug info, because it compiles in under half the CPU
  # time of a release build and the demo does not need speed.
  demo)    dir=build-demo; extra=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O0" -DOASIS_SANITIZE=OFF -DOASIS_WERROR=OFF) ;;
  *) echo "usage: scripts/build.sh [release|asan|demo] [TARGET...]" >&2; exit 2 ;;
esac
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [[ -f "$dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$dir" "${extra[@]}" >/dev/null   # re-configure in place (keeps the cached generator)
else
  cmake -S . -B "$dir" "${gen[@]}" "${extra[@]}"
fi
cmake --build "$dir" --parallel "$(nproc 2>/dev/null || sysctl -n hw.ncpu)" ${targets[@]+"${targets[@]}"}
