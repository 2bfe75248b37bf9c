#!/usr/bin/env bash
# Installs the oasisd LaunchAgent for the current user and starts it (macOS).
#   launchd/install.sh [BIN_DIR]      (default: the directory holding oasisd on PATH)
#   launchd/install.sh --uninstall
set -euo pipefail
label=com.oasis.oasisd
plist="$HOME/Library/LaunchAgents/$label.plist"
domain="gui/$(id -u)"
if [[ "${1:-}" == "--uninstall" ]]; then
  launchctl bootout "$domain/$label" 2>/dev/null || true
  rm -f "$plist"
  echo "uninstalled $label (removed $plist)"
  exit 0
fi
bin="${1:-$(dirname "$(command -v oasisd)")}"
[[ -x "$bin/oasisd" ]] || { echo "install: no oasisd in $bin" >&2; exit 1; }
mkdir -p "$HOME/Library/LaunchAgents" "$HOME/Library/Logs/oasisd" "$HOME/Library/Application Support/oasisd"
chmod 700 "$HOME/Library/Application Support/oasisd"
cfg="$HOME/Library/Application Support/oasisd/oasisd.json"
[[ -f "$cfg" ]] || echo '{ "max_concurrency": "auto" }' > "$cfg"
sed -e "s|@HOME@|$HOME|g" -e "s|@BIN@|$bin|g" "$(dirname "$0")/$label.plist" > "$plist"
plutil -lint "$plist" >/dev/null
launchctl bootout "$domain/$label" 2>/dev/null || true
launchctl bootstrap "$domain" "$plist"
launchctl kickstart -k "$domain/$label"
echo "installed $plist and started $label in $domain"
