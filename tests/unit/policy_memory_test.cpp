// Memory pressure policy: replayed series on a fake timeline (no real time anywhere).
#include "catch.h"
#include "daemon/policy/memory_policy.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace oasis;
using namespace oasis::policy;
#if __has_include(<catch2/catch_all.hpp>)
using Catch::Approx;  // Catch2 v3; v2 has Approx at global scope
#endif

namespace {

constexpr std::uint64_t kGiB = 1ull << 30;
const SteadyTime kT0 = SteadyTime{} + std::chrono::hours(1000);

SteadyTime at(double seconds) {
  return kT0 + std::chrono::duration_cast<SteadyTime::duration>(Seconds{seconds});
}

MemoryObservation obs(double t, std::uint64_t available, std::uint64_t free,
                      std::uint64_t swapouts = 0, std::optional<int> osLevel = 1) {
  MemoryObservation o;
  o.at = at(t);
  o.totalBytes = 48 * kGiB;
  o.availableBytes = available;
  o.freeBytes = free;
  o.swapoutsCumulative = swapouts;
  o.osLevel = osLevel;
  return o;
}

struct Replay {
  int pauses = 0;
  int resumes = 0;
  int evictAlls = 0;
  std::optional<double> firstPauseAt;
  std::optional<std::uint64_t> freeAtPause;
  std::optional<double> firstResumeAt;
  std::vector<PolicyEvent> events;

  void feed(MemoryPolicy& p, const MemoryObservation& o, double t) {
    Decision d = p.observe(o);
    for (const auto& a : d.actions) {
      if (std::holds_alternative<Pause>(a)) {
        CHECK(std::get<Pause>(a).reason == PauseReason::MemoryPressure);
        ++pauses;
        if (!firstPauseAt) {
          firstPauseAt = t;
          freeAtPause = o.freeBytes;
        }
      } else if (std::holds_alternative<Resume>(a)) {
        CHECK(std::get<Resume>(a).reason == PauseReason::MemoryPressure);
        ++resumes;
        if (!firstResumeAt) firstResumeAt = t;
      } else if (std::holds_alternative<EvictAll>(a)) {
        ++evictAlls;
      }
    }
    for (auto& e : d.events) events.push_back(std::move(e));
  }
};

struct CsvRow {
  double t;
  MemoryObservation o;
};

std::vector<CsvRow> loadIncident() {
  std::ifstream in(std::string(OASIS_SOURCE_DIR) + "/tests/fixtures/policy/incident_memory.csv");
  REQUIRE(in.good());
  std::vector<CsvRow> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ss(line);
    std::string cell;
    std::vector<double> v;
    while (std::getline(ss, cell, ',')) v.push_back(std::stod(cell));
    REQUIRE(v.size() == 6);
    MemoryObservation o;
    o.totalBytes = static_cast<std::uint64_t>(v[1]);
    o.availableBytes = static_cast<std::uint64_t>(v[2]);
    o.freeBytes = static_cast<std::uint64_t>(v[3]);
    o.swapoutsCumulative = static_cast<std::uint64_t>(v[4]);
    o.osLevel = static_cast<int>(v[5]);
    rows.push_back({v[0], o});
  }
  REQUIRE(rows.size() > 200);
  return rows;
}

// Compress time by `k`: durations shrink by k, so byte rates grow by k.
MemoryPolicyConfig compressed(MemoryPolicyConfig c, double k) {
  c.window = Seconds{c.window.count() / k};
  c.resumeHold = Seconds{c.resumeHold.count() / k};
  c.rateWindow = Seconds{c.rateWindow.count() / k};
  c.minRateSpan = Seconds{c.minRateSpan.count() / k};
  c.swapoutPauseBytesPerSec = *c.swapoutPauseBytesPerSec * k;
  return c;
}

}  // namespace

TEST_CASE("incident gradient replay pauses long before the stall and resumes once",
          "[policy][memory]") {
  const auto rows = loadIncident();
  // The incident stalled at 228 MB free (t = 1500 s in the fixture).
  constexpr std::uint64_t kStallFree = 228'000'000;
  constexpr double kStallAt = 1500;

  for (double k : {1.0, 10.0}) {
    CAPTURE(k);
    MemoryPolicy policy(compressed({}, k));
    Replay r;
    for (const auto& row : rows) {
      MemoryObservation o = row.o;
      o.at = at(row.t / k);
      r.feed(policy, o, row.t);
    }
    REQUIRE(r.firstPauseAt);
    // Before the stall by a wide margin: at least 5 (uncompressed) minutes earlier, with
    // still several times the stall's free memory left.
    CHECK(*r.firstPauseAt <= kStallAt - 300);
    CHECK(*r.freeAtPause >= 4 * kStallFree);
    // Not during the healthy plateau.
    CHECK(*r.firstPauseAt > 600);
    CHECK(r.pauses == 1);
    CHECK(r.resumes == 1);
    REQUIRE(r.firstResumeAt);
    CHECK(*r.firstResumeAt > kStallAt);
    CHECK(r.evictAlls == 0);  // on_critical = pause

    REQUIRE(r.events.size() == 2);
    const PolicyEvent& pressure = r.events[0];
    CHECK(pressure.kindName() == "memory_pressure");
    CHECK(pressure.detail["level"] == "critical");
    CHECK(pressure.detail["action"] == "pause");
    CHECK(pressure.detail["free_drop_ratio"].get<double>() >= 10.0);
    CHECK(pressure.detail["swapouts_per_s"].get<double>() >= 4.0 * 1024 * 1024 * k);
    REQUIRE(!pressure.detail["reasons"].empty());
    std::string reason = pressure.detail["reasons"][0];
    CAPTURE(reason);
    CHECK(reason.find("free memory fell") != std::string::npos);
    CHECK(reason.find("swapping out") != std::string::npos);
    CHECK(r.events[1].kindName() == "memory_recovered");
    CHECK(r.events[1].detail["paused_for_s"].get<double>() > 0);
  }
}

