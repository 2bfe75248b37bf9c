// Deadlock / "Stopping..." recovery: stall streak -> soft evict -> kill -9 -> confirm.
#include "catch.h"
#include "daemon/policy/recovery_policy.h"

#include <string>
#include <vector>

using namespace oasis;
using namespace oasis::policy;
#if __has_include(<catch2/catch_all.hpp>)
using Catch::Approx;  // Catch2 v3; v2 has Approx at global scope
#endif

namespace {

const SteadyTime kT0 = SteadyTime{} + std::chrono::hours(1000);
const WallTime kW0 = WallTime{} + std::chrono::hours(24 * 365 * 56);
const std::string kModel = "gemma4:e4b";

SteadyTime at(double s) {
  return kT0 + std::chrono::duration_cast<SteadyTime::duration>(Seconds{s});
}
WallTime wall(double s) {
  return kW0 + std::chrono::duration_cast<WallTime::duration>(Seconds{s});
}

// A ps poll at time t (steady and wall move together). expiresIn < 0 = "Stopping...".
PsObservation ps(double t, std::optional<double> expiresIn, bool ok = true) {
  PsObservation o;
  o.at = at(t);
  o.wallNow = wall(t);
  o.ok = ok;
  if (ok && expiresIn) {
    o.models.push_back({kModel, wall(t + *expiresIn), 5'000'000'000, 5'000'000'000});
  }
  return o;
}

AttemptOutcome attempt(AttemptResult r, double t) { return {kModel, r, at(t)}; }

template <typename T>
bool has(const Decision& d) {
  return d.count<T>() > 0;
}

// Drive a policy from Healthy into Evicting with a stall streak at t = 0..2.
Decision stallInto(RecoveryPolicy& p) {
  (void)p.onPs(ps(-1, 300));  // loaded, expiry 5 minutes out
  (void)p.onAttempt(attempt(AttemptResult::Stalled, 0));
  (void)p.onAttempt(attempt(AttemptResult::Timeout, 1));
  return p.onAttempt(attempt(AttemptResult::Stalled, 2));
}

}  // namespace

TEST_CASE("a stall streak pauses the model and soft-evicts it / a success resets the streak",
          "[policy][recovery]") {
  RecoveryPolicy p;  // threshold 3
  (void)p.onPs(ps(0, 300));
  CHECK(p.onAttempt(attempt(AttemptResult::Stalled, 1)).empty());
  CHECK(p.onAttempt(attempt(AttemptResult::Stalled, 2)).empty());
  CHECK(p.onAttempt(attempt(AttemptResult::Ok, 3)).empty());
  CHECK(p.onAttempt(attempt(AttemptResult::Stalled, 4)).empty());
  CHECK(p.onAttempt(attempt(AttemptResult::Timeout, 5)).empty());
  // Our own kills, crashes and HTTP errors neither count nor reset.
  CHECK(p.onAttempt(attempt(AttemptResult::Killed, 6)).empty());
  CHECK(p.onAttempt(attempt(AttemptResult::Interrupted, 6)).empty());
  CHECK(p.onAttempt(attempt(AttemptResult::HttpError, 6)).empty());
  CHECK(p.onAttempt(attempt(AttemptResult::ConnectionError, 6)).empty());
  CHECK(p.state(kModel) == ModelState::Healthy);

  Decision d = p.onAttempt(attempt(AttemptResult::Stalled, 7));
  REQUIRE(d.actions.size() == 2);
  CHECK(d.actions[0] == Action{PauseModel{kModel, PauseReason::Recovering}});
  CHECK(d.actions[1] == Action{SoftEvict{kModel}});
  REQUIRE(d.events.size() == 2);
  CHECK(d.events[0].kindName() == "stall_detected");
  CHECK(d.events[0].model == kModel);
  CHECK(d.events[0].detail["streak"] == 3);
  CHECK(d.events[0].detail["outcomes"] == nlohmann::json({"stalled", "timeout", "stalled"}));
  CHECK(d.events[1].kindName() == "evict_requested");
  CHECK(p.state(kModel) == ModelState::Evicting);
  // More stalls while recovering change nothing.
  CHECK(p.onAttempt(attempt(AttemptResult::Stalled, 8)).empty());
}

