#!/usr/bin/env python3
"""Idle cost of oasisd: CPU time per hour of wall time and peak RSS, with memory sampling at 1 s
and ps at 2 s (the defaults), supervising fake-ollama with one model loaded.

Measured on the process itself (/proc/PID/stat utime+stime, /proc/PID/status VmHWM) over a
fixed wall-clock span, next to the same numbers for the fake-ollama serve it supervises (a
reference for what "idle" costs on this machine). Targets (issue 3): <= 0.2% of one core,
<= 20 MB RSS. Absolute numbers are this machine's only.

Usage: tests/bench/idle_cost.py BUILD_DIR [SECONDS]
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from oasis_local import UnixHTTP, free_port  # noqa: E402

build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
span = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
oasisd = os.path.join(build, "daemon", "oasisd")
fake = os.path.join(build, "tests", "fake_ollama", "fake-ollama")
tick = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime (fields 14, 15)


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def get(sock, target):
    c = UnixHTTP(sock, 10)
    c.request("GET", target)
    r = c.getresponse()
    body = r.read()
    c.close()
    return json.loads(body)


def main():
    d = tempfile.mkdtemp(prefix="oasis-bench-")
    port = free_port()
    cfg = {"ollama": {"command": [fake, "serve"], "url": f"http://127.0.0.1:{port}"},
           "memory": {"interval_s": 1}, "ps_interval_s": 2, "log": {"level": "warn"}}
    with open(f"{d}/c.json", "w") as f:
        json.dump(cfg, f)
    sock = f"{d}/s.sock"
    p = subprocess.Popen([oasisd, "--config", f"{d}/c.json", "--socket", sock, "--db", f"{d}/db"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if get(sock, "/v1/status")["server"]["up"]:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        serve = get(sock, "/v1/status")["server"]["pid"]
        # Load one model so that the runner table has something to sample every tick.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/api/generate", json.dumps({"model": "tiny:latest", "prompt": "hi", "stream": False,
                                                       "keep_alive": -1}))
        c.getresponse().read()
        time.sleep(3)  # let start-up work settle before measuring
        c0, s0, t0 = cpu_seconds(p.pid), cpu_seconds(serve), time.time()
        time.sleep(span)
        c1, s1, t1 = cpu_seconds(p.pid), cpu_seconds(serve), time.time()
        wall = t1 - t0
        pct = (c1 - c0) / wall * 100
        serve_pct = (s1 - s0) / wall * 100
        hwm_mb = status_kb(p.pid, "VmHWM") / 1024
        rss_mb = status_kb(p.pid, "VmRSS") / 1024
        samples = get(sock, "/v1/status")
        result = {
            "wall_s": round(wall, 1),
            "oasisd_cpu_s_per_hour": round((c1 - c0) / wall * 3600, 2),
            "oasisd_cpu_pct_of_core": round(pct, 4),
            "oasisd_peak_rss_mb": round(hwm_mb, 1),
            "oasisd_rss_mb": round(rss_mb, 1),
            "fake_ollama_serve_cpu_pct_of_core": round(serve_pct, 4),
            "models_loaded": len(samples["models"]),
            "targets": {"cpu_pct_of_core": 0.2, "peak_rss_mb": 20},
        }
        ok_cpu = pct <= 0.2
        ok_rss = hwm_mb <= 20
        print(f"idle oasisd over {wall:.0f} s (memory 1 s, ps 2 s, 1 model loaded), this machine only:")
        print(f"  CPU   {pct:.3f}% of one core = {result['oasisd_cpu_s_per_hour']} s per hour   "
              f"target <= 0.2%   {'PASS' if ok_cpu else 'FAIL'}  (ratio {pct / 0.2:.2f} of target)")
        print(f"  RSS   peak {hwm_mb:.1f} MB (now {rss_mb:.1f} MB)                  "
              f"target <= 20 MB  {'PASS' if ok_rss else 'FAIL'}  (ratio {hwm_mb / 20:.2f} of target)")
        print(f"  for reference, the supervised fake-ollama serve used {serve_pct:.3f}% of a core")
        with open(os.path.join(build, "bench-idle.json"), "w") as f:
            json.dump(result, f, indent=2)
        return 0 if ok_cpu and ok_rss else 1
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
