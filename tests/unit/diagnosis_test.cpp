// The diagnosis over replayed windows: a healthy run, then each of the incident's four fault
// kinds on its own. Rows go into a real (in-memory) store the way oasisd writes them, on a
// manual clock, and the test asserts which finding says "cause" and which do not.
#include <map>

#include "catch.h"
#include "daemon/diagnosis.h"
#include "daemon/store.h"

using namespace oasis;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr std::uint64_t kGiB = 1024ull * 1024 * 1024;

// One window of supervision history, written into a store as oasisd would write it.
class Replay {
 public:
  Replay() : t0_(clock_.wallNow()) {}

  WallTime at(std::chrono::seconds offset) const { return t0_ + offset; }

  struct Generation {
    std::string outcome = "ok";
    double latencyMs = 4000;
    std::optional<double> loadMs = 5;  // warm
    std::int64_t evalCount = 200;
    double evalMs = 3900;  // about 51 tokens/s
  };

  // A trial with one attempt that ended at `end`.
  void attempt(std::chrono::seconds end, const Generation& g) {
    Store::NewTrial t;
    t.run = "eval";
    t.model = "gemma3:27b";
    t.kind = "generate";
    t.request = {{"prompt", "q"}};
    t.specHash = "h" + std::to_string(++n_);
    auto inserted = store_.insertTrials({t}, at(end) - std::chrono::milliseconds(static_cast<long>(g.latencyMs)));
    auto id = inserted.front().id;
    AttemptRow row;
    row.id = store_.startAttempt(id, at(end) - std::chrono::milliseconds(static_cast<long>(g.latencyMs)));
    row.endedAt = at(end);
    row.outcome = g.outcome;
    row.latencyMs = g.latencyMs;
    if (g.outcome == "ok") {
      row.loadDurationMs = g.loadMs;
      row.evalCount = g.evalCount;
      row.evalDurationMs = g.evalMs;
      row.firstTokenMs = (g.loadMs ? *g.loadMs : 0) + 80;
    }
    store_.finishAttempt(row);
    if (g.outcome == "ok") store_.markTrialSucceeded(id, at(end), json::object(), true);
    else store_.markTrialQueued(id, true);
  }

  void memory(std::chrono::seconds t, std::uint64_t freeBytes, std::uint64_t swapouts, const std::string& pressure) {
    MemorySampleRow m;
    m.at = at(t);
    m.totalBytes = 64 * kGiB;
    m.freeBytes = freeBytes;
    m.availableBytes = freeBytes * 3;
    m.swapoutsBytes = swapouts;
    m.pressure = pressure;
    store_.addMemorySample(m);
  }

  void runner(std::chrono::seconds t, double cpuPct, const std::string& fa) {
    RunnerSampleRow r;
    r.at = at(t);
    r.model = "gemma3:27b";
    r.pid = 4242;
    r.cpuPct = cpuPct;
    r.rssBytes = 17 * kGiB;
    r.flashAttention = fa;
    store_.addRunnerSample(r);
  }

  void event(std::chrono::seconds t, const std::string& kind, json detail = json::object()) {
    store_.addEvent(at(t), kind, "gemma3:27b", detail);
  }

  // Ten minutes of what the incident's first seven hours looked like: one cold load, then warm
  // 4 s trials at ~51 tokens/s, steady memory, a runner at a few percent CPU.
  void healthy(std::chrono::seconds from, std::chrono::seconds to) {
    bool first = from == 0s;
    for (auto t = from + 10s; t < to; t += 10s) {
      Generation g;
      if (first) {
        g.loadMs = 9000;
        g.latencyMs = 13000;
        first = false;
      }
      attempt(t, g);
      memory(t, 20 * kGiB, 0, "ok");
      runner(t, 8, "false");
    }
  }

  std::map<std::string, json> diagnose(std::chrono::seconds until) {
    auto report = oasis::diagnose(store_, t0_, at(until), DiagnosisOptions{});
    std::map<std::string, json> byKind;
    for (auto& f : report["findings"]) byKind[f["kind"].get<std::string>()] = f;
    last_ = report;
    return byKind;
  }

  std::string dump() const { return last_.dump(2); }

 private:
  ManualClock clock_;
  WallTime t0_;
  Store store_{":memory:"};
  int n_ = 0;
  json last_;
};

std::string verdict(const std::map<std::string, json>& f, const std::string& kind) {
  auto it = f.find(kind);
  return it == f.end() ? "missing" : it->second["verdict"].get<std::string>();
}

int causes(const std::map<std::string, json>& f) {
  int n = 0;
  for (auto& [k, v] : f) n += v["verdict"] == "cause";
  return n;
}

}  // namespace

TEST_CASE("diagnosis: a healthy run names no cause, and its first cold load is not a cold-start cause",
          "[diagnosis]") {
  Replay r;
  r.healthy(0s, 600s);
  auto f = r.diagnose(600s);
  INFO(r.dump());
  REQUIRE(f.size() == 4);
  CHECK(causes(f) == 0);
  CHECK(verdict(f, "cold_start") == "not_cause");
  CHECK(f["cold_start"]["evidence"]["initial_loads"] == 1);
  CHECK(f["cold_start"]["evidence"]["reloads"] == 0);
  CHECK(verdict(f, "memory_pressure") == "not_cause");
  CHECK(verdict(f, "cpu_spill") == "not_cause");
  CHECK(verdict(f, "stopping_deadlock") == "no_data");
}

