#!/usr/bin/env bash
# Installs what building and testing oasisd needs (clang and its libFuzzer runtime included, for
# scripts/fuzz.sh), through the system package manager only:
# apt-get on Debian/Ubuntu, Homebrew on macOS. Does nothing for packages already present.
set -euo pipefail

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if [[ "$(uname -s)" == "Darwin" ]]; then
  command -v brew >/dev/null || { echo "deps: Homebrew is required on macOS (https://brew.sh)" >&2; exit 1; }
  # llvm: clang with libFuzzer for scripts/fuzz.sh (Apple's clang has no libFuzzer runtime).
  for f in cmake ninja boost nlohmann-json spdlog fmt sqlite catch2 ccache node llvm; do
    brew list --formula "$f" >/dev/null 2>&1 || brew install "$f"
  done
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "deps: no apt-get here; install Boost >= 1.81, nlohmann-json, spdlog, fmt, SQLite, Catch2, CMake, Ninja by hand" >&2
  exit 1
fi

for p in build-essential cmake ninja-build pkg-config libboost1.81-dev nlohmann-json3-dev libspdlog-dev \
         libfmt-dev libsqlite3-dev catch2 ccache clang libclang-rt-dev; do
  have_pkg "$p" || need_apt+=("$p")
done
# Tools that may come from elsewhere than Debian (e.g. a Node.js from NodeSource): only
# install Debian's when the command is missing, or apt would fight the existing install.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v tmux >/dev/null || need_apt+=(tmux)
command -v python3 >/dev/null || need_apt+=(python3)
command -v curl >/dev/null || need_apt+=(curl)
# A fresh Debian machine may lack only some of these; a machine that has them all skips apt entirely.
if ((${#need_apt[@]})); then
  echo "deps: installing ${need_apt[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