TEST_CASE("Stopping... without progress: kill -9 within grace + one ps interval, confirm, resume",
          "[policy][recovery]") {
  RecoveryPolicy p;  // grace 10 s
  REQUIRE(has<SoftEvict>(stallInto(p)));
  const double psInterval = 2;
  std::optional<double> killAt;
  double firstStopping = 4;
  for (double t = firstStopping; t < 40 && !killAt; t += psInterval) {
    // After keep_alive:0, expires_at = the moment of the request: in the past from now on.
    Decision d = p.onPs(ps(t, 2 - t));
    if (has<KillRunner>(d)) {
      killAt = t;
      REQUIRE(d.actions.size() == 1);
      CHECK(d.actions[0] == Action{KillRunner{kModel}});
      REQUIRE(d.events.size() == 1);
      CHECK(d.events[0].kindName() == "stopping_detected");
      CHECK(d.events[0].detail["stopping_for_s"].get<double>() >= 10.0);
      CHECK(d.events[0].detail["last_token_age_s"].is_null());
      CHECK(d.events[0].detail["expires_at"].is_string());
    } else {
      CHECK(d.empty());
    }
  }
  REQUIRE(killAt);
  CHECK(*killAt - firstStopping >= 10.0);
  CHECK(*killAt - firstStopping <= 10.0 + psInterval);
  CHECK(p.state(kModel) == ModelState::Killing);

  Decision killed = p.onKillResult({kModel, true, 4242, "", at(*killAt + 0.1)});
  REQUIRE(killed.events.size() == 1);
  CHECK(killed.events[0].kindName() == "runner_killed");
  CHECK(killed.events[0].detail["pid"] == 4242);
  CHECK(killed.actions.empty());
  CHECK(p.state(kModel) == ModelState::Confirming);

  // Still listed on the next poll, gone on the one after.
  CHECK(p.onPs(ps(*killAt + 2, -20)).empty());
  Decision gone = p.onPs(ps(*killAt + 4, std::nullopt));
  REQUIRE(gone.actions.size() == 1);
  CHECK(gone.actions[0] == Action{ResumeModel{kModel, PauseReason::Recovering}});
  REQUIRE(gone.events.size() == 1);
  CHECK(gone.events[0].kindName() == "model_recovered");
  CHECK(gone.events[0].detail["via"] == "runner_killed");
  CHECK(p.state(kModel) == ModelState::Healthy);
  // The streak starts afresh.
  CHECK(p.onAttempt(attempt(AttemptResult::Stalled, 100)).empty());
}

TEST_CASE("false-positive guard: a long request still streaming tokens is never killed",
          "[policy][recovery]") {
  RecoveryPolicy p;
  SECTION("healthy model past its previous idle expiry") {
    // ps shows "Stopping..." for ten minutes: the request outlived the last expires_at.
    for (double t = 0; t < 600; t += 1) {
      (void)p.onProgress({kModel, at(t)});
      if (static_cast<int>(t) % 2 == 0) CHECK(p.onPs(ps(t, -100 - t)).empty());
      CHECK(p.tick(at(t)).empty());
    }
    CHECK(p.stoppingForSec(kModel, at(598)) == Approx(598));
    // Even with no tokens at all, Healthy never kills on ps alone.
    for (double t = 600; t < 700; t += 2) CHECK(p.onPs(ps(t, -100 - t)).empty());
    CHECK(p.state(kModel) == ModelState::Healthy);
  }
  SECTION("evicted while a request streams: wait for it, then the model unloads") {
    (void)p.onPs(ps(0, 300));
    Decision d = p.requestEvict(kModel, EvictSource::Api, at(1));
    CHECK(has<PauseModel>(d));
    CHECK(has<SoftEvict>(d));
    for (double t = 2; t < 300; t += 1) {
      (void)p.onProgress({kModel, at(t - 0.5)});
      if (static_cast<int>(t) % 2 == 0) {
        Decision dd = p.onPs(ps(t, 1 - t));
        CHECK_FALSE(has<KillRunner>(dd));
      }
    }
    CHECK(p.state(kModel) == ModelState::Evicting);
    Decision done = p.onPs(ps(300, std::nullopt));
    CHECK(has<ResumeModel>(done));
    CHECK(done.events.at(0).detail["via"] == "unloaded");
    CHECK(p.state(kModel) == ModelState::Healthy);
  }
  SECTION("tokens stop: killed once the grace has passed since the last token") {
    (void)p.onPs(ps(0, 300));
    (void)p.requestEvict(kModel, EvictSource::Client, at(1));
    CHECK(p.state(kModel) == ModelState::Evicting);
    for (double t = 2; t <= 60; t += 1) (void)p.onProgress({kModel, at(t)});
    std::optional<double> killAt;
    for (double t = 62; t < 120 && !killAt; t += 2) {
      if (has<KillRunner>(p.onPs(ps(t, 1 - t)))) killAt = t;
    }
    REQUIRE(killAt);
    CHECK(*killAt >= 70);  // last token at 60, grace 10
    CHECK(*killAt <= 72);
  }
}