TEST_CASE("diagnosis: repeated reloads after a warm phase are named cold start, and only that", "[diagnosis]") {
  Replay r;
  r.healthy(0s, 300s);
  for (auto t = 310s; t < 600s; t += 30s) {
    Replay::Generation g;
    g.loadMs = 14000;
    g.latencyMs = 18000;
    r.attempt(t, g);
    r.memory(t, 20 * kGiB, 0, "ok");
    r.runner(t, 8, "false");
  }
  auto f = r.diagnose(600s);
  INFO(r.dump());
  CHECK(verdict(f, "cold_start") == "cause");
  CHECK(f["cold_start"]["evidence"]["reloads"].get<int>() >= 9);
  CHECK(f["cold_start"]["evidence"]["median_load_duration_ms"] == 14000);
  CHECK(causes(f) == 1);
}

TEST_CASE("diagnosis: the incident's memory gradient is named memory pressure, and only that", "[diagnosis]") {
  Replay r;
  r.healthy(0s, 300s);
  // Free memory falls 40x, swap-outs climb, the policy paused the run.
  std::uint64_t freeBytes = 20 * kGiB, swap = 0;
  for (auto t = 305s; t < 600s; t += 5s) {
    freeBytes = std::max<std::uint64_t>(freeBytes * 8 / 10, kGiB / 2);
    swap += 300ull * 1024 * 1024;
    r.memory(t, freeBytes, swap, freeBytes <= kGiB ? "critical" : "warn");
    r.runner(t, 8, "false");
  }
  r.event(420s, "memory_pressure", {{"reason", "memory_pressure"}});
  for (auto t = 310s; t < 420s; t += 10s) {
    Replay::Generation g;
    g.latencyMs = 9000;  // slower, but warm and generating at its usual rate
    r.attempt(t, g);
  }
  auto f = r.diagnose(600s);
  INFO(r.dump());
  CHECK(verdict(f, "memory_pressure") == "cause");
  CHECK(f["memory_pressure"]["evidence"]["free_drop_factor"].get<double>() >= 10);
  CHECK(f["memory_pressure"]["evidence"]["swapouts_bytes_delta"].get<std::uint64_t>() > 0);
  CHECK(verdict(f, "cold_start") == "not_cause");
  CHECK(causes(f) == 1);
}

TEST_CASE("diagnosis: warm generation several times slower than baseline is named CPU spill from the rows alone",
          "[diagnosis]") {
  Replay r;
  r.healthy(0s, 300s);
  // Flash attention falls back to the CPU: same tokens, 8x the eval time, runner CPU high.
  for (auto t = 330s; t < 600s; t += 30s) {
    Replay::Generation g;
    g.evalMs = 31000;
    g.latencyMs = 31200;
    r.attempt(t, g);
    r.memory(t, 20 * kGiB, 0, "ok");
    r.runner(t, 780, "true");
  }
  auto f = r.diagnose(600s);
  INFO(r.dump());
  CHECK(verdict(f, "cpu_spill") == "cause");
  CHECK(f["cpu_spill"]["evidence"]["suspected_events"] == 0);  // no policy event needed
  CHECK(f["cpu_spill"]["evidence"]["attempts_below_baseline_over_factor"] == 9);
  CHECK(f["cpu_spill"]["evidence"]["flash_attention"] == "true");
  CHECK(f["cpu_spill"]["evidence"]["runner_cpu_pct_max"] == 780);
  CHECK(verdict(f, "cold_start") == "not_cause");  // the model stayed warm
  CHECK(causes(f) == 1);
}

TEST_CASE("diagnosis: a hung generation, an eviction stuck in Stopping and a kill are named the Stopping deadlock",
          "[diagnosis]") {
  Replay r;
  r.healthy(0s, 300s);
  Replay::Generation stalled;
  stalled.outcome = "stalled";
  stalled.latencyMs = 20000;
  stalled.loadMs.reset();
  for (auto t = 320s; t <= 360s; t += 20s) r.attempt(t, stalled);
  r.event(361s, "stall_detected", {{"streak", 3}});
  r.event(362s, "evict_requested", json::object());
  r.event(368s, "stopping_detected", {{"stopping_s", 6}});
  r.event(372s, "runner_killed", {{"pid", 4242}});
  // The report's recovery: the next trial reloads the model once, then it is warm again.
  Replay::Generation reload;
  reload.loadMs = 9000;
  reload.latencyMs = 13000;
  r.attempt(390s, reload);
  for (auto t = 400s; t < 600s; t += 10s) {
    r.attempt(t, Replay::Generation{});
    r.memory(t, 20 * kGiB, 0, "ok");
  }
  auto f = r.diagnose(600s);
  INFO(r.dump());
  CHECK(verdict(f, "stopping_deadlock") == "cause");
  CHECK(f["stopping_deadlock"]["evidence"]["runners_killed"] == 1);
  CHECK(f["stopping_deadlock"]["evidence"]["stalled_or_timed_out_attempts"] == 3);
  // The single reload after the kill was the recovery, not a cold-start problem: the slow
  // attempts that failed never measured a load.
  CHECK(verdict(f, "cold_start") != "cause");
  CHECK(f["cold_start"]["evidence"]["loads_after_unload"] == 1);
  CHECK(causes(f) == 1);
}
