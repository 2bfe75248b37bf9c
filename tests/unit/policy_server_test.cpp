// Server health policy: restart with backoff, terminal failure, attach mode never restarts.
#include "catch.h"
#include "daemon/policy/server_policy.h"

using namespace oasis;
using namespace oasis::policy;
#if __has_include(<catch2/catch_all.hpp>)
using Catch::Approx;  // Catch2 v3; v2 has Approx at global scope
#endif

namespace {

const SteadyTime kT0 = SteadyTime{} + std::chrono::hours(1000);
SteadyTime at(double s) {
  return kT0 + std::chrono::duration_cast<SteadyTime::duration>(Seconds{s});
}

template <typename T>
bool has(const Decision& d) {
  return d.count<T>() > 0;
}

// Managed serve launched and healthy at time t.
void bringUp(ServerPolicy& p, double t) {
  (void)p.onLaunched(100, at(t));
  (void)p.onHealth(true, at(t + 0.1));
  REQUIRE(p.up());
}

}  // namespace

TEST_CASE("restart delay: first immediate, then doubling to the cap", "[policy][server]") {
  BackoffConfig b{Seconds{1.0}, Seconds{60.0}};
  CHECK(restartDelay(0, b).count() == 0.0);
  CHECK(restartDelay(1, b).count() == 0.0);
  CHECK(restartDelay(2, b).count() == 1.0);
  CHECK(restartDelay(3, b).count() == 2.0);
  CHECK(restartDelay(4, b).count() == 4.0);
  CHECK(restartDelay(7, b).count() == 32.0);
  CHECK(restartDelay(8, b).count() == 60.0);
  CHECK(restartDelay(1000, b).count() == 60.0);  // no overflow
  BackoffConfig half{Seconds{0.5}, Seconds{3.0}};
  CHECK(restartDelay(3, half).count() == 1.0);
  CHECK(restartDelay(5, half).count() == 3.0);
}

TEST_CASE("managed: start, healthy resume, crash loop with backoff, then failed",
          "[policy][server]") {
  ServerPolicyConfig c;  // maxFastFailures 5, backoff 1 s .. 60 s
  ServerPolicy p(c);
  Decision d = p.start(at(0));
  REQUIRE(d.actions.size() == 2);
  CHECK(d.actions[0] == Action{Pause{PauseReason::ServerDown}});
  CHECK(std::holds_alternative<StartServer>(d.actions[1]));
  CHECK(p.start(at(0)).empty());  // only once

  d = p.onLaunched(100, at(0.5));
  REQUIRE(d.events.size() == 1);
  CHECK(d.events[0].kindName() == "server_started");
  CHECK(d.actions.empty());  // dispatch waits for HEAD /
  d = p.onHealth(true, at(1));
  CHECK(d.actions == std::vector<Action>{Resume{PauseReason::ServerDown}});
  CHECK(p.up());

  // Crash 1: immediate relaunch.
  d = p.onExit(1, std::nullopt, at(5));
  CHECK(d.hasEvent(EventKind::ServerExited));
  CHECK(d.events[0].detail["exit_code"] == 1);
  CHECK(d.events[0].detail["uptime_s"].get<double>() == Approx(4.5));
  CHECK(has<Pause>(d));
  CHECK(has<StartServer>(d));
  d = p.onLaunched(101, at(5.2));
  REQUIRE(d.events.size() == 1);
  CHECK(d.events[0].kindName() == "server_restarted");
  CHECK(d.events[0].detail["restarts"] == 1);
  CHECK(p.restarts() == 1);

  // Crash 2: wait 1 s; crash 3: 2 s; crash 4: 4 s.
  double t = 6;
  for (double expectedDelay : {1.0, 2.0, 4.0}) {
    CAPTURE(expectedDelay);
    d = p.onExit(std::nullopt, 9, at(t));
    CHECK_FALSE(has<StartServer>(d));
    CHECK(p.state() == ServerState::Waiting);
    CHECK(p.tick(at(t + expectedDelay - 0.01)).empty());
    d = p.tick(at(t + expectedDelay));
    CHECK(has<StartServer>(d));
    t += expectedDelay;
    (void)p.onLaunched(102, at(t));
    t += 0.5;
  }
  // Crash 5 = maxFastFailures: give up.
  d = p.onExit(1, std::nullopt, at(t));
  CHECK(has<MarkFailed>(d));
  CHECK(d.hasEvent(EventKind::ServerFailed));
  CHECK_FALSE(has<StartServer>(d));
  CHECK(p.failed());
  CHECK(p.tick(at(t + 1000)).empty());
  CHECK(p.onLaunched(1, at(t + 1001)).empty());
  // Operator reset: a fresh start.
  d = p.resetFailed(at(t + 2000));
  CHECK(has<StartServer>(d));
  CHECK(p.consecutiveFailures() == 0);
}

