// Pause set, preflight, and the shared value types.
#include "catch.h"
#include "daemon/policy/pause_set.h"
#include "daemon/policy/preflight.h"
#include "daemon/policy/types.h"

using namespace oasis;
using namespace oasis::policy;

TEST_CASE("pause set: dispatch only when empty / API resume clears only manual",
          "[policy][pause]") {
  PauseSet s;
  CHECK(s.dispatchAllowed());
  CHECK(s.add(PauseReason::Manual));
  CHECK_FALSE(s.add(PauseReason::Manual));
  CHECK(s.add(PauseReason::MemoryPressure));
  CHECK_FALSE(s.dispatchAllowed());
  CHECK(s.reasonNames() == std::vector<std::string>{"manual", "memory_pressure"});

  CHECK(s.resumeManual());
  CHECK_FALSE(s.resumeManual());
  CHECK(s.contains(PauseReason::MemoryPressure));
  CHECK_FALSE(s.dispatchAllowed());  // memory pressure still holds the run
  CHECK(s.remove(PauseReason::MemoryPressure));
  CHECK(s.dispatchAllowed());

  // Per-model pauses gate only that model; API resume does not clear `recovering`.
  CHECK(s.addModel("gemma4:e4b", PauseReason::Recovering));
  CHECK(s.addModel("gemma4:e4b", PauseReason::Manual));
  CHECK(s.dispatchAllowed());
  CHECK_FALSE(s.dispatchAllowed("gemma4:e4b"));
  CHECK(s.dispatchAllowed("qwen3:8b"));
  CHECK(s.resumeManual());
  CHECK_FALSE(s.dispatchAllowed("gemma4:e4b"));
  CHECK(s.removeModel("gemma4:e4b", PauseReason::Recovering));
  CHECK(s.dispatchAllowed("gemma4:e4b"));
  CHECK(s.modelPauses().empty());
  // Global reasons gate every model.
  s.add(PauseReason::ServerDown);
  CHECK_FALSE(s.dispatchAllowed("qwen3:8b"));
}

TEST_CASE("pause set applies pause actions and reports paused/resumed once", "[policy][pause]") {
  PauseSet s;
  auto e = s.apply(Pause{PauseReason::ServerDown});
  REQUIRE(e.size() == 1);
  CHECK(e[0].kindName() == "paused");
  CHECK(e[0].detail["reason"] == "server_down");
  CHECK(e[0].detail["dispatch"] == false);
  CHECK(s.apply(Pause{PauseReason::ServerDown}).empty());
  e = s.apply(PauseModel{"m", PauseReason::Recovering});
  REQUIRE(e.size() == 1);
  CHECK(e[0].model == "m");
  e = s.apply(Resume{PauseReason::ServerDown});
  REQUIRE(e.size() == 1);
  CHECK(e[0].kindName() == "resumed");
  CHECK(e[0].detail["dispatch"] == true);
  CHECK(s.apply(Resume{PauseReason::ServerDown}).empty());
  CHECK(s.apply(ResumeModel{"m", PauseReason::Recovering}).size() == 1);
  CHECK(s.apply(KillRunner{"m"}).empty());
}

TEST_CASE("preflight per model with a default, block or warn", "[policy][preflight]") {
  PreflightConfig c;  // default 4 GiB, gemma4:e4b 8 GiB, block
  constexpr std::uint64_t kGiB = 1ull << 30;
  auto r = preflight(c, "gemma4:e4b", 6 * kGiB);
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.sufficient);
  CHECK(r.needBytes == 8 * kGiB);
  CHECK(r.availableBytes == 6 * kGiB);
  CHECK(r.message.find("short by 2.00 GiB") != std::string::npos);
  CHECK(r.message.find("blocked") != std::string::npos);
  auto j = r.toJson();
  CHECK(j["ok"] == false);
  CHECK(j["need_bytes"] == 8 * kGiB);

  Decision d = preflightDecision(r, c.mode);
  REQUIRE(d.events.size() == 1);
  CHECK(d.events[0].kindName() == "preflight_failed");
  CHECK(d.events[0].model == "gemma4:e4b");

  CHECK(preflight(c, "qwen3:8b", 6 * kGiB).ok);  // default 4 GiB
  CHECK(preflight(c, "qwen3:8b", 3 * kGiB).needBytes == 4 * kGiB);
  CHECK(preflightDecision(preflight(c, "qwen3:8b", 6 * kGiB), c.mode).empty());

  c.perModel["llama3"] = 12 * kGiB;
  CHECK(requiredBytes(c, "llama3:latest") == 12 * kGiB);
  c.perModel["mistral:latest"] = 5 * kGiB;
  CHECK(requiredBytes(c, "mistral") == 5 * kGiB);

  c.mode = PreflightMode::Warn;
  auto w = preflight(c, "gemma4:e4b", 6 * kGiB);
  CHECK(w.ok);
  CHECK_FALSE(w.sufficient);
  CHECK(w.message.find("starting anyway") != std::string::npos);
  CHECK(preflightDecision(w, c.mode).events.at(0).detail["mode"] == "warn");
}

TEST_CASE("event kinds are spelled exactly as the control API contract", "[policy][types]") {
  const std::vector<std::pair<EventKind, std::string>> contract = {
      {EventKind::DaemonStarted, "daemon_started"},
      {EventKind::ServerStarted, "server_started"},
      {EventKind::ServerExited, "server_exited"},
      {EventKind::ServerRestarted, "server_restarted"},
      {EventKind::Paused, "paused"},
      {EventKind::Resumed, "resumed"},
      {EventKind::MemoryPressure, "memory_pressure"},
      {EventKind::MemoryRecovered, "memory_recovered"},
      {EventKind::PreflightFailed, "preflight_failed"},
      {EventKind::StallDetected, "stall_detected"},
      {EventKind::EvictRequested, "evict_requested"},
      {EventKind::StoppingDetected, "stopping_detected"},
      {EventKind::RunnerKilled, "runner_killed"},
      {EventKind::CpuSpillSuspected, "cpu_spill_suspected"},
      {EventKind::TrialRetried, "trial_retried"},
  };
  for (const auto& [kind, name] : contract) {
    CHECK(toString(kind) == name);
    CHECK(parseEventKind(name) == kind);
  }
  for (auto name : {"manual", "memory_pressure", "recovering", "server_down", "preflight"}) {
    auto r = parsePauseReason(name);
    REQUIRE(r);
    CHECK(toString(*r) == name);
  }
  CHECK_FALSE(parsePauseReason("bored"));

  PolicyEvent e{EventKind::RunnerKilled, "gemma4:e4b", {{"pid", 7}}};
  CHECK(e.toJson() ==
        nlohmann::json{{"kind", "runner_killed"}, {"model", "gemma4:e4b"}, {"detail", {{"pid", 7}}}});
  CHECK(toJson(Action{KillRunner{"gemma4:e4b"}}) ==
        nlohmann::json{{"action", "kill_runner"}, {"model", "gemma4:e4b"}});
  CHECK(toJson(Action{Pause{PauseReason::MemoryPressure}})["reason"] == "memory_pressure");
  CHECK(describe(Action{RestartServer{"ps wedged"}}) == "restart_server(ps wedged)");
  CHECK(describe(Action{EvictAll{}}) == "evict_all()");
}
