#include "daemon/policy/types.h"

#include <array>
#include <utility>

namespace oasis::policy {

namespace {

constexpr std::array<std::pair<PauseReason, std::string_view>, 5> kPauseReasonNames{{
    {PauseReason::Manual, "manual"},
    {PauseReason::MemoryPressure, "memory_pressure"},
    {PauseReason::Recovering, "recovering"},
    {PauseReason::ServerDown, "server_down"},
    {PauseReason::Preflight, "preflight"},
}};

constexpr std::array<std::pair<EventKind, std::string_view>, 20> kEventKindNames{{
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
    {EventKind::ServerUnhealthy, "server_unhealthy"},
    {EventKind::ServerHealthy, "server_healthy"},
    {EventKind::ServerFailed, "server_failed"},
    {EventKind::ModelRecovered, "model_recovered"},
    {EventKind::RecoveryEscalated, "recovery_escalated"},
}};

template <typename... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <typename... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

std::string_view toString(PauseReason reason) {
  for (const auto& [r, name] : kPauseReasonNames) {
    if (r == reason) return name;
  }
  return "unknown";
}

std::optional<PauseReason> parsePauseReason(std::string_view name) {
  for (const auto& [r, n] : kPauseReasonNames) {
    if (n == name) return r;
  }
  return std::nullopt;
}

std::string_view toString(EventKind kind) {
  for (const auto& [k, name] : kEventKindNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<EventKind> parseEventKind(std::string_view name) {
  for (const auto& [k, n] : kEventKindNames) {
    if (n == name) return k;
  }
  return std::nullopt;
}

std::string_view actionName(const Action& action) {
  return std::visit(Overloaded{
                        [](const Pause&) { return std::string_view("pause"); },
                        [](const Resume&) { return std::string_view("resume"); },
                        [](const PauseModel&) { return std::string_view("pause_model"); },
                        [](const ResumeModel&) { return std::string_view("resume_model"); },
                        [](const SoftEvict&) { return std::string_view("soft_evict"); },
                        [](const EvictAll&) { return std::string_view("evict_all"); },
                        [](const KillRunner&) { return std::string_view("kill_runner"); },
                        [](const StartServer&) { return std::string_view("start_server"); },
                        [](const RestartServer&) { return std::string_view("restart_server"); },
                        [](const MarkFailed&) { return std::string_view("mark_failed"); },
                    },
                    action);
}

nlohmann::json toJson(const Action& action) {
  nlohmann::json j = {{"action", std::string(actionName(action))}};
  std::visit(Overloaded{
                 [&](const Pause& a) { j["reason"] = std::string(toString(a.reason)); },
                 [&](const Resume& a) { j["reason"] = std::string(toString(a.reason)); },
                 [&](const PauseModel& a) {
                   j["model"] = a.model;
                   j["reason"] = std::string(toString(a.reason));
                 },
                 [&](const ResumeModel& a) {
                   j["model"] = a.model;
                   j["reason"] = std::string(toString(a.reason));
                 },
                 [&](const SoftEvict& a) { j["model"] = a.model; },
                 [&](const EvictAll&) {},
                 [&](const KillRunner& a) { j["model"] = a.model; },
                 [&](const StartServer& a) { j["reason"] = a.reason; },
                 [&](const RestartServer& a) { j["reason"] = a.reason; },
                 [&](const MarkFailed& a) { j["reason"] = a.reason; },
             },
             action);
  return j;
}

std::string describe(const Action& action) {
  std::string out(actionName(action));
  std::string arg = std::visit(
      Overloaded{
          [](const Pause& a) { return std::string(toString(a.reason)); },
          [](const Resume& a) { return std::string(toString(a.reason)); },
          [](const PauseModel& a) { return a.model + ", " + std::string(toString(a.reason)); },
          [](const ResumeModel& a) { return a.model + ", " + std::string(toString(a.reason)); },
          [](const SoftEvict& a) { return a.model; },
          [](const EvictAll&) { return std::string(); },
          [](const KillRunner& a) { return a.model; },
          [](const StartServer& a) { return a.reason; },
          [](const RestartServer& a) { return a.reason; },
          [](const MarkFailed& a) { return a.reason; },
      },
      action);
  return out + "(" + arg + ")";
}

nlohmann::json PolicyEvent::toJson() const {
  nlohmann::json j = {{"kind", std::string(kindName())}, {"detail", detail}};
  if (model) j["model"] = *model;
  return j;
}

void Decision::append(Decision other) {
  for (auto& a : other.actions) actions.push_back(std::move(a));
  for (auto& e : other.events) events.push_back(std::move(e));
}

bool Decision::hasEvent(EventKind kind) const {
  for (const auto& e : events) {
    if (e.kind == kind) return true;
  }
  return false;
}

}  // namespace oasis::policy
