#!/usr/bin/env python3
"""The incident, side by side (issue 6 §1): a naive client vs oasisd, same fault schedule,
same emulator build, one invocation, one table.

The schedule is the incident report's afternoon compressed into about 40 seconds and applied
through fake-ollama's switchboard (and, for oasisd, the memory `file` source):

    t= 0 s  healthy
    t= 6 s  flash attention spills to the CPU: generation 4x slower (slow_factor; ps says 100% GPU)
    t=10 s  memory pressure builds (free pages fall ~70x, swap-outs climb) ... relieved at t=14 s
    t=20 s  a generation hangs (the runner keeps its only slot: OLLAMA_NUM_PARALLEL=1, Ollama's default)
    t=21 s  a soft eviction (keep_alive: 0) is issued, as the report's harness did
    t=32 s  `ollama serve` crashes
    t=40 s  the last trial arrives (8 trials/s from t=0: 320 trials)

Both runs share request_timeout_s, max_attempts, ollama_evict_threshold and max_concurrency.
  naive  - what the report's harness did: direct to the emulator, request_timeout_s total
           timeout, retry with backoff, soft eviction after ollama_evict_threshold consecutive
           timeouts, no kill, no memory awareness, and nobody restarts serve. It is BOUNDED: it
           gives up at t=BOUND s, because in the report it never recovered.
  oasisd - the same trials submitted through oasisd (managed mode over the same emulator build).

Usage: tests/bench/replay.py BUILD_DIR [--json OUT]
Exit status 0 when oasisd meets issue 6's replay targets.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from oasis_local import UnixHTTP, free_port, vm_stat  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "build")
OASISD = os.path.join(BUILD, "daemon", "oasisd")
FAKE = os.path.join(BUILD, "tests", "fake_ollama", "fake-ollama")
JSON_OUT = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None

MODEL = "gemma4:e4b"
SHARED = {"request_timeout_s": 6, "max_attempts": 3, "ollama_evict_threshold": 3, "max_concurrency": 4}
BACKOFF = {"initial_backoff_s": 0.2, "max_backoff_s": 1.0}   # both clients retry with this
OASISD_OWN = {"stall_timeout_s": 2, "first_token_timeout_s": 2, "stopping_grace_s": 2, "ps_interval_s": 0.5}
LOAD_MS = 300
ARRIVAL_RATE = 8.0
ARRIVALS_END = 40.0
BOUND = 60.0
SCHEDULE = [  # (t, name, action)
    (6.0, "flash-attention CPU spill", "slow"),
    (10.0, "memory pressure", "memory"),
    (20.0, "generation hangs", "hang"),
    (21.0, "soft eviction", "evict"),
    (32.0, "serve crash", "crash"),
]
FAULT_TIMES = [t for t, _, _ in SCHEDULE]


def unix_call(sock, method, target, body=None, timeout=30):
    c = UnixHTTP(sock, timeout)
    try:
        c.request(method, target, json.dumps(body) if body is not None else None,
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)
    finally:
        c.close()


def tcp_call(port, method, target, body=None, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, target, json.dumps(body) if body is not None else None,
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def parse_iso(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Env:
    """A private directory with the emulator's catalog and the memory file."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix=f"oasis-replay-{name}-")
        self.port = free_port()
        self.mem = os.path.join(self.dir, "vm_stat.txt")
        self.swapouts = 0
        self.write_mem(vm_stat(400000, 0))
        with open(os.path.join(self.dir, "models.json"), "w") as f:
            json.dump({"models": [{"name": MODEL, "size": 9600000000, "family": "gemma4", "load_ms": LOAD_MS,
                                   "tokens_per_s": 800, "num_predict": 16}]}, f)
        self.emulator_env = {"FAKE_OLLAMA_MODELS": os.path.join(self.dir, "models.json"),
                             "OLLAMA_NUM_PARALLEL": "1", "OLLAMA_KEEP_ALIVE": "5m"}

    def write_mem(self, text):
        tmp = self.mem + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.mem)

    def fault(self, body):
        try:
            tcp_call(self.port, "POST", "/_fake/faults", body, timeout=5)
        except OSError:
            pass

    def cleanup(self):
        if not os.environ.get("OASIS_BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def run_schedule(env, t0, stop, log):
    """Applies the fault schedule at its times (relative to t0) from a thread."""
    def at(t):
        while not stop.is_set() and time.time() < t0 + t:
            stop.wait(min(0.05, max(0.0, t0 + t - time.time())))
        return not stop.is_set()

    for t, name, action in SCHEDULE:
        if not at(t):
            return
        log.append((time.time() - t0, name))
        if action == "slow":
            env.fault({"slow_factor": 4})
        elif action == "memory":
            free = 400000
            for _ in range(12):  # ~3 s: the incident's 15-minute gradient, compressed
                free = free * 70 // 100
                env.swapouts += 40000
                env.write_mem(vm_stat(free, env.swapouts, 20000))
                if stop.wait(0.25):
                    return
            if not at(t + 4.0):
                return
            env.write_mem(vm_stat(400000, env.swapouts, 300000))  # relieved
        elif action == "hang":
            env.fault({"hang_after_tokens": 2, "hang_count": 1, "hang_spin": False})
        elif action == "evict":
            try:
                tcp_call(env.port, "POST", "/api/generate", {"model": MODEL, "keep_alive": 0}, timeout=5)
            except OSError:
                pass
        elif action == "crash":
            env.fault({"serve_exit": 1})


def arrivals():
    n = int(ARRIVAL_RATE * ARRIVALS_END)
    return [i / ARRIVAL_RATE for i in range(n)]


# ---------------------------------------------------------------------------------- naive

def run_naive():
    env = Env("naive")
    env_vars = dict(os.environ, OLLAMA_HOST=f"127.0.0.1:{env.port}", OLLAMA_FLASH_ATTENTION="1", **env.emulator_env)
    log_f = open(os.path.join(env.dir, "fake-ollama.log"), "w")
    serve = subprocess.Popen([FAKE, "serve"], env=env_vars, stdout=log_f, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if tcp_call(env.port, "GET", "/", timeout=1)[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    # Load the model before the clock starts, as in the report (it had been warm for hours).
    tcp_call(env.port, "POST", "/api/generate", {"model": MODEL, "prompt": "warm", "stream": False}, timeout=30)

    lock = threading.Lock()
    state = {"streak": 0, "next": 0, "evictions": 0}
    results = {}  # trial -> ("succeeded"|"failed"|"unfinished", end time)
    failed_attempts = [0]
    successes = []
    times = arrivals()
    stop = threading.Event()
    fault_log = []
    t0 = time.time()
    bound_at = t0 + BOUND

    def soft_evict():
        try:
            tcp_call(env.port, "POST", "/api/generate", {"model": MODEL, "keep_alive": 0}, timeout=5)
        except OSError:
            pass

    def worker():
        while True:
            with lock:
                i = state["next"]
                if i >= len(times):
                    return
                state["next"] += 1
            while time.time() < t0 + times[i]:
                if time.time() >= bound_at:
                    return
                time.sleep(min(0.02, t0 + times[i] - time.time()))
            outcome = "failed"
            for attempt in range(SHARED["max_attempts"]):
                left = bound_at - time.time()
                if left <= 0:
                    outcome = "unfinished"
                    break
                timeout_hit = False
                ok = False
                try:
                    status, body = tcp_call(env.port, "POST", "/api/generate",
                                            {"model": MODEL, "prompt": f"trial {i}", "stream": False},
                                            timeout=min(SHARED["request_timeout_s"], left))
                    ok = status == 200 and json.loads(body).get("done") is True
                except socket.timeout:
                    timeout_hit = True
                except (OSError, http.client.HTTPException, ValueError):
                    pass
                if ok:
                    with lock:
                        state["streak"] = 0
                        successes.append(time.time() - t0)
                    outcome = "succeeded"
                    break
                if time.time() >= bound_at:
                    outcome = "unfinished"  # cut off by the bound, not a recorded failure
                    break
                evict = False
                with lock:
                    failed_attempts[0] += 1
                    if timeout_hit:
                        state["streak"] += 1
                        if state["streak"] >= SHARED["ollama_evict_threshold"]:
                            state["streak"] = 0
                            state["evictions"] += 1
                            evict = True
                if evict:
                    soft_evict()
                if attempt + 1 < SHARED["max_attempts"]:
                    time.sleep(min(BACKOFF["initial_backoff_s"] * 2 ** attempt, BACKOFF["max_backoff_s"]))
            with lock:
                results[i] = (outcome, time.time() - t0)

    sched = threading.Thread(target=run_schedule, args=(env, t0, stop, fault_log), daemon=True)
    sched.start()
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(SHARED["max_concurrency"])]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=max(0.0, bound_at + 2 - time.time()))
    wall = time.time() - t0
    stop.set()
    with lock:
        attempted = state["next"]
        succeeded = sum(1 for o, _ in results.values() if o == "succeeded")
        failed = sum(1 for o, _ in results.values() if o == "failed")
        unfinished = attempted - succeeded - failed
        evictions = state["evictions"]
        succ = sorted(successes)
        fattempts = failed_attempts[0]
    serve.send_signal(signal.SIGKILL)
    try:
        os.killpg(serve.pid, signal.SIGKILL)  # its runners, orphaned or not
    except OSError:
        pass
    serve.wait()
    log_f.close()
    env.cleanup()
    return {"submitted": len(times), "attempted": attempted, "succeeded": succeeded, "failed": failed,
            "lost": unfinished, "never_attempted": len(times) - attempted, "failed_attempts": fattempts,
            "wall_s": wall, "successes": succ, "fault_log": fault_log, "bounded": True,
            "soft_evictions_by_client": evictions, "ended": min(wall, BOUND)}


# ---------------------------------------------------------------------------------- oasisd

def run_oasisd():
    env = Env("oasisd")
    sock = os.path.join(env.dir, "oasisd.sock")
    cfg = {
        "ollama": {"command": [FAKE, "serve"], "url": f"http://127.0.0.1:{env.port}", "flash_attention": "on",
                   "env": env.emulator_env, "restart": {"initial_backoff_s": 0.2, "max_backoff_s": 1}},
        "retry": BACKOFF,
        "memory": {"interval_s": 0.25, "window_s": 8, "resume_hold_s": 1,
                   "source": {"kind": "file", "path": env.mem, "format": "vm_stat"}},
        "cpu_spill": {"factor": 3, "min_samples": 5, "runner_cpu_pct": 0},
        "log": {"level": "info"},
        **SHARED, **OASISD_OWN,
    }
    with open(os.path.join(env.dir, "oasisd.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    log_f = open(os.path.join(env.dir, "oasisd.log"), "w")
    proc = subprocess.Popen([OASISD, "--config", os.path.join(env.dir, "oasisd.json"), "--socket", sock,
                             "--db", os.path.join(env.dir, "oasisd.db")], stdout=log_f, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                st = unix_call(sock, "GET", "/v1/status")[1]
                if st["server"]["up"] and st["run"]["state"] == "running":
                    break
            except (OSError, http.client.HTTPException, ValueError, TypeError):
                pass
            if time.time() > deadline:
                raise SystemExit("replay: oasisd did not become ready; log in " + env.dir)
            time.sleep(0.05)
        # Warm the model, as in the naive run.
        unix_call(sock, "POST", "/v1/trials?wait=30",
                  {"model": MODEL, "request": {"prompt": "warm"}, "run": "warm"}, timeout=40)

        times = arrivals()
        stop = threading.Event()
        fault_log = []
        t0 = time.time()
        sched = threading.Thread(target=run_schedule, args=(env, t0, stop, fault_log), daemon=True)
        sched.start()
        submitted = 0
        submit_errors = 0
        for i, t in enumerate(times):
            while time.time() < t0 + t:
                time.sleep(min(0.02, t0 + t - time.time()))
            try:
                status, _ = unix_call(sock, "POST", "/v1/trials",
                                      {"model": MODEL, "request": {"prompt": f"trial {i}"}, "run": "replay",
                                       "key": f"replay-{i}"}, timeout=10)
                if status == 202:
                    submitted += 1
                else:
                    submit_errors += 1
            except (OSError, http.client.HTTPException):
                submit_errors += 1
        # Wait until every trial ended, within the same bound as the naive run.
        bound_at = t0 + BOUND
        while time.time() < bound_at and proc.poll() is None:
            try:
                t = unix_call(sock, "GET", "/v1/status")[1]["trials"]
                if t["queued"] == 0 and t["running"] == 0:
                    break
            except (OSError, http.client.HTTPException, ValueError, TypeError):
                pass
            time.sleep(0.1)
        wall = time.time() - t0
        stop.set()
        records = []
        crashed = proc.poll()
        if crashed is None:
            after = 0
            ids = []
            while True:
                page = unix_call(sock, "GET", f"/v1/trials?run=replay&limit=1000&after={after}")[1]
                ids += [t["id"] for t in page["trials"]]
                if not page.get("next"):
                    break
                after = page["next"]
            # One by one: the full record carries the attempts.
            records = [unix_call(sock, "GET", f"/v1/trials/{i}")[1] for i in ids]
        else:
            print(f"  !! oasisd exited during the replay (status {crashed}); its log: {env.dir}/oasisd.log")
            os.environ["OASIS_BENCH_KEEP"] = "1"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_f.close()
        env.cleanup()
    succeeded = [r for r in records if r["state"] == "succeeded"]
    failed = [r for r in records if r["state"] == "failed"]
    ended_once = len(records) == len({r["id"] for r in records})
    successes = sorted(parse_iso(r["finished_at"]) - t0 for r in succeeded)
    fattempts = sum(1 for r in records for a in r["attempts"] if a["outcome"] != "ok")
    return {"submitted": len(times), "attempted": submitted, "succeeded": len(succeeded), "failed": len(failed),
            "lost": submitted - len(succeeded) - len(failed) - sum(1 for r in records if r["state"] == "cancelled"),
            "never_attempted": len(times) - submitted, "failed_attempts": fattempts, "wall_s": wall,
            "successes": successes, "fault_log": fault_log, "bounded": False, "submit_errors": submit_errors,
            "stored_records": len(records), "each_once": ended_once, "ended": wall, "oasisd_exit": crashed}


# ---------------------------------------------------------------------------------- report

def longest_outage(successes, end):
    """Longest span with no successful trial, from t=0 to the end of the run."""
    points = [0.0] + [s for s in successes if s <= end] + [end]
    best, at = 0.0, 0.0
    for a, b in zip(points, points[1:]):
        if b - a > best:
            best, at = b - a, a
    return best, at


def recovery_after(successes, t_fault, t_next, end):
    """Seconds from a fault until successes flow again: the end of the longest gap between
    successes that overlaps [t_fault, t_next); 0 if no gap there was longer than 1 s; None if
    that gap lasted to the end of the run (no recovery)."""
    before = [s for s in successes if s <= t_fault]
    points = [before[-1] if before else 0.0] + [s for s in successes if t_fault < s <= end] + [end]
    best = None
    for i, (a, b) in enumerate(zip(points, points[1:])):
        if a >= t_next:
            break
        if b - a > 1.0 and (best is None or b - a > best[1] - best[0]):
            best = (a, b, i + 1 == len(points) - 1)
    if best is None:
        return 0.0
    if best[2]:
        return None  # the gap runs into the end of the run: never recovered
    return max(0.0, best[1] - t_fault)


def main():
    for p in (OASISD, FAKE):
        if not os.path.exists(p):
            sys.exit(f"replay: {p} is missing; build first (scripts/build.sh)")
    print("incident replay: naive client vs oasisd, same fault schedule, same fake-ollama build")
    print(f"  shared settings: {json.dumps(SHARED)}; oasisd's own: {json.dumps(OASISD_OWN)}")
    print(f"  schedule: " + "; ".join(f"t={t:g}s {n}" for t, n, _ in SCHEDULE)
          + f"; {int(ARRIVAL_RATE * ARRIVALS_END)} trials arrive at {ARRIVAL_RATE:g}/s until t={ARRIVALS_END:g}s")
    print(f"  running naive (bounded: gives up at t={BOUND:g} s) ...", flush=True)
    naive = run_naive()
    print("  running oasisd ...", flush=True)
    oas = run_oasisd()

    for r in (naive, oas):
        r["longest_outage_s"], r["longest_outage_from_s"] = longest_outage(r["successes"], r["ended"])
        rec = {}
        for k, (t, name, _) in enumerate(SCHEDULE):
            t_next = SCHEDULE[k + 1][0] if k + 1 < len(SCHEDULE) else r["ended"]
            rec[name] = recovery_after(r["successes"], t, t_next, r["ended"])
        r["recovery_s"] = rec

    def fmt(v, unit=""):
        if v is None:
            return "never"
        return f"{v:.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"

    def ratio(a, b):
        if a is None or b is None:
            return "-"
        if b == 0:
            return "-" if a == 0 else "inf"
        return f"{a / b:.2f}"

    rows = [("trials submitted", "submitted"), ("trials attempted", "attempted"), ("succeeded", "succeeded"),
            ("failed", "failed"), ("lost (unfinished, no record)", "lost"), ("failed attempts", "failed_attempts"),
            ("longest outage (s)", "longest_outage_s"), ("total wall time (s)", "wall_s")]
    print()
    print(f"  {'':<46} {'naive':>12} {'oasisd':>12} {'oasisd/naive':>13}")
    for label, key in rows:
        print(f"  {label:<46} {fmt(naive[key]):>12} {fmt(oas[key]):>12} {ratio(oas[key], naive[key]):>13}")
    for t, name, _ in SCHEDULE:
        a, b = naive["recovery_s"][name], oas["recovery_s"][name]
        label = f"recovery after {name} (s)"
        nv = "never" if a is None else f"{a:.1f}"
        print(f"  {label:<46} {nv:>12} {fmt(b):>12} {ratio(b, a):>13}")
    print(f"  recovery = from the fault until trials succeed again (0: no gap over 1 s; never: not before the run ended)")
    print(f"  the naive run is BOUNDED: it gives up at t={BOUND:g} s, since in the report it never recovered "
          f"(this time it ended at t={naive['wall_s']:.1f} s: {naive['lost']} trial(s) cut off by the bound, "
          f"{naive['never_attempted']} never attempted); its client soft-evicted {naive['soft_evictions_by_client']} "
          f"time(s); nobody restarts its serve")

    outage_target = OASISD_OWN["stall_timeout_s"] + OASISD_OWN["stopping_grace_s"] + LOAD_MS / 1000 \
        + 2 * OASISD_OWN["ps_interval_s"]
    checks = [
        ("oasisd loses 0 trials (and keeps running)",
         oas["lost"] == 0 and oas["submit_errors"] == 0 and oas["each_once"] and oas["oasisd_exit"] is None,
         f"lost {oas['lost']}"),
        ("oasisd: every trial succeeds", oas["succeeded"] == oas["submitted"],
         f"{oas['succeeded']}/{oas['submitted']}"),
        (f"oasisd longest outage <= stall + grace + reload + 2 ps = {outage_target:.1f} s",
         oas["longest_outage_s"] <= outage_target, f"{oas['longest_outage_s']:.1f} s"),
        ("naive shows the report's failure mode (from the hang on, no trial succeeds until it stops)",
         naive["longest_outage_from_s"] + naive["longest_outage_s"] >= naive["ended"] - 0.01
         and naive["longest_outage_from_s"] <= SCHEDULE[2][0] + SHARED["request_timeout_s"],
         f"outage {naive['longest_outage_s']:.1f} s, from t={naive['longest_outage_from_s']:.1f} s to the end of its run "
         f"(t={naive['ended']:.1f} s; bound {BOUND:g} s)"),
    ]
    print()
    for name, ok, got in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {got}")
    result = {"naive": {k: v for k, v in naive.items() if k != "successes"},
              "oasisd": {k: v for k, v in oas.items() if k != "successes"},
              "settings": {"shared": SHARED, "oasisd": OASISD_OWN, "backoff": BACKOFF, "bound_s": BOUND,
                           "schedule": [{"t": t, "fault": n} for t, n, _ in SCHEDULE]},
              "targets": {"oasisd_longest_outage_s": outage_target},
              "checks": [{"name": n, "pass": ok, "value": got} for n, ok, got in checks]}
    if JSON_OUT:
        with open(JSON_OUT, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
