#!/usr/bin/env python3
"""Checks the service file templates: the LaunchAgent plist parses as an XML plist once its
@HOME@/@BIN@ placeholders are filled in, and has the keys launchd needs with the values we rely
on; the systemd unit restarts on failure only and waits for oasisd's READY=1. What `oasisctl install` renders from them (and
the paths it creates) is checked by the oasisctl integration tests."""
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
ctl = open(os.path.join(root, "daemon", "cli", "service_install.cpp")).read()
home, bin_dir = "/Users/someone", "/opt/homebrew/bin"
p = plistlib.loads(text.replace("@HOME@", home).replace("@BIN@", bin_dir).encode())
check(p["Label"] == "com.oasis.oasisd", "Label")
check('kLaunchdLabel = "' + p["Label"] + '"' in open(os.path.join(root, "daemon", "cli", "service_install.h")).read(),
      "oasisctl install uses the plist's Label")
check("oasisctl\" install --manager launchd" in install, "install.sh delegates to oasisctl install")
check(p["ProgramArguments"][0] == bin_dir + "/oasisd", "ProgramArguments[0] is the oasisd binary")
check(p["ProgramArguments"][1:] == ["--config", home + "/Library/Application Support/oasisd/oasisd.json"],
      "config path is the macOS default (daemon/paths.cpp)")
check('"/Library/Application Support/oasisd/oasisd.json"' in ctl, "oasisctl install knows the template's config path")
check(p["RunAtLoad"] is True, "RunAtLoad")
check(p["KeepAlive"] == {"SuccessfulExit": False}, "KeepAlive restarts on failure only")
check(p["ThrottleInterval"] >= 10, "ThrottleInterval")
check(p["ExitTimeOut"] > 15, "ExitTimeOut longer than shutdown_timeout_s")
check(p["ProcessType"] in ("Interactive", "Standard", "Adaptive", "Background"), "ProcessType")
for key in ("StandardOutPath", "StandardErrorPath", "WorkingDirectory"):
    check(os.path.isabs(p[key]) and "~" not in p[key], key + " absolute")
check(p["StandardOutPath"].startswith(home + "/Library/Logs/oasisd/"), "logs under ~/Library/Logs/oasisd")
check('"/Library/Logs/oasisd"' in ctl, "oasisctl install creates the log directory")
check("PATH" in p["EnvironmentVariables"], "EnvironmentVariables.PATH")
check('"bootstrap"' in ctl and '"bootout"' in ctl and '"kickstart", "-k"' in ctl,
      "oasisctl install uses bootstrap/bootout/kickstart")

unit = open(os.path.join(root, "etc", "oasisd.service")).read()
check(re.search(r"^Restart=on-failure$", unit, re.M) is not None, "systemd Restart=on-failure")
check(re.search(r"^ExecStart=\S+/oasisd --config ", unit, re.M) is not None, "systemd ExecStart")
main = open(os.path.join(root, "daemon", "oasisd_main.cpp")).read()
check(re.search(r"^Type=notify$", unit, re.M) is not None and re.search(r"^NotifyAccess=main$", unit, re.M) is not None
      and 'notify("READY=1' in main, "systemd Type=notify, and oasisd says READY=1")

if failures:
    print("service files: FAILED: " + "; ".join(failures))
    sys.exit(1)
print("service files: ok")
