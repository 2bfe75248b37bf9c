#pragma once
// Value types shared by every policy: the actions policy asks the effects layer to perform,
// the events it asks the store to record, and the pause reasons.
//
// Policy decides, effects act. No policy object performs I/O, reads a clock or starts a
// thread: each takes `now` and returns a Decision, which the daemon executes in order
// (actions) and records (events). Tests replay inputs and compare Decisions.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace oasis::policy {

// Why dispatch is paused. Dispatch runs only when the set of reasons is empty (pause_set.h).
enum class PauseReason { Manual, MemoryPressure, Recovering, ServerDown, Preflight };

// "manual", "memory_pressure", "recovering", "server_down", "preflight" (the control API's names).
std::string_view toString(PauseReason reason);
std::optional<PauseReason> parsePauseReason(std::string_view name);

// ---- Actions: what the effects layer is asked to do. -------------------------------------

// Add `reason` to the global pause set (stop dispatching every model).
struct Pause {
  PauseReason reason;
  bool operator==(const Pause&) const = default;
};
// Remove `reason` from the global pause set.
struct Resume {
  PauseReason reason;
  bool operator==(const Resume&) const = default;
};
// Stop dispatching to one model; the trials layer also cancels attempts queued on it
// (every waiting request holds a runner reference, which keeps an unload from happening).
struct PauseModel {
  std::string model;
  PauseReason reason = PauseReason::Recovering;
  bool operator==(const PauseModel&) const = default;
};
struct ResumeModel {
  std::string model;
  PauseReason reason = PauseReason::Recovering;
  bool operator==(const ResumeModel&) const = default;
};
// Soft eviction: POST /api/generate {"model": m, "keep_alive": 0}. Ollama unloads only after
// every in-flight request on the runner has ended (ollama-behaviour.md §3).
struct SoftEvict {
  std::string model;
  bool operator==(const SoftEvict&) const = default;
};
// Soft-evict every model that /api/ps lists (memory pressure with on_critical=pause_and_evict).
struct EvictAll {
  bool operator==(const EvictAll&) const = default;
};
// kill -9 the model's runner, after re-verifying its identity (pid, start time, parent,
// --model argument). Effects report the outcome back to RecoveryPolicy::onKillResult.
struct KillRunner {
  std::string model;
  bool operator==(const KillRunner&) const = default;
};
// Launch `ollama serve` (managed mode) - the first launch or a relaunch after an exit.
struct StartServer {
  std::string reason;
  bool operator==(const StartServer&) const = default;
};
// Stop a running but unhealthy serve (SIGTERM, bounded wait, SIGKILL to its group, reap
// orphaned runners, wait for the port) and launch it again. Managed mode only.
struct RestartServer {
  std::string reason;
  bool operator==(const RestartServer&) const = default;
};
// Give up on the server: terminal `failed` state; the API stays up and reports it.
struct MarkFailed {
  std::string reason;
  bool operator==(const MarkFailed&) const = default;
};

using Action = std::variant<Pause, Resume, PauseModel, ResumeModel, SoftEvict, EvictAll,
                            KillRunner, StartServer, RestartServer, MarkFailed>;

// "pause", "resume", "pause_model", ... (used in the store's actions table and the API).
std::string_view actionName(const Action& action);
// {"action": "kill_runner", "model": "gemma4:e4b"} etc.
nlohmann::json toJson(const Action& action);
// One line for logs and test failure messages: "kill_runner(gemma4:e4b)".
std::string describe(const Action& action);

// ---- Events: what happened, for the store and GET /v1/events. ----------------------------

// The first 15 are the control API contract's minimum kinds, spelled exactly as there; the
// rest are extensions (the contract allows adding kinds).
enum class EventKind {
  DaemonStarted,
  ServerStarted,
  ServerExited,
  ServerRestarted,
  Paused,
  Resumed,
  MemoryPressure,
  MemoryRecovered,
  PreflightFailed,
  StallDetected,
  EvictRequested,
  StoppingDetected,
  RunnerKilled,
  CpuSpillSuspected,
  TrialRetried,
  // extensions
  ServerUnhealthy,     // health or ps checks failing (both modes)
  ServerHealthy,       // checks pass again after ServerUnhealthy (attach mode)
  ServerFailed,        // managed serve gave up after repeated fast failures
  ModelRecovered,      // a model paused for recovery is dispatchable again
  RecoveryEscalated,   // a runner could not be killed / did not leave ps
};

std::string_view toString(EventKind kind);
std::optional<EventKind> parseEventKind(std::string_view name);

struct PolicyEvent {
  EventKind kind;
  std::optional<std::string> model;
  nlohmann::json detail = nlohmann::json::object();

  std::string_view kindName() const { return toString(kind); }
  // {"kind": ..., "model"?: ..., "detail": {...}} - the store adds "id" and "at".
  nlohmann::json toJson() const;
  bool operator==(const PolicyEvent&) const = default;
};

// What one policy step decided. Execute `actions` in order; record `events`.
struct Decision {
  std::vector<Action> actions;
  std::vector<PolicyEvent> events;

  bool empty() const { return actions.empty() && events.empty(); }
  void append(Decision other);
  bool hasEvent(EventKind kind) const;
  // Number of actions holding alternative T.
  template <typename T>
  std::size_t count() const {
    std::size_t n = 0;
    for (const auto& a : actions) n += std::holds_alternative<T>(a) ? 1 : 0;
    return n;
  }
};

}  // namespace oasis::policy