TEST_CASE("managed: a long healthy run resets the backoff", "[policy][server]") {
  ServerPolicy p;  // healthyResetAfter 120 s
  (void)p.start(at(0));
  bringUp(p, 0);
  (void)p.onExit(1, std::nullopt, at(10));  // failure 1: immediate
  bringUp(p, 10);
  (void)p.onExit(1, std::nullopt, at(20));  // failure 2: 1 s
  CHECK(p.state() == ServerState::Waiting);
  (void)p.tick(at(21));
  bringUp(p, 21);
  CHECK(p.consecutiveFailures() == 2);
  for (double t = 22; t <= 150; t += 1) {
    (void)p.onHealth(true, at(t));
    (void)p.onPs(true, at(t));
    (void)p.tick(at(t));
  }
  CHECK(p.consecutiveFailures() == 0);
  Decision d = p.onExit(1, std::nullopt, at(151));
  CHECK(has<StartServer>(d));  // immediate again
}

TEST_CASE("managed: wedged scheduler (ps timeouts) restarts serve / HEAD failures too",
          "[policy][server]") {
  SECTION("ps") {
    ServerPolicy p;  // 3 ps failures
    (void)p.start(at(0));
    bringUp(p, 0);
    CHECK(p.onPs(false, at(2)).empty());
    CHECK(p.onPs(false, at(4)).empty());
    CHECK(p.onPs(true, at(6)).empty());  // resets the count
    CHECK(p.onPs(false, at(8)).empty());
    CHECK(p.onPs(false, at(10)).empty());
    Decision d = p.onPs(false, at(12));
    CHECK(has<RestartServer>(d));  // the process is alive: stop it first
    CHECK_FALSE(has<StartServer>(d));
    CHECK(has<Pause>(d));
    CHECK(d.hasEvent(EventKind::ServerUnhealthy));
  }
  SECTION("HEAD /") {
    ServerPolicy p;
    (void)p.start(at(0));
    bringUp(p, 0);
    CHECK(p.onHealth(false, at(2)).empty());
    CHECK(p.onHealth(false, at(4)).empty());
    CHECK(has<RestartServer>(p.onHealth(false, at(6))));
  }
  SECTION("recovery escalation is routed through requestRestart") {
    ServerPolicy p;
    (void)p.start(at(0));
    bringUp(p, 0);
    Decision d = p.requestRestart("runner for gemma4:e4b did not leave ps", at(5));
    CHECK(has<RestartServer>(d));
    CHECK(p.requestRestart("again", at(5.1)).empty());  // already restarting
  }
  SECTION("a pending (backed-off) restart is cancelled if the server answers again") {
    ServerPolicy p;
    (void)p.start(at(0));
    bringUp(p, 0);
    (void)p.onExit(1, std::nullopt, at(1));  // failure 1
    bringUp(p, 1);
    for (double t = 2; t <= 6; t += 2) (void)p.onPs(false, at(t));  // failure 2: waits 1 s
    CHECK(p.state() == ServerState::Waiting);
    (void)p.onHealth(true, at(6.2));
    Decision d = p.onPs(true, at(6.4));
    CHECK(p.state() == ServerState::Up);
    CHECK(has<Resume>(d));
    CHECK(p.tick(at(10)).empty());
  }
}

