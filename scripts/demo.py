#!/usr/bin/env python3
"""The incident, replayed in about a minute against the bundled Ollama emulator.

oasisd supervises fake-ollama (managed mode, flash attention on as in the incident) and runs
trials while the three stacked faults of ../shared/reference/incident-report.txt are injected
one after the other:

  1. flash attention spills generation to the CPU (slow_factor, ps still says 100% GPU)
  2. memory pressure builds (the vm_stat gradient: free pages fall 100x, swap-outs climb)
  3. a generation hangs and a soft eviction leaves the model "Stopping..." (the deadlock)

You watch oasisd notice each one, pause, kill the runner, resume, and at the end read the
timeline table and the diagnosis. Exits non-zero if oasisd did not detect and recover from
every fault, or if any trial was lost.

Usage: scripts/demo.py BUILD_DIR
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from oasis_local import UnixHTTP, free_port, vm_stat  # beside this script

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
OASISD = os.path.join(BUILD, "daemon", "oasisd")
OASISCTL = os.path.join(BUILD, "daemon", "oasisctl")
FAKE = os.path.join(BUILD, "tests", "fake_ollama", "fake-ollama")
TTY = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def bold(s):
    return f"\033[1m{s}\033[0m" if TTY else s


def step(title):
    print("\n" + bold("== " + title))


def call(sock, method, target, body=None, timeout=60):
    c = UnixHTTP(sock, timeout)
    c.request(method, target, json.dumps(body) if body is not None else None,
              {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data) if data else None
    except json.JSONDecodeError:
        return r.status, data.decode()


def ollama(port, method, target, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, target, json.dumps(body) if body is not None else None)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


class Demo:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="oasis-demo-")
        self.sock = os.path.join(self.dir, "oasisd.sock")
        self.mem = os.path.join(self.dir, "vm_stat.txt")
        self.port = free_port()
        self.swapouts = 0
        self.write_mem(vm_stat(400000, 0))
        cfg = {
            "ollama": {"command": [FAKE, "serve"], "url": f"http://127.0.0.1:{self.port}",
                       "flash_attention": "on"},
            "ps_interval_s": 0.5,
            "stall_timeout_s": 2, "first_token_timeout_s": 4, "request_timeout_s": 20,
            "ollama_evict_threshold": 2, "stopping_grace_s": 2,
            "max_concurrency": 2,
            "retry": {"initial_backoff_s": 0.1, "max_backoff_s": 0.5},
            "memory": {"interval_s": 0.25, "window_s": 8, "resume_hold_s": 3,
                       "source": {"kind": "file", "path": self.mem, "format": "vm_stat"}},
            # The emulator's slow path sleeps between tokens instead of burning CPU as a real
            # spilled graph does, so runner CPU cannot corroborate here: 0 = don't require it.
            "cpu_spill": {"factor": 3, "min_samples": 5, "runner_cpu_pct": 0},
        }
        with open(os.path.join(self.dir, "oasisd.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        self.log = open(os.path.join(self.dir, "oasisd.log"), "w")
        self.proc = subprocess.Popen([OASISD, "--config", os.path.join(self.dir, "oasisd.json"),
                                      "--socket", self.sock, "--db", os.path.join(self.dir, "oasisd.db")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.time()
        self.submitted = 0

    def write_mem(self, text):
        tmp = self.mem + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.mem)

    def status(self):
        return call(self.sock, "GET", "/v1/status")[1]

    def events(self):
        status, text = call(self.sock, "GET", "/v1/events")
        return [json.loads(l) for l in text.splitlines()] if isinstance(text, str) else [text]

    def kinds(self):
        return [e["kind"] for e in self.events()]

    def wait(self, what, cond, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            try:
                if cond():
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        print(f"   !! timed out waiting for {what}")
        return False

    def submit(self, n, run, prompt="question"):
        trials = [{"model": "gemma4:e4b", "request": {"prompt": f"{prompt} {i}"}, "run": run} for i in range(n)]
        status, body = call(self.sock, "POST", "/v1/trials/batch", {"trials": trials})
        assert status == 202, body
        self.submitted += n
        return body["ids"]

    def all_done(self):
        t = self.status()["trials"]
        return t["succeeded"] + t["failed"] + t["cancelled"] == self.submitted

    def say(self, s):
        print(f"   [{time.time() - self.started:5.1f}s] {s}")

    def show_status(self):
        if os.path.exists(OASISCTL):
            subprocess.run([OASISCTL, "--socket", self.sock, "status"], check=False)
        else:
            s = self.status()
            print(json.dumps({k: s[k] for k in ("run", "server", "memory", "trials")}, indent=1))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -1


def main():
    for p in (OASISD, FAKE):
        if not os.path.exists(p):
            sys.exit(f"demo: {p} is missing; build first (scripts/build.sh)")
    d = Demo()
    ok = True
    try:
        step("oasisd starts and launches the emulator (flash attention ON, as in the incident)")
        if not d.wait("ollama serve up", lambda: d.status()["server"]["up"] and d.status()["run"]["state"] == "running", 30):
            raise SystemExit(1)
        d.say(f"serve pid {d.status()['server']['pid']}, flash attention {d.status()['server']['flash_attention']}")

        step("1. healthy trials (the morning of the incident)")
        d.submit(20, "demo")
        d.wait("healthy trials", d.all_done, 60)
        d.say(f"{d.status()['trials']['succeeded']} trials succeeded")

        step("2. flash attention silently spills to the CPU: generation 8x slower, ps still says 100% GPU")
        ollama(d.port, "POST", "/_fake/faults", {"slow_factor": 8})
        d.submit(6, "demo", "slow")
        found = d.wait("cpu_spill_suspected", lambda: "cpu_spill_suspected" in d.kinds(), 60)
        ok &= found
        if found:
            e = [e for e in d.events() if e["kind"] == "cpu_spill_suspected"][-1]
            d.say("oasisd: cpu_spill_suspected " + json.dumps(e["detail"])[:220])
        d.wait("slow trials", d.all_done, 60)
        ollama(d.port, "POST", "/_fake/reset", {})

        step("3. memory pressure builds: free pages fall 100x, swap-outs climb (15 minutes in 4 seconds)")
        d.submit(10, "demo", "during-pressure")
        free = 400000
        paused = False
        for _ in range(40):
            free = max(4000, free * 80 // 100)
            d.swapouts += 15000
            d.write_mem(vm_stat(free, d.swapouts, 20000))
            time.sleep(0.15)
            if d.status()["run"]["state"] == "paused":
                paused = True
                break
        ok &= paused
        s = d.status()
        d.say(f"oasisd paused dispatch: reasons {s['run']['pause_reasons']}, memory {s['memory']['pressure']}: "
              + "; ".join(s["memory"]["reasons"])[:200])
        d.show_status()
        d.say("memory recovers; oasisd waits for resume_hold_s before resuming (no flapping)")
        d.write_mem(vm_stat(400000, d.swapouts, 300000))
        resumed = d.wait("resume", lambda: d.status()["run"]["state"] == "running", 30)
        ok &= resumed
        d.say("resumed" if resumed else "NOT resumed")
        d.wait("queued trials", d.all_done, 60)

        step("4. a generation hangs; the harness soft-evicts the model; it sits in \"Stopping...\"")
        ollama(d.port, "POST", "/_fake/faults", {"hang_after_tokens": 2, "hang_count": 1, "hang_spin": True})
        holder = threading.Thread(target=lambda: ollama(d.port, "POST", "/api/generate",
                                                        {"model": "gemma4:e4b", "prompt": "hang"}, timeout=60),
                                  daemon=True)
        holder.start()   # the incident's stuck request, held by a client oasisd does not control
        d.wait("model loaded", lambda: any(m["name"] == "gemma4:e4b" and m.get("runner") for m in d.status()["models"]), 20)
        time.sleep(0.5)
        runner = [m for m in d.status()["models"] if m["name"] == "gemma4:e4b"][0]["runner"]["pid"]
        d.say(f"runner pid {runner} is spinning; evicting with keep_alive:0 (what the harness did)")
        call(d.sock, "POST", "/v1/evict", {"model": "gemma4:e4b"})
        killed = d.wait("runner_killed", lambda: "runner_killed" in d.kinds(), 30)
        ok &= killed
        if killed:
            e = [e for e in d.events() if e["kind"] == "stopping_detected"]
            if e:
                d.say("oasisd: stopping_detected " + json.dumps(e[-1]["detail"])[:200])
            d.say(f"oasisd: kill -9 runner {runner} (identity verified), model left ps")
        d.submit(10, "demo", "after-recovery")
        d.wait("trials after recovery", d.all_done, 60)

        step("timeline (the incident report's table, per 10 s)")
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d.started - 10))
        if os.path.exists(OASISCTL):
            subprocess.run([OASISCTL, "--socket", d.sock, "timeline", "--bucket", "10s", "--since", since], check=False)
        else:
            rows = call(d.sock, "GET", f"/v1/timeline?bucket_s=10&since={since}")[1]["rows"]
            print(f"   {'start':<28} {'trials':>6} {'p50 ms':>8} {'p95 ms':>8} {'fail':>6}  actions")
            for r in rows:
                p50 = f"{r['p50_ms']:.0f}" if r["p50_ms"] is not None else "-"
                p95 = f"{r['p95_ms']:.0f}" if r["p95_ms"] is not None else "-"
                print(f"   {r['start']:<28} {r['trials']:>6} {p50:>8} {p95:>8} {r['failure_rate']*100:>5.0f}%  "
                      + ", ".join(r["actions"])[:60])

        step("diagnosis (what the incident report reconstructed by hand)")
        diag = call(d.sock, "GET", f"/v1/diagnosis?since={since}")[1]
        if os.path.exists(OASISCTL):
            subprocess.run([OASISCTL, "--socket", d.sock, "doctor", "--since", since], check=False)
        else:
            for f in diag["findings"]:
                print(f"   {f['kind']:<18} {f['verdict']:<10} {f['summary']}")
        verdicts = {f["kind"]: f["verdict"] for f in diag["findings"]}
        ok &= verdicts.get("cpu_spill") == "cause" and verdicts.get("memory_pressure") == "cause" \
            and verdicts.get("stopping_deadlock") == "cause"

        t = d.status()["trials"]
        step("result")
        d.say(f"trials submitted {d.submitted}, succeeded {t['succeeded']}, failed {t['failed']}, "
              f"lost {d.submitted - t['succeeded'] - t['failed'] - t['cancelled']}")
        ok &= t["succeeded"] == d.submitted
    finally:
        rc = d.stop()
        print(f"\n   oasisd stopped (exit {rc}); its log and database are in {d.dir}")
    if not ok:
        print(bold("demo: FAILED - oasisd did not detect and recover from every fault"))
        sys.exit(1)
    print(bold("demo: every fault detected and recovered; no trial lost"))


if __name__ == "__main__":
    main()
