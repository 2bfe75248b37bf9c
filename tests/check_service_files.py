#!/usr/bin/env python3
"""Checks the service files: the LaunchAgent plist parses as an XML plist once install.sh's
substitutions are applied, has the keys launchd needs with the values we rely on, and names the
same paths install.sh writes; the systemd unit restarts on failure only."""
import os
import plistlib
import re
import sys

root = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


text = open(os.path.join(root, "launchd", "com.oasis.oasisd.plist")).read()
install = open(os.path.join(root, "launchd", "install.sh")).read()
home, bin_dir = "/Users/someone", "/opt/homebrew/bin"
p = plistlib.loads(text.replace("@HOME@", home).replace("@BIN@", bin_dir).encode())
check(p["Label"] == "com.oasis.oasisd", "Label")
check("label=" + p["Label"] in install, "install.sh uses the plist's Label")
check(p["ProgramArguments"][0] == bin_dir + "/oasisd", "ProgramArguments[0] is the oasisd binary")
check(p["ProgramArguments"][1:] == ["--config", home + "/Library/Application Support/oasisd/oasisd.json"],
      "config path matches install.sh")
check('cfg="$HOME/Library/Application Support/oasisd/oasisd.json"' in install, "install.sh writes that config")
check(p["RunAtLoad"] is True, "RunAtLoad")
check(p["KeepAlive"] == {"SuccessfulExit": False}, "KeepAlive restarts on failure only")
check(p["ThrottleInterval"] >= 10, "ThrottleInterval")
check(p["ExitTimeOut"] > 15, "ExitTimeOut longer than shutdown_timeout_s")
check(p["ProcessType"] in ("Interactive", "Standard", "Adaptive", "Background"), "ProcessType")
for key in ("StandardOutPath", "StandardErrorPath", "WorkingDirectory"):
    check(os.path.isabs(p[key]) and "~" not in p[key], key + " absolute")
check(p["StandardOutPath"].startswith(home + "/Library/Logs/oasisd/"), "logs under ~/Library/Logs/oasisd")
check('"$HOME/Library/Logs/oasisd"' in install, "install.sh creates the log directory")
check("PATH" in p["EnvironmentVariables"], "EnvironmentVariables.PATH")
check("launchctl bootstrap" in install and "launchctl bootout" in install and "kickstart -k" in install,
      "install.sh uses bootstrap/bootout/kickstart")

unit = open(os.path.join(root, "etc", "oasisd.service")).read()
check(re.search(r"^Restart=on-failure$", unit, re.M) is not None, "systemd Restart=on-failure")
check(re.search(r"^ExecStart=\S+/oasisd --config ", unit, re.M) is not None, "systemd ExecStart")

if failures:
    print("service files: FAILED: " + "; ".join(failures))
    sys.exit(1)
print("service files: ok")
