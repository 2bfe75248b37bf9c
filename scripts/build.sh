#!/usr/bin/env bash
# Configures and builds one flavour of the tree.
#   scripts/build.sh            -> build/        (RelWithDebInfo)
#   scripts/build.sh asan       -> build-asan/   (AddressSanitizer + UBSan, what CI tests)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) dir=build; extra=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DOASIS_SANITIZE=OFF) ;;
  asan)    dir=build-asan; extra=(-DCMAKE_BUILD_TYPE=Debug -DOASIS_SANITIZE=ON) ;;
  *) echo "usage: scripts/build.sh [release|asan]" >&2; exit 2 ;;
esac
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [[ -f "$dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$dir" >/dev/null            # re-configure in place (keeps the cached generator)
else
  cmake -S . -B "$dir" "${gen[@]}" "${extra[@]}"
fi
cmake --build "$dir" --parallel "$(nproc 2>/dev/null || sysctl -n hw.ncpu)"
