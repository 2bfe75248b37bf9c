#include "daemon/policy/recovery_policy.h"

#include <algorithm>
#include <array>

namespace oasis::policy {

namespace {

template <typename... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <typename... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

double secondsBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration_cast<Seconds>(to - from).count();
}

constexpr std::array<std::pair<AttemptResult, std::string_view>, 7> kAttemptNames{{
    {AttemptResult::Ok, "ok"},
    {AttemptResult::Timeout, "timeout"},
    {AttemptResult::Stalled, "stalled"},
    {AttemptResult::HttpError, "http_error"},
    {AttemptResult::ConnectionError, "connection_error"},
    {AttemptResult::Killed, "killed"},
    {AttemptResult::Interrupted, "interrupted"},
}};

void setState(ModelRecovery& m, ModelState s, SteadyTime at) {
  m.state = s;
  m.stateSince = at;
}

bool noProgressFor(const ModelRecovery& m, SteadyTime now, Seconds grace) {
  return !m.lastProgress || secondsBetween(*m.lastProgress, now) >= grace.count();
}

nlohmann::json optionalSeconds(const std::optional<SteadyTime>& since, SteadyTime now) {
  return since ? nlohmann::json(secondsBetween(*since, now)) : nlohmann::json(nullptr);
}

PolicyEvent event(EventKind kind, const ModelRecovery& m, nlohmann::json detail) {
  return PolicyEvent{kind, m.model, std::move(detail)};
}

// Healthy -> Evicting: stop feeding the runner and ask Ollama to unload it.
Decision enterEvicting(ModelRecovery& m, SteadyTime at, std::string trigger, bool sendEvict,
                       EvictSource source) {
  Decision d;
  setState(m, ModelState::Evicting, at);
  m.recoveryStarted = at;
  m.trigger = std::move(trigger);
  d.actions.emplace_back(PauseModel{m.model, PauseReason::Recovering});
  // A client's own keep_alive:0 already went through: it counts as the first request.
  if (sendEvict) d.actions.emplace_back(SoftEvict{m.model});
  m.lastEvictAt = at;
  m.evictsSent = 1;
  d.events.push_back(event(EventKind::EvictRequested, m,
                           {{"source", std::string(toString(source))},
                            {"trigger", m.trigger},
                            {"sent_by_oasisd", sendEvict}}));
  return d;
}

// Any recovering state -> Healthy.
Decision recovered(ModelRecovery& m, SteadyTime at, std::string_view via) {
  Decision d;
  if (m.state == ModelState::Healthy) return d;
  d.actions.emplace_back(ResumeModel{m.model, PauseReason::Recovering});
  d.events.push_back(event(EventKind::ModelRecovered, m,
                           {{"via", std::string(via)},
                            {"trigger", m.trigger},
                            {"recovery_s", secondsBetween(m.recoveryStarted, at)}}));
  setState(m, ModelState::Healthy, at);
  m.streak = 0;
  m.recentOutcomes.clear();
  m.trigger.clear();
  m.evictsSent = 0;
  return d;
}

// Give up on killing the runner: restart serve (managed) or tell the operator (attach).
Decision escalate(ModelRecovery& m, SteadyTime at, const std::string& why,
                  const RecoveryConfig& config) {
  Decision d;
  setState(m, ModelState::Escalated, at);
  bool managed = config.mode == ServerMode::Managed;
  d.events.push_back(event(EventKind::RecoveryEscalated, m,
                           {{"why", why},
                            {"mode", std::string(toString(config.mode))},
                            {"action", managed ? "restart_server" : "report"},
                            {"fix", managed ? "oasisd restarts ollama serve"
                                            : "restart the attached ollama server (oasisd does "
                                              "not restart a server it did not launch)"}}));
  if (managed) d.actions.emplace_back(RestartServer{"runner for " + m.model + ": " + why});
  return d;
}

// Evicting/Escalated -> Killing, or -> Escalated when the runner table says there is no pid.
Decision killOrEscalate(ModelRecovery& m, SteadyTime at, nlohmann::json evidence,
                        const RecoveryConfig& config) {
  Decision d;
  bool pidUnknown = m.runnerPid.has_value() && !m.runnerPid->has_value();
  evidence["action"] = pidUnknown ? "escalate" : "kill_runner";
  d.events.push_back(event(EventKind::StoppingDetected, m, std::move(evidence)));
  if (pidUnknown) {
    d.append(escalate(m, at, "runner pid unknown, cannot kill it", config));
    return d;
  }
  setState(m, ModelState::Killing, at);
  d.actions.emplace_back(KillRunner{m.model});
  return d;
}

nlohmann::json stoppingEvidence(const ModelRecovery& m, SteadyTime at, WallTime wallNow,
                                const RecoveryConfig& config) {
  nlohmann::json j = {{"trigger", m.trigger},
                      {"stopping_for_s", optionalSeconds(m.stoppingSince, at)},
                      {"last_token_age_s", optionalSeconds(m.lastProgress, at)},
                      {"grace_s", config.stoppingGrace.count()},
                      {"evicts_sent", m.evictsSent}};
  if (m.expiresAt) {
    j["expires_at"] = formatIso8601Utc(*m.expiresAt);
    j["expired_for_s"] = std::chrono::duration_cast<Seconds>(wallNow - *m.expiresAt).count();
  }
  return j;
}

void updatePsView(ModelRecovery& m, const PsSighting& s) {
  if (!s.ok) {
    if (!m.psFailingSince) m.psFailingSince = s.at;
    return;
  }
  m.psFailingSince.reset();
  m.inPs = s.entry.has_value();
  if (!s.entry) {
    m.expiresAt.reset();
    m.stoppingSince.reset();
    return;
  }
  m.expiresAt = s.entry->expiresAt;
  // Exactly the ollama CLI's rule: "Stopping..." iff now > expires_at.
  if (s.wallNow > s.entry->expiresAt) {
    if (!m.stoppingSince) m.stoppingSince = s.at;
  } else {
    m.stoppingSince.reset();
  }
}

// --- per-input handlers: each switches over every state ----------------------------------

Decision onAttempt(ModelRecovery& m, const AttemptOutcome& in, const RecoveryConfig& config) {
  switch (in.outcome) {
    case AttemptResult::Ok:
      m.streak = 0;
      m.recentOutcomes.clear();
      break;
    case AttemptResult::Stalled:
    case AttemptResult::Timeout:
      m.streak = std::min(m.streak + 1, 1 << 20);
      m.recentOutcomes.push_back(in.outcome);
      while (m.recentOutcomes.size() > static_cast<std::size_t>(std::max(config.evictThreshold, 1))) {
        m.recentOutcomes.pop_front();
      }
      break;
    case AttemptResult::HttpError:
    case AttemptResult::ConnectionError:
    case AttemptResult::Killed:       // our own kills: neither a stall nor a success
    case AttemptResult::Interrupted:  // daemon crash/restart
      break;
  }
  switch (m.state) {
    case ModelState::Healthy: {
      if (m.streak < std::max(config.evictThreshold, 1)) return {};
      Decision d;
      nlohmann::json outcomes = nlohmann::json::array();
      for (auto r : m.recentOutcomes) outcomes.push_back(std::string(toString(r)));
      d.events.push_back(event(EventKind::StallDetected, m,
                               {{"streak", m.streak},
                                {"threshold", config.evictThreshold},
                                {"outcomes", outcomes},
                                {"last_token_age_s", optionalSeconds(m.lastProgress, in.at)},
                                {"action", "pause_model_and_soft_evict"}}));
      d.append(enterEvicting(m, in.at, "stall_streak", true, EvictSource::Policy));
      return d;
    }
    case ModelState::Evicting:    // already recovering: outcomes only feed the streak
    case ModelState::Killing:     // killed attempts are expected here
    case ModelState::Confirming:
    case ModelState::Escalated:
      return {};
  }
  return {};
}

Decision onPs(ModelRecovery& m, const PsSighting& s, const RecoveryConfig& config) {
  updatePsView(m, s);
  switch (m.state) {
    case ModelState::Healthy:
      // Never act from Healthy: "Stopping..." alone is not stuck (a long request shows it).
      return {};
    case ModelState::Evicting: {
      if (!s.ok) {
        // The scheduler holds its lock while unloading a wedged runner, so ps itself can hang.
        if (m.psFailingSince && secondsBetween(*m.psFailingSince, s.at) >= config.stoppingGrace.count() &&
            noProgressFor(m, s.at, config.stoppingGrace)) {
          nlohmann::json ev = stoppingEvidence(m, s.at, s.wallNow, config);
          ev["ps"] = "unanswered";
          ev["ps_failing_for_s"] = secondsBetween(*m.psFailingSince, s.at);
          return killOrEscalate(m, s.at, std::move(ev), config);
        }
        return {};
      }
      if (!m.inPs) return recovered(m, s.at, "unloaded");
      if (m.stoppingSince) {
        if (secondsBetween(*m.stoppingSince, s.at) >= config.stoppingGrace.count() &&
            noProgressFor(m, s.at, config.stoppingGrace)) {
          nlohmann::json ev = stoppingEvidence(m, s.at, s.wallNow, config);
          ev["ps"] = "stopping";
          return killOrEscalate(m, s.at, std::move(ev), config);
        }
        return {};
      }
      // Loaded with a future expiry: our keep_alive:0 did not take (e.g. sent during a cold
      // load, or a later request with keep_alive re-armed it). Ask again, at a bounded rate.
      if (secondsBetween(m.lastEvictAt, s.at) >= config.evictRetryAfter.count()) {
        Decision d;
        d.actions.emplace_back(SoftEvict{m.model});
        m.lastEvictAt = s.at;
        ++m.evictsSent;
        d.events.push_back(event(EventKind::EvictRequested, m,
                                 {{"source", "policy"},
                                  {"trigger", m.trigger},
                                  {"retry", m.evictsSent - 1},
                                  {"why", "model still loaded with a future expires_at"}}));
        return d;
      }
      return {};
    }
    case ModelState::Killing:
      // Wait for the effects' KillResult (or the kill timeout on tick).
      return {};
    case ModelState::Confirming:
      if (!s.ok) return {};
      if (!m.inPs) return recovered(m, s.at, "runner_killed");
      if (secondsBetween(m.stateSince, s.at) >= config.confirmTimeout.count()) {
        return escalate(m, s.at, "model still listed by /api/ps after its runner was killed",
                        config);
      }
      return {};
    case ModelState::Escalated:
      if (s.ok && !m.inPs) return recovered(m, s.at, "unloaded_after_escalation");
      return {};
  }
  return {};
}

Decision onKillResult(ModelRecovery& m, const KillResult& r, const RecoveryConfig& config) {
  Decision d;
  if (r.killed) {
    d.events.push_back(event(EventKind::RunnerKilled, m,
                             {{"pid", r.pid ? nlohmann::json(*r.pid) : nlohmann::json(nullptr)},
                              {"signal", "SIGKILL"},
                              {"trigger", m.trigger}}));
  }
  switch (m.state) {
    case ModelState::Killing:
      if (r.killed) {
        if (!m.inPs) {
          d.append(recovered(m, r.at, "runner_killed"));
        } else {
          setState(m, ModelState::Confirming, r.at);
        }
        return d;
      }
      if (!m.inPs) {
        d.append(recovered(m, r.at, "runner_gone"));
        return d;
      }
      d.append(escalate(m, r.at, "kill failed: " + (r.error.empty() ? "unknown" : r.error), config));
      return d;
    case ModelState::Healthy:     // a late or duplicate answer: recorded, no transition
    case ModelState::Evicting:
    case ModelState::Confirming:
    case ModelState::Escalated:
      return d;
  }
  return d;
}

Decision onEvictRequest(ModelRecovery& m, const EvictRequest& r) {
  const bool weSend = r.source != EvictSource::Client;
  std::string trigger = r.source == EvictSource::Client ? "client_evict" : "api_evict";
  switch (m.state) {
    case ModelState::Healthy:
      if (m.inPs) return enterEvicting(m, r.at, std::move(trigger), weSend, r.source);
      if (!weSend) return {};
      {
        // Not loaded as far as the last ps knows: pass the request on, nothing to watch.
        Decision d;
        d.actions.emplace_back(SoftEvict{m.model});
        d.events.push_back(event(EventKind::EvictRequested, m,
                                 {{"source", std::string(toString(r.source))},
                                  {"trigger", trigger},
                                  {"loaded", false}}));
        return d;
      }
    case ModelState::Evicting: {
      if (!weSend) return {};
      Decision d;
      d.actions.emplace_back(SoftEvict{m.model});
      m.lastEvictAt = r.at;
      ++m.evictsSent;
      d.events.push_back(event(EventKind::EvictRequested, m,
                               {{"source", std::string(toString(r.source))},
                                {"trigger", m.trigger},
                                {"retry", m.evictsSent - 1}}));
      return d;
    }
    case ModelState::Killing:     // a harder recovery is already under way
    case ModelState::Confirming:
    case ModelState::Escalated:
      return {};
  }
  return {};
}

Decision onKillRequest(ModelRecovery& m, const KillRequest& r) {
  auto kill = [&](bool pauseFirst) {
    Decision d;
    if (pauseFirst) {
      d.actions.emplace_back(PauseModel{m.model, PauseReason::Recovering});
      m.recoveryStarted = r.at;
    }
    m.trigger = "api_kill";
    nlohmann::json ev = {{"trigger", "api_kill"},
                         {"stopping_for_s", optionalSeconds(m.stoppingSince, r.at)},
                         {"last_token_age_s", optionalSeconds(m.lastProgress, r.at)},
                         {"action", "kill_runner"}};
    d.events.push_back(event(EventKind::StoppingDetected, m, std::move(ev)));
    setState(m, ModelState::Killing, r.at);
    d.actions.emplace_back(KillRunner{m.model});
    return d;
  };
  switch (m.state) {
    case ModelState::Healthy: {
      bool pidKnown = m.runnerPid && m.runnerPid->has_value();
      if (!m.inPs && !pidKnown) return {};  // nothing loaded, nothing to kill
      return kill(true);
    }
    case ModelState::Evicting:   // the operator does not want to wait out the grace
    case ModelState::Escalated:  // retry by hand
      return kill(false);
    case ModelState::Killing:    // already killing / killed
    case ModelState::Confirming:
      return {};
  }
  return {};
}

Decision onServerRestarted(ModelRecovery& m, const ServerRestarted& r) {
  // Runners die with serve (managed restart kills orphans too): nothing of the old view holds.
  m.inPs = false;
  m.expiresAt.reset();
  m.stoppingSince.reset();
  m.psFailingSince.reset();
  m.runnerPid.reset();
  switch (m.state) {
    case ModelState::Healthy:
      m.streak = 0;
      m.recentOutcomes.clear();
      return {};
    case ModelState::Evicting:
    case ModelState::Killing:
    case ModelState::Confirming:
    case ModelState::Escalated:
      return recovered(m, r.at, "server_restarted");
  }
  return {};
}

Decision onTick(ModelRecovery& m, const Tick& t, const RecoveryConfig& config) {
  switch (m.state) {
    case ModelState::Healthy:
    case ModelState::Evicting:  // decided on ps observations
    case ModelState::Escalated:
      return {};
    case ModelState::Killing:
      if (secondsBetween(m.stateSince, t.at) >= config.killTimeout.count()) {
        return escalate(m, t.at, "no confirmation of the runner kill", config);
      }
      return {};
    case ModelState::Confirming:
      if (secondsBetween(m.stateSince, t.at) >= config.confirmTimeout.count()) {
        return escalate(m, t.at, "model did not leave /api/ps after its runner was killed",
                        config);
      }
      return {};
  }
  return {};
}

}  // namespace

