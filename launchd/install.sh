#!/usr/bin/env bash
# Installs (or with --uninstall removes) the oasisd LaunchAgent for the current user. The work
# is `oasisctl install`'s, which renders com.oasis.oasisd.plist (embedded at build time), then
# runs launchctl bootout / bootstrap gui/$UID / kickstart -k, printing each step.
#   launchd/install.sh [BIN_DIR]      (default: the directory holding oasisctl on PATH)
#   launchd/install.sh --uninstall
set -euo pipefail
if [[ "${1:-}" == "--uninstall" ]]; then
  exec oasisctl uninstall --manager launchd
fi
bin="${1:-$(dirname "$(command -v oasisctl)")}"
[[ -x "$bin/oasisctl" ]] || { echo "install.sh: no oasisctl in $bin (build it: scripts/build.sh release)" >&2; exit 1; }
exec "$bin/oasisctl" install --manager launchd --bin-dir "$bin"
