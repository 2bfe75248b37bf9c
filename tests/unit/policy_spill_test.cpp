// CPU spill detector: eval-rate drop against the model's own baseline while ps says 100% GPU.
#include "catch.h"
#include "daemon/policy/spill_policy.h"

using namespace oasis;
using namespace oasis::policy;
#if __has_include(<catch2/catch_all.hpp>)
using Catch::Approx;  // Catch2 v3; v2 has Approx at global scope
#endif

namespace {

const SteadyTime kT0 = SteadyTime{} + std::chrono::hours(1000);
const std::string kModel = "gemma4:e4b";

PsObservation psWith(std::uint64_t size, std::uint64_t vram) {
  PsObservation o;
  o.at = kT0;
  o.models.push_back({kModel, WallTime{}, vram, size});
  return o;
}

// An attempt that generated 200 tokens at `rate` tokens/s.
EvalSample sample(double rate, int i = 0) {
  EvalSample s;
  s.model = kModel;
  s.at = kT0 + std::chrono::seconds(i);
  s.evalCount = 200;
  s.evalDuration = std::chrono::nanoseconds(static_cast<std::int64_t>(200.0 / rate * 1e9));
  return s;
}

int fired(SpillPolicy& p, std::initializer_list<double> rates) {
  int n = 0;
  for (double r : rates) n += p.onEval(sample(r)).hasEvent(EventKind::CpuSpillSuspected) ? 1 : 0;
  return n;
}

void learnBaseline(SpillPolicy& p) {
  // Median of 40, 42, 38, 41, 200 (one outlier) = 41.
  CHECK(fired(p, {40, 42, 38, 41, 200}) == 0);
  REQUIRE(p.baseline(kModel));
  CHECK(*p.baseline(kModel) == Approx(41));
}

}  // namespace

TEST_CASE("eval rate is tokens over eval seconds", "[policy][spill]") {
  EvalSample s;
  s.evalCount = 300;
  s.evalDuration = std::chrono::milliseconds(7500);
  CHECK(*evalRate(s) == Approx(40.0));
  s.evalDuration = std::chrono::nanoseconds(0);
  CHECK_FALSE(evalRate(s));
}

TEST_CASE("a sustained drop while ps says 100% GPU fires once per episode", "[policy][spill]") {
  SpillPolicy p;  // K 5, factor 3, M 3
  p.setFlashAttention(FlashAttentionSetting::On);
  p.onPs(psWith(5'000'000'000, 5'000'000'000));
  learnBaseline(p);

  // Two slow, one normal, two slow: never three in a row.
  CHECK(fired(p, {10, 11, 40, 9, 10}) == 0);
  Decision d = p.onEval(sample(10));
  REQUIRE(d.events.size() == 1);
  const PolicyEvent& e = d.events[0];
  CHECK(e.kindName() == "cpu_spill_suspected");
  CHECK(e.model == kModel);
  CHECK(e.detail["baseline_tokens_per_s"].get<double>() == Approx(41));
  CHECK(e.detail["current_tokens_per_s"].get<double>() == Approx(10));
  CHECK(e.detail["slowdown"].get<double>() == Approx(4.1));
  CHECK(e.detail["processor"] == "100% GPU");
  CHECK(e.detail["flash_attention"] == "on");
  CHECK(e.detail["runner_cpu_pct"].is_null());
  CHECK(e.detail["fix"] ==
        "set OLLAMA_FLASH_ATTENTION=0 and restart serve; oasisd does this in managed mode with "
        "ollama.flash_attention=auto");
  CHECK(p.suspected(kModel));

  // Same episode: no repeats, even hovering around the threshold.
  CHECK(fired(p, {10, 9, 14, 13, 15, 10, 10, 10}) == 0);
  // Recovery (>= half the baseline, 3 in a row) re-arms; a new episode fires again.
  CHECK(fired(p, {35, 38, 40}) == 0);
  CHECK_FALSE(p.suspected(kModel));
  CHECK(fired(p, {8, 8, 8}) == 1);
  // A relaunched runner re-arms too.
  p.resetModel(kModel);
  p.onPs(psWith(5'000'000'000, 5'000'000'000));
  CHECK(fired(p, {8, 8, 8}) == 1);
}

TEST_CASE("no spill suspicion without the 100% GPU claim or with an idle CPU",
          "[policy][spill]") {
  SECTION("partially offloaded: ps already admits the CPU share") {
    SpillPolicy p;
    p.onPs(psWith(5'000'000'000, 5'000'000'000));
    learnBaseline(p);
    p.onPs(psWith(5'000'000'000, 3'000'000'000));
    CHECK(fired(p, {5, 5, 5, 5, 5}) == 0);
  }
  SECTION("model not in ps: no evidence of the 100% GPU claim") {
    SpillPolicy p;
    learnBaseline(p);
    CHECK(fired(p, {5, 5, 5, 5}) == 0);
  }
  SECTION("runner CPU known and low") {
    SpillPolicy p;
    p.onPs(psWith(5'000'000'000, 5'000'000'000));
    learnBaseline(p);
    p.onRunnerCpu(kModel, 20.0);
    CHECK(fired(p, {5, 5, 5, 5}) == 0);
    p.onRunnerCpu(kModel, 380.0);
    Decision d = p.onEval(sample(5));
    CHECK(d.events.empty());  // the streak restarts with corroboration
    CHECK(fired(p, {5, 5}) == 1);
  }
  SECTION("short generations are not timed") {
    SpillPolicy p;
    p.onPs(psWith(5'000'000'000, 5'000'000'000));
    learnBaseline(p);
    EvalSample tiny = sample(1);
    tiny.evalCount = 3;
    tiny.evalDuration = std::chrono::seconds(3);
    for (int i = 0; i < 5; ++i) CHECK(p.onEval(tiny).empty());
  }
}

TEST_CASE("with flash attention already off the fix points elsewhere", "[policy][spill]") {
  SpillPolicy p;
  p.setFlashAttention(FlashAttentionSetting::Off);
  p.onPs(psWith(5'000'000'000, 5'000'000'000));
  learnBaseline(p);
  (void)p.onEval(sample(5));
  (void)p.onEval(sample(5));
  Decision d = p.onEval(sample(5));
  REQUIRE(d.events.size() == 1);
  CHECK(d.events[0].detail["flash_attention"] == "off");
  CHECK(d.events[0].detail["fix"].get<std::string>().find("already off") != std::string::npos);
}