std::string_view toString(AttemptResult result) {
  for (const auto& [r, name] : kAttemptNames) {
    if (r == result) return name;
  }
  return "unknown";
}

std::optional<AttemptResult> parseAttemptResult(std::string_view name) {
  for (const auto& [r, n] : kAttemptNames) {
    if (n == name) return r;
  }
  return std::nullopt;
}

std::string_view toString(ServerMode mode) {
  return mode == ServerMode::Managed ? "managed" : "attach";
}

std::string_view toString(EvictSource source) {
  switch (source) {
    case EvictSource::Policy: return "policy";
    case EvictSource::Api: return "api";
    case EvictSource::Client: return "client";
  }
  return "policy";
}

std::string_view toString(ModelState state) {
  switch (state) {
    case ModelState::Healthy: return "healthy";
    case ModelState::Evicting: return "evicting";
    case ModelState::Killing: return "killing";
    case ModelState::Confirming: return "confirming";
    case ModelState::Escalated: return "escalated";
  }
  return "healthy";
}

Decision transition(ModelRecovery& m, const ModelInput& input, const RecoveryConfig& config) {
  return std::visit(
      Overloaded{
          [&](const AttemptOutcome& in) { return onAttempt(m, in, config); },
          [&](const TokenProgress& in) {
            if (!m.lastProgress || in.at > *m.lastProgress) m.lastProgress = in.at;
            return Decision{};  // progress only informs the kill decision, in every state
          },
          [&](const PsSighting& in) { return onPs(m, in, config); },
          [&](const RunnerInfo& in) {
            m.runnerPid = in.pid;  // recorded in every state; used when a kill is due
            return Decision{};
          },
          [&](const KillResult& in) { return onKillResult(m, in, config); },
          [&](const EvictRequest& in) { return onEvictRequest(m, in); },
          [&](const KillRequest& in) { return onKillRequest(m, in); },
          [&](const ServerRestarted& in) { return onServerRestarted(m, in); },
          [&](const Tick& in) { return onTick(m, in, config); },
      },
      input);
}