TEST_CASE("escalation: managed restarts serve, attach only reports", "[policy][recovery]") {
  for (ServerMode mode : {ServerMode::Managed, ServerMode::Attach}) {
    CAPTURE(toString(mode));
    RecoveryConfig c;
    c.mode = mode;
    RecoveryPolicy p(c);
    (void)stallInto(p);
    for (double t = 4; t <= 16; t += 2) (void)p.onPs(ps(t, 2 - t));
    REQUIRE(p.state(kModel) == ModelState::Killing);
    (void)p.onKillResult({kModel, true, 99, "", at(16.5)});
    REQUIRE(p.state(kModel) == ModelState::Confirming);
    Decision d;
    for (double t = 18; t <= 60 && d.empty(); t += 2) d = p.onPs(ps(t, 2 - t));
    CHECK(p.state(kModel) == ModelState::Escalated);
    REQUIRE(d.events.size() == 1);
    CHECK(d.events[0].kindName() == "recovery_escalated");
    if (mode == ServerMode::Managed) {
      REQUIRE(d.actions.size() == 1);
      CHECK(std::holds_alternative<RestartServer>(d.actions[0]));
      CHECK(d.events[0].detail["action"] == "restart_server");
    } else {
      CHECK(d.actions.empty());
      CHECK(d.events[0].detail["action"] == "report");
    }
    // The model stays paused until it leaves ps (or serve restarts).
    CHECK(p.onPs(ps(70, -68)).empty());
    Decision back = p.onServerRestarted(at(80));
    CHECK(has<ResumeModel>(back));
    CHECK(p.state(kModel) == ModelState::Healthy);
  }
}

TEST_CASE("a runner with no known pid, a failed kill, or an unanswered kill escalates",
          "[policy][recovery]") {
  SECTION("pid reported unknown") {
    RecoveryPolicy p;
    (void)p.onRunnerInfo({kModel, std::nullopt, at(0)});
    (void)stallInto(p);
    Decision d;
    for (double t = 4; t <= 20 && d.empty(); t += 2) d = p.onPs(ps(t, 2 - t));
    CHECK_FALSE(has<KillRunner>(d));
    CHECK(has<RestartServer>(d));
    CHECK(d.hasEvent(EventKind::StoppingDetected));
    CHECK(d.hasEvent(EventKind::RecoveryEscalated));
    CHECK(p.state(kModel) == ModelState::Escalated);
  }
  SECTION("kill refused by effects (identity changed)") {
    RecoveryPolicy p;
    (void)p.onRunnerInfo({kModel, 1234, at(0)});
    (void)stallInto(p);
    for (double t = 4; t <= 16; t += 2) (void)p.onPs(ps(t, 2 - t));
    REQUIRE(p.state(kModel) == ModelState::Killing);
    Decision d = p.onKillResult({kModel, false, 1234, "identity changed", at(17)});
    CHECK_FALSE(d.hasEvent(EventKind::RunnerKilled));
    CHECK(has<RestartServer>(d));
    CHECK(d.events.back().detail["why"].get<std::string>().find("identity changed") !=
          std::string::npos);
  }
  SECTION("no answer from effects within killTimeout") {
    RecoveryPolicy p;  // killTimeout 15 s
    (void)stallInto(p);
    for (double t = 4; t <= 16; t += 2) (void)p.onPs(ps(t, 2 - t));
    REQUIRE(p.state(kModel) == ModelState::Killing);
    CHECK(p.tick(at(28)).empty());  // killed at t = 14
    CHECK(has<RestartServer>(p.tick(at(29.5))));
  }
  SECTION("kill failed because the runner was already gone: recovered, not escalated") {
    RecoveryPolicy p;
    (void)stallInto(p);
    for (double t = 4; t <= 16; t += 2) (void)p.onPs(ps(t, 2 - t));
    CHECK(p.onPs(ps(17, std::nullopt)).empty());  // Killing waits for the result
    Decision d = p.onKillResult({kModel, false, std::nullopt, "no such process", at(18)});
    CHECK(has<ResumeModel>(d));
    CHECK_FALSE(has<RestartServer>(d));
  }
}

