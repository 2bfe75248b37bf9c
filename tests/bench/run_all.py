#!/usr/bin/env python3
"""Runs every oasisd benchmark on an already built tree and prints one summary: each figure with
its target and PASS/FAIL, plus BUILD_DIR/bench-results.json. scripts/bench.sh builds first.

  idle cost           tests/bench/idle_cost.py        (issue 3)
  overhead            oasis-bench overhead            (issue 4: direct vs through oasisd)
  batch/status/scale  oasis-bench scale               (issue 4 batch + status, issue 6 §3)
  incident replay     tests/bench/replay.py           (issue 6 §1)

Usage: tests/bench/run_all.py BUILD_DIR [--quick]
Absolute times are this machine's only; the overhead ratios are measured side by side.
"""
import json
import os
import platform
import subprocess
import sys
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
QUICK = "--quick" in sys.argv
HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(BUILD, "tests", "bench", "oasis-bench")
OASISD = os.path.join(BUILD, "daemon", "oasisd")
FAKE = os.path.join(BUILD, "tests", "fake_ollama", "fake-ollama")


def run(title, argv):
    print(f"\n=== {title}", flush=True)
    t0 = time.time()
    rc = subprocess.call(argv)
    took = time.time() - t0
    print(f"    ({title}: {took:.0f} s, exit {rc})", flush=True)
    return rc, took


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    for p in (BENCH, OASISD, FAKE):
        if not os.path.exists(p):
            sys.exit(f"bench: {p} is missing; run scripts/build.sh release first")
    started = time.time()
    machine = {"uname": " ".join(platform.uname()), "nproc": os.cpu_count(),
               "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "load_avg_at_start": os.getloadavg()}
    files = {k: os.path.join(BUILD, f"bench-{k}.json") for k in ("idle", "overhead", "scale", "replay")}
    for f in files.values():
        if os.path.exists(f):
            os.remove(f)
    durations = {}
    common = ["--oasisd", OASISD, "--fake", FAKE]
    _, durations["overhead"] = run("overhead: direct vs through oasisd",
                                   [BENCH, "overhead", *common, "--json", files["overhead"]]
                                   + (["--rounds", "1"] if QUICK else []))
    sizes = "10000,100000" if QUICK else "10000,100000,1000000"
    _, durations["scale"] = run("scale: batch submit, status under load, 10k/100k/1M trials",
                                [BENCH, "scale", *common, "--sizes", sizes, "--json", files["scale"]])
    _, durations["replay"] = run("incident replay: naive vs oasisd",
                                 [sys.executable, os.path.join(HERE, "replay.py"), BUILD, "--json", files["replay"]])
    _, durations["idle"] = run("idle cost", [sys.executable, os.path.join(HERE, "idle_cost.py"), BUILD,
                                             "20" if QUICK else "60"])

    idle, over, scale, replay = (load(files[k]) for k in ("idle", "overhead", "scale", "replay"))
    checks = []  # (group, figure, value text, target text, pass or None)

    def add(group, figure, value, target, ok, fmt="{:.3f}"):
        text = "missing" if value is None else (fmt.format(value) if isinstance(value, (int, float)) else str(value))
        checks.append({"group": group, "figure": figure, "value": value, "value_text": text, "target": target,
                       "pass": (False if value is None else ok)})

    if idle:
        add("idle", "oasisd CPU, % of one core", idle["oasisd_cpu_pct_of_core"], "<= 0.2",
            idle["oasisd_cpu_pct_of_core"] <= 0.2)
        add("idle", "oasisd peak RSS, MB", idle["oasisd_peak_rss_mb"], "<= 20", idle["oasisd_peak_rss_mb"] <= 20, "{:.1f}")
    else:
        add("idle", "idle benchmark", None, "ran", False)
    if over:
        for c in (1, 4):
            blk = over.get(f"concurrency_{c}", {})
            d = blk.get("direct", {})
            add("overhead", f"c={c} direct p50 ms / req/s (reference)",
                f"{d.get('p50_ms', 0):.3f} ms, {d.get('throughput_per_s', 0):.0f}/s", "-", None)
            for mode, label in (("oasisd_compat", "/api/generate via oasisd"), ("oasisd_wait", "/v1/trials?wait via oasisd")):
                m = blk.get(mode)
                if not m:
                    add("overhead", f"c={c} {label}", None, "ran", False)
                    continue
                add("overhead", f"c={c} {label}: added p50 ms", m["added_p50_ms"], "<= 0.5",
                    m["added_p50_ms"] <= 0.5 and m["errors"] == 0)
                add("overhead", f"c={c} {label}: throughput vs direct", m["throughput_ratio"], ">= 0.80",
                    m["throughput_ratio"] >= 0.80 and m["errors"] == 0, "{:.2f}")
            # Floors (no target): what any proxy adds, and oasisd without its storage I/O; and, for
            # context, the same overhead on calls that take 20 ms instead of 0.4.
            for mode, label in (("floor_relay", "floor: bare relay"),
                                ("floor_memstore_compat", "floor: oasisd, store in memory"),
                                ("oasisd_compat_20ms", "context: 20 ms calls, /api/generate")):
                m = blk.get(mode)
                if m:
                    add("overhead", f"c={c} {label}: added p50 ms / tput",
                        f"{m['added_p50_ms']:.3f} ms, {m['throughput_ratio']:.2f}", "-", None)
    else:
        add("overhead", "overhead benchmark", None, "ran", False)
    by_size = {s["trials"]: s for s in (scale or [])}
    s100k = by_size.get(100000)
    if s100k:
        add("batch", "batch submit of 100,000 trials, trials/s", s100k["submit_per_s"], ">= 20000",
            s100k["submit_per_s"] >= 20000, "{:.0f}")
        add("batch", "GET /v1/status p99 ms, 100,000 queued", s100k["status_queued"]["p99_ms"], "<= 5",
            s100k["status_queued"]["p99_ms"] <= 5, "{:.2f}")
    else:
        add("batch", "100k scale point", None, "ran", False)
    for n, s in sorted(by_size.items()):
        add("scale", f"{n:>7} trials: submit/s", s["submit_per_s"], "-", None, "{:.0f}")
        add("scale", f"{n:>7} trials: dispatch/s (ended in window)", s["dispatch_per_s"], "-", None, "{:.0f}")
        add("scale", f"{n:>7} trials: DB bytes/trial", s["db_bytes_per_trial"], "-", None, "{:.0f}")
        add("scale", f"{n:>7} trials: status p99 ms queued / running",
            f"{s['status_queued']['p99_ms']:.2f} / {s['status_running']['p99_ms']:.2f}", "-", None)
        add("scale", f"{n:>7} trials: timeline p99 ms queued / running",
            f"{s['timeline_queued']['p99_ms']:.2f} / {s['timeline_running']['p99_ms']:.2f}", "-", None)
    s1m = by_size.get(1000000)
    if s1m:
        add("scale", "1M queued: oasisd peak RSS, MB", s1m["rss_mb_peak"], "<= 200", s1m["rss_mb_peak"] <= 200, "{:.1f}")
        add("scale", "1M queued: GET /v1/status p99 ms", s1m["status_queued"]["p99_ms"], "<= 10",
            s1m["status_queued"]["p99_ms"] <= 10, "{:.2f}")
    elif not QUICK:
        add("scale", "1M scale point", None, "ran", False)
    small, big = by_size.get(10000), (s1m or s100k)
    if small and big and big is not small:
        k = big["trials"] // small["trials"]
        # Linear growth keeps per-trial and per-request costs flat; allow 2x for noise and caches.
        add("scale", f"growth 10k->{big['trials'] // 1000}k: submit/s ratio", big["submit_per_s"] / small["submit_per_s"],
            ">= 0.5 (flat)", big["submit_per_s"] / small["submit_per_s"] >= 0.5, "{:.2f}")
        add("scale", f"growth 10k->{big['trials'] // 1000}k: dispatch/s ratio",
            big["dispatch_per_s"] / small["dispatch_per_s"], ">= 0.5 (flat)",
            big["dispatch_per_s"] / small["dispatch_per_s"] >= 0.5, "{:.2f}")
        add("scale", f"growth 10k->{big['trials'] // 1000}k: DB bytes/trial ratio",
            big["db_bytes_per_trial"] / small["db_bytes_per_trial"], "<= 2 (flat)",
            big["db_bytes_per_trial"] / small["db_bytes_per_trial"] <= 2, "{:.2f}")
        add("scale", f"growth 10k->{big['trials'] // 1000}k ({k}x trials): status p99 ratio",
            big["status_queued"]["p99_ms"] / max(small["status_queued"]["p99_ms"], 1e-3), "<= 2 (flat)",
            big["status_queued"]["p99_ms"] / max(small["status_queued"]["p99_ms"], 1e-3) <= 2, "{:.2f}")
    if replay:
        for c in replay["checks"]:
            add("replay", c["name"], c["value"], "see issue 6", c["pass"])
        n, o = replay["naive"], replay["oasisd"]
        add("replay", "succeeded naive / oasisd", f"{n['succeeded']} / {o['succeeded']} of {o['submitted']}", "-", None)
        add("replay", "longest outage naive / oasisd (s)", f"{n['longest_outage_s']:.1f} / {o['longest_outage_s']:.1f}",
            "-", None)
    else:
        add("replay", "incident replay", None, "ran", False)

    total = time.time() - started
    print("\n" + "=" * 100)
    print(f"oasisd benchmarks, {machine['date_utc']}, {machine['uname']}, nproc {machine['nproc']}")
    print("absolute times and rates: this machine only (2 shared cores); ratios are measured side by side in this run")
    print(f"{'group':<9} {'figure':<58} {'value':>16} {'target':>14}  result")
    for c in checks:
        mark = "" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        print(f"{c['group']:<9} {c['figure']:<58} {c['value_text']:>16} {c['target']:>14}  {mark}")
    failed = [c for c in checks if c["pass"] is False]
    print(f"\n{sum(1 for c in checks if c['pass'])} passed, {len(failed)} failed; benchmarks took {total:.0f} s")
    out = {"machine": machine, "took_s": total, "durations_s": durations, "checks": checks,
           "raw": {"idle": idle, "overhead": over, "scale": scale, "replay": replay}}
    with open(os.path.join(BUILD, "bench-results.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(f"machine-readable: {os.path.join(BUILD, 'bench-results.json')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