TEST_CASE("the incident gradient with pause_and_evict also evicts", "[policy][memory]") {
  MemoryPolicyConfig c;
  c.onCritical = OnCritical::PauseAndEvict;
  MemoryPolicy policy(c);
  Replay r;
  for (const auto& row : loadIncident()) {
    MemoryObservation o = row.o;
    o.at = at(row.t);
    r.feed(policy, o, row.t);
  }
  CHECK(r.pauses == 1);
  CHECK(r.evictAlls == 1);
  REQUIRE(!r.events.empty());
  CHECK(r.events[0].detail["action"] == "pause_and_evict");
}

TEST_CASE("a low free snapshot on a machine with plenty available does not pause",
          "[policy][memory]") {
  MemoryPolicy policy;
  Replay r;
  SECTION("low from the first sample, for twenty minutes (macOS keeps free pages low)") {
    for (int t = 0; t <= 1200; ++t) r.feed(policy, obs(t, 30 * kGiB, 150'000'000), t);
    CHECK(policy.assessment().level == PressureLevel::Ok);
  }
  SECTION("one sudden dip of free pages, 140x, without swapping") {
    for (int t = 0; t <= 300; ++t) {
      std::uint64_t free = t == 150 ? 150'000'000 : 20 * kGiB;
      r.feed(policy, obs(t, 30 * kGiB, free), t);
      if (t == 150) {
        CHECK(policy.assessment().level == PressureLevel::Warn);
        CHECK(policy.assessment().freeDropRatio > 100);
      }
    }
  }
  SECTION("free falls 100x but swap stays quiet (file cache filling RAM)") {
    for (int t = 0; t <= 900; ++t) {
      auto free = static_cast<std::uint64_t>(20e9 * std::pow(100.0, -t / 900.0));
      r.feed(policy, obs(t, 30 * kGiB, free, 1000ull * t), t);
    }
    CHECK(policy.assessment().level == PressureLevel::Warn);
  }
  CHECK(r.pauses == 0);
  CHECK(r.events.empty());
}

TEST_CASE("a series oscillating around the thresholds does not flap", "[policy][memory]") {
  MemoryPolicy policy;  // pause below 2 GiB, resume above 4 GiB, hold 30 s
  Replay r;
  double t = 0;
  // Ten minutes around the pause floor: 1.9 / 2.1 GiB alternating every second.
  for (; t < 600; ++t) {
    std::uint64_t avail = (static_cast<int>(t) % 2 == 0) ? kGiB * 19 / 10 : kGiB * 21 / 10;
    r.feed(policy, obs(t, avail, kGiB / 2), t);
  }
  CHECK(r.pauses == 1);
  CHECK(r.resumes == 0);
  // Ten minutes around the resume level: 3.9 / 4.1 GiB. Never clear for 30 s in a row.
  for (; t < 1200; ++t) {
    std::uint64_t avail = (static_cast<int>(t) % 20 < 10) ? kGiB * 41 / 10 : kGiB * 39 / 10;
    r.feed(policy, obs(t, avail, kGiB), t);
  }
  CHECK(r.pauses == 1);
  CHECK(r.resumes == 0);
  CHECK(policy.paused());
  bool saysWhy = false;
  for (const auto& reason : policy.assessment().reasons) {
    saysWhy = saysWhy || reason.find("resume waits for available") != std::string::npos;
  }
  CHECK(saysWhy);
  // Steadily above the resume level: resumes after exactly the hold.
  const double clearFrom = t;
  for (; t < 1300; ++t) r.feed(policy, obs(t, 5 * kGiB, 2 * kGiB), t);
  CHECK(r.pauses == 1);
  CHECK(r.resumes == 1);
  REQUIRE(r.firstResumeAt);
  CHECK(*r.firstResumeAt == Approx(clearFrom + 30));
  CHECK_FALSE(policy.paused());
}