TEST_CASE("attach mode never starts or restarts serve / it reports and pauses",
          "[policy][server]") {
  ServerPolicyConfig c;
  c.mode = ServerMode::Attach;
  ServerPolicy p(c);
  std::vector<Decision> all;
  auto feed = [&](Decision d) {
    all.push_back(d);
    return d;
  };
  Decision d = feed(p.start(at(0)));
  CHECK(d.actions == std::vector<Action>{Pause{PauseReason::ServerDown}});
  feed(p.onLaunched(555, at(0.1)));
  d = feed(p.onHealth(true, at(0.2)));
  CHECK(d.actions == std::vector<Action>{Resume{PauseReason::ServerDown}});
  // Wedged scheduler: report + pause, then recover when ps answers again.
  for (double t = 1; t <= 5; t += 1) feed(p.onPs(false, at(t)));
  CHECK(p.state() == ServerState::Up);
  d = feed(p.onPs(true, at(6)));
  CHECK(has<Resume>(d));
  CHECK(d.hasEvent(EventKind::ServerHealthy));
  // HEAD failures and an exit.
  for (double t = 7; t <= 12; t += 1) feed(p.onHealth(false, at(t)));
  CHECK(p.state() == ServerState::Down);
  feed(p.onHealth(true, at(13)));
  CHECK(p.state() == ServerState::Up);
  d = feed(p.onExit(0, std::nullopt, at(14)));
  CHECK(d.hasEvent(EventKind::ServerExited));
  CHECK(has<Pause>(d));
  for (double t = 15; t < 600; t += 1) feed(p.tick(at(t)));
  d = feed(p.requestRestart("runner wedged", at(600)));
  CHECK(d.hasEvent(EventKind::ServerUnhealthy));
  d = feed(p.onLaunched(777, at(700)));
  CHECK(d.hasEvent(EventKind::ServerRestarted));
  CHECK(d.events[0].detail["reason"] == "external");
  d = feed(p.onHealth(true, at(701)));
  CHECK(has<Resume>(d));

  int pauses = 0, resumes = 0, unhealthy = 0;
  for (const auto& dd : all) {
    CHECK(dd.count<StartServer>() == 0);
    CHECK(dd.count<RestartServer>() == 0);
    CHECK(dd.count<MarkFailed>() == 0);
    pauses += static_cast<int>(dd.count<Pause>());
    resumes += static_cast<int>(dd.count<Resume>());
    for (const auto& e : dd.events) unhealthy += e.kind == EventKind::ServerUnhealthy ? 1 : 0;
  }
  CHECK(pauses == resumes);  // every pause was matched by a resume: no flapping pairs left
  CHECK(pauses == 4);        // start, ps wedge, HEAD failures, exit
  CHECK(unhealthy == 3);     // ps wedge, HEAD failures, the escalation report
}

TEST_CASE("managed: a serve that never answers is restarted after start_timeout_s, not after 3 checks",
          "[policy][server]") {
  ServerPolicyConfig c;
  c.startTimeout = Seconds{30.0};
  ServerPolicy p(c);
  (void)p.start(at(0));
  (void)p.onLaunched(100, at(0.1));
  // A slow start: HEAD / fails for a while, but that is not yet a failure.
  for (double t = 1; t < 30; t += 1) {
    CHECK(p.onHealth(false, at(t)).empty());
    CHECK(p.tick(at(t + 0.5)).empty());
  }
  CHECK(p.state() == ServerState::Up);
  CHECK_FALSE(p.up());
  Decision d = p.tick(at(30.2));
  CHECK(has<RestartServer>(d));  // the process is alive: stop it, then launch again
  REQUIRE(d.hasEvent(EventKind::ServerUnhealthy));
  CHECK(p.consecutiveFailures() == 1);

  // The relaunched serve answers in time: it is up, and later failed checks count again.
  (void)p.onLaunched(101, at(31));
  (void)p.onHealth(true, at(33));
  CHECK(p.up());
  CHECK(p.tick(at(100)).empty());
  CHECK(p.onHealth(false, at(101)).empty());
  CHECK(p.onHealth(false, at(102)).empty());
  Decision again = p.onHealth(false, at(103));
  CHECK(again.hasEvent(EventKind::ServerUnhealthy));
  CHECK(p.state() == ServerState::Waiting);  // second failure in a row: relaunch after backoff
}