// ---- RecoveryPolicy ----------------------------------------------------------------------

RecoveryPolicy::RecoveryPolicy(RecoveryConfig config) : config_(std::move(config)) {}

ModelRecovery& RecoveryPolicy::recordFor(const std::string& model) {
  auto it = models_.find(model);
  if (it == models_.end()) {
    it = models_.emplace(model, ModelRecovery{}).first;
    it->second.model = model;
  }
  return it->second;
}

Decision RecoveryPolicy::route(const std::string& model, const ModelInput& input) {
  return transition(recordFor(model), input, config_);
}

Decision RecoveryPolicy::onAttempt(const AttemptOutcome& outcome) {
  return route(outcome.model, outcome);
}

Decision RecoveryPolicy::onProgress(const TokenProgress& progress) {
  return route(progress.model, progress);
}

Decision RecoveryPolicy::onPs(const PsObservation& observation) {
  for (const auto& pm : observation.models) recordFor(pm.name);
  Decision d;
  for (auto& [name, m] : models_) {
    PsSighting s{observation.at, observation.wallNow, observation.ok, std::nullopt};
    if (observation.ok) {
      // Init-capture: clang before 16 cannot capture a structured binding (the fuzz build).
      auto it = std::find_if(observation.models.begin(), observation.models.end(),
                             [&model = name](const PsModel& pm) { return pm.name == model; });
      if (it != observation.models.end()) s.entry = *it;
    }
    d.append(transition(m, s, config_));
  }
  return d;
}