TEST_CASE("evict that does not take is re-sent at a bounded rate", "[policy][recovery]") {
  RecoveryPolicy p;  // evictRetryAfter 10 s
  (void)stallInto(p);  // SoftEvict at t = 2
  int evicts = 0;
  for (double t = 4; t <= 40; t += 2) {
    // ps keeps showing a future expiry (keep_alive:0 arrived during a cold load).
    Decision d = p.onPs(ps(t, 300));
    evicts += static_cast<int>(d.count<SoftEvict>());
    CHECK_FALSE(has<KillRunner>(d));
  }
  CHECK(evicts == 3);  // t = 12, 22, 32
  CHECK(p.record(kModel)->evictsSent == 4);
}

TEST_CASE("ps unanswered while evicting, with no progress, kills the runner",
          "[policy][recovery]") {
  RecoveryPolicy p;
  (void)stallInto(p);
  std::optional<double> killAt;
  for (double t = 4; t <= 30 && !killAt; t += 2) {
    if (has<KillRunner>(p.onPs(ps(t, std::nullopt, false)))) killAt = t;
  }
  REQUIRE(killAt);
  CHECK(*killAt == Approx(14));
}

TEST_CASE("manual evict and kill requests", "[policy][recovery]") {
  RecoveryPolicy p;
  SECTION("evict of an unloaded model passes the request on and watches nothing") {
    Decision d = p.requestEvict(kModel, EvictSource::Api, at(0));
    REQUIRE(d.actions.size() == 1);
    CHECK(d.actions[0] == Action{SoftEvict{kModel}});
    CHECK(d.events.at(0).detail["loaded"] == false);
    CHECK(p.state(kModel) == ModelState::Healthy);
    CHECK(p.requestEvict(kModel, EvictSource::Client, at(1)).empty());
  }
  SECTION("evict of every loaded model") {
    PsObservation o = ps(0, 300);
    o.models.push_back({"qwen3:8b", wall(300), 1, 1});
    (void)p.onPs(o);
    Decision d = p.requestEvict(std::nullopt, EvictSource::Api, at(1));
    CHECK(d.count<SoftEvict>() == 2);
    CHECK(d.count<PauseModel>() == 2);
  }
  SECTION("a client's passthrough unload is watched but not re-sent") {
    (void)p.onPs(ps(0, 300));
    Decision d = p.requestEvict(kModel, EvictSource::Client, at(1));
    CHECK(has<PauseModel>(d));
    CHECK_FALSE(has<SoftEvict>(d));
    CHECK(d.events.at(0).detail["source"] == "client");
  }
  SECTION("kill of a loaded model pauses it and kills; nothing loaded, nothing to kill") {
    CHECK(p.requestKill(kModel, at(0)).empty());
    (void)p.onPs(ps(1, 300));
    Decision d = p.requestKill(kModel, at(2));
    REQUIRE(d.actions.size() == 2);
    CHECK(d.actions[0] == Action{PauseModel{kModel, PauseReason::Recovering}});
    CHECK(d.actions[1] == Action{KillRunner{kModel}});
    CHECK(p.state(kModel) == ModelState::Killing);
    CHECK(p.requestKill(kModel, at(3)).empty());  // already killing
  }
}