TEST_CASE("a single critical sample is confirmed before pausing", "[policy][memory]") {
  MemoryPolicy policy;  // criticalConfirmations = 2
  Replay r;
  r.feed(policy, obs(0, 20 * kGiB, 5 * kGiB), 0);
  r.feed(policy, obs(1, 20 * kGiB, 5 * kGiB, 0, 4), 1);  // OS critical, once
  CHECK(policy.assessment().level == PressureLevel::Critical);
  for (int t = 2; t <= 5; ++t) r.feed(policy, obs(t, 20 * kGiB, 5 * kGiB), t);
  r.feed(policy, obs(6, 20 * kGiB, 5 * kGiB, 0, 4), 6);  // the glitch has aged out
  CHECK(r.pauses == 0);
  r.feed(policy, obs(7, 20 * kGiB, 5 * kGiB, 0, 4), 7);
  CHECK(r.pauses == 1);
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].detail["os_level"] == 4);
}

TEST_CASE("swap-out rate: counter resets never give negative or inflated rates",
          "[policy][memory]") {
  MemoryPolicy policy;
  Replay r;
  std::uint64_t counter = 8'000'000'000;
  for (int t = 0; t <= 60; ++t) {
    counter += 100'000;  // 100 kB/s
    r.feed(policy, obs(t, 20 * kGiB, 5 * kGiB, counter), t);
  }
  CHECK(policy.assessment().swapoutsPerSec == Approx(100'000).epsilon(0.02));
  // Reboot / source switch: the counter starts again near zero.
  counter = 50'000;
  for (int t = 61; t <= 130; ++t) {
    r.feed(policy, obs(t, 20 * kGiB, 5 * kGiB, counter), t);
    CHECK(policy.assessment().swapoutsPerSec >= 0.0);
    CHECK(policy.assessment().swapoutsPerSec <= 100'000 * 1.05);
    counter += 100'000;
  }
  CHECK(r.pauses == 0);
  // resetWindow forgets the old source entirely.
  policy.resetWindow();
  CHECK(policy.windowSize() == 0);
  r.feed(policy, obs(131, 20 * kGiB, 5 * kGiB, 1), 131);
  CHECK(policy.assessment().swapoutsPerSec == 0.0);
}

TEST_CASE("heavy swapping alone warns / with little available it pauses", "[policy][memory]") {
  MemoryPolicy policy;
  Replay r;
  std::uint64_t counter = 0;
  for (int t = 0; t <= 120; ++t) {
    counter += 10ull << 20;  // 10 MiB/s
    r.feed(policy, obs(t, 20 * kGiB, 5 * kGiB, counter), t);
  }
  CHECK(policy.assessment().level == PressureLevel::Warn);
  CHECK(r.pauses == 0);
  for (int t = 121; t <= 130; ++t) {
    counter += 10ull << 20;
    r.feed(policy, obs(t, 3 * kGiB, kGiB, counter), t);  // inside the 2..4 GiB band
  }
  CHECK(r.pauses == 1);
  // Swap stops and memory comes back: resume needs the rate below half the threshold too.
  for (int t = 131; t <= 260; ++t) r.feed(policy, obs(t, 10 * kGiB, 4 * kGiB, counter), t);
  CHECK(r.resumes == 1);
  CHECK(*r.firstResumeAt > 131 + 30);
}

TEST_CASE("PSI and the available floor are level triggers", "[policy][memory]") {
  MemoryPolicy policy;
  Replay r;
  for (int t = 0; t < 5; ++t) {
    auto o = obs(t, 20 * kGiB, 5 * kGiB, 0, std::nullopt);
    o.psiSomeAvg10 = 55.0;
    r.feed(policy, o, t);
  }
  CHECK(r.pauses == 1);
  CHECK(policy.assessment().reasons.at(0).find("PSI") != std::string::npos);

  MemoryPolicy floor;
  Replay r2;
  for (int t = 0; t < 3; ++t) r2.feed(floor, obs(t, kGiB, kGiB / 2), t);
  CHECK(r2.pauses == 1);
  CHECK(floor.assessment().reasons.at(0).find("below the pause floor") != std::string::npos);
}

TEST_CASE("the window is bounded in time and in count", "[policy][memory]") {
  MemoryPolicyConfig c;
  c.maxSamples = 500;
  MemoryPolicy policy(c);
  for (int t = 0; t < 5000; ++t) (void)policy.observe(obs(t, 20 * kGiB, 5 * kGiB));
  CHECK(policy.windowSize() == 500);
  MemoryPolicy timeBound;
  for (int t = 0; t < 5000; t += 5) (void)timeBound.observe(obs(t, 20 * kGiB, 5 * kGiB));
  CHECK(timeBound.windowSize() == 181);  // 900 s / 5 s + the current sample
  // Out-of-order and duplicate samples are ignored.
  auto before = timeBound.windowSize();
  CHECK(timeBound.observe(obs(10, kGiB / 10, 1)).empty());
  CHECK(timeBound.windowSize() == before);
}

TEST_CASE("humanBytes formats binary units", "[policy][memory]") {
  CHECK(humanBytes(512) == "512 B");
  CHECK(humanBytes(228.0 * 1024 * 1024) == "228 MiB");
  CHECK(humanBytes(22.8 * 1024 * 1024 * 1024) == "22.8 GiB");
  CHECK(humanBytes(4.0 * 1024 * 1024) == "4.00 MiB");
}