Decision RecoveryPolicy::onRunnerInfo(const RunnerInfo& info) { return route(info.model, info); }

Decision RecoveryPolicy::onKillResult(const KillResult& result) {
  return route(result.model, result);
}

Decision RecoveryPolicy::onServerRestarted(SteadyTime at) {
  Decision d;
  for (auto& [name, m] : models_) d.append(transition(m, ServerRestarted{at}, config_));
  return d;
}

Decision RecoveryPolicy::tick(SteadyTime now) {
  Decision d;
  for (auto& [name, m] : models_) d.append(transition(m, Tick{now}, config_));
  return d;
}

Decision RecoveryPolicy::requestEvict(std::optional<std::string> model, EvictSource source,
                                      SteadyTime at) {
  if (model) return route(*model, EvictRequest{*model, source, at});
  Decision d;
  for (auto& [name, m] : models_) {
    if (m.inPs) d.append(transition(m, EvictRequest{name, source, at}, config_));
  }
  return d;
}

Decision RecoveryPolicy::requestKill(const std::string& model, SteadyTime at) {
  return route(model, KillRequest{model, at});
}

ModelState RecoveryPolicy::state(const std::string& model) const {
  auto it = models_.find(model);
  return it == models_.end() ? ModelState::Healthy : it->second.state;
}

double RecoveryPolicy::stoppingForSec(const std::string& model, SteadyTime now) const {
  auto it = models_.find(model);
  if (it == models_.end() || !it->second.stoppingSince) return 0.0;
  return std::max(0.0, secondsBetween(*it->second.stoppingSince, now));
}

const ModelRecovery* RecoveryPolicy::record(const std::string& model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : &it->second;
}

std::vector<std::string> RecoveryPolicy::models() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : models_) out.push_back(name);
  return out;
}

}  // namespace oasis::policy