// Every (state, input) pair: the table of resulting states. Inputs are taken at t = 0 on a
// record that is loaded, has looked "Stopping..." for 100 s and entered its state 1 s ago.
TEST_CASE("transition table covers every state and input", "[policy][recovery]") {
  using S = ModelState;
  const std::vector<S> states = {S::Healthy, S::Evicting, S::Killing, S::Confirming, S::Escalated};
  struct Row {
    std::string name;
    ModelInput input;
    std::vector<S> expected;  // per state, in the order above
  };
  PsSighting absent{at(0), wall(0), true, std::nullopt};
  PsSighting failed{at(0), wall(0), false, std::nullopt};
  PsSighting stopping{at(0), wall(0), true, PsModel{kModel, wall(-100), 1, 1}};
  const std::vector<Row> rows = {
      {"stalled attempt", AttemptOutcome{kModel, AttemptResult::Stalled, at(0)},
       {S::Healthy, S::Evicting, S::Killing, S::Confirming, S::Escalated}},
      {"ok attempt", AttemptOutcome{kModel, AttemptResult::Ok, at(0)},
       {S::Healthy, S::Evicting, S::Killing, S::Confirming, S::Escalated}},
      {"token", TokenProgress{kModel, at(0)},
       {S::Healthy, S::Evicting, S::Killing, S::Confirming, S::Escalated}},
      {"ps absent", absent, {S::Healthy, S::Healthy, S::Killing, S::Healthy, S::Healthy}},
      {"ps failed", failed, {S::Healthy, S::Evicting, S::Killing, S::Confirming, S::Escalated}},
      {"ps stopping", stopping,
       {S::Healthy, S::Killing, S::Killing, S::Confirming, S::Escalated}},
      {"runner info", RunnerInfo{kModel, 7, at(0)},
       {S::Healthy, S::Evicting, S::Killing, S::Confirming, S::Escalated}},
      {"kill ok", KillResult{kModel, true, 7, "", at(0)},
       {S::Healthy, S::Evicting, S::Confirming, S::Confirming, S::Escalated}},
      {"kill failed", KillResult{kModel, false, 7, "EPERM", at(0)},
       {S::Healthy, S::Evicting, S::Escalated, S::Confirming, S::Escalated}},
      {"api evict", EvictRequest{kModel, EvictSource::Api, at(0)},
       {S::Evicting, S::Evicting, S::Killing, S::Confirming, S::Escalated}},
      {"kill request", KillRequest{kModel, at(0)},
       {S::Killing, S::Killing, S::Killing, S::Confirming, S::Killing}},
      {"server restarted", ServerRestarted{at(0)},
       {S::Healthy, S::Healthy, S::Healthy, S::Healthy, S::Healthy}},
      {"tick", Tick{at(0)}, {S::Healthy, S::Evicting, S::Killing, S::Confirming, S::Escalated}},
      {"tick late", Tick{at(100)},
       {S::Healthy, S::Evicting, S::Escalated, S::Escalated, S::Escalated}},
  };
  RecoveryConfig config;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < states.size(); ++i) {
      CAPTURE(row.name, toString(states[i]));
      ModelRecovery m;
      m.model = kModel;
      m.state = states[i];
      m.stateSince = at(-1);
      m.recoveryStarted = at(-50);
      m.inPs = true;
      m.expiresAt = wall(-100);
      m.stoppingSince = at(-100);
      m.lastEvictAt = at(-50);
      Decision d = transition(m, row.input, config);
      CHECK(m.state == row.expected[i]);
      // Leaving a recovery always resumes the model; entering one always pauses it.
      bool left = states[i] != S::Healthy && m.state == S::Healthy;
      bool entered = states[i] == S::Healthy && m.state != S::Healthy;
      CHECK(has<ResumeModel>(d) == left);
      CHECK(has<PauseModel>(d) == entered);
    }
  }
}

TEST_CASE("attempt outcome names round-trip", "[policy][recovery]") {
  for (auto name : {"ok", "timeout", "stalled", "http_error", "connection_error", "killed",
                    "interrupted"}) {
    auto r = parseAttemptResult(name);
    REQUIRE(r);
    CHECK(toString(*r) == name);
  }
  CHECK_FALSE(parseAttemptResult("stuck"));
}
