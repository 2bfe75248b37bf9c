#!/usr/bin/env bash
# The README's first command. With a real Ollama on PATH, pass --real to supervise it instead
# (oasisd in managed mode with `ollama serve`); by default replays the incident against the
# bundled emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# Only what the demo runs (the daemon, the CLI and the emulator, not the test suite), built
# unoptimised: that compiles in under half the time, and the demo does not need speed.
scripts/build.sh demo oasisd oasisctl fake-ollama
if [[ "${1:-}" == "--real" ]]; then
  command -v ollama >/dev/null || { echo "demo: no ollama on PATH" >&2; exit 1; }
  exec build-demo/daemon/oasisd --config etc/oasisd.example.json
fi
exec python3 scripts/demo.py build-demo
