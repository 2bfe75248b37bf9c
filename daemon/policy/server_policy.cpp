#include "daemon/policy/server_policy.h"

#include <cstdio>

#include <algorithm>
#include <cmath>

namespace oasis::policy {

namespace {

double secondsBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration_cast<Seconds>(to - from).count();
}

nlohmann::json optionalInt(const std::optional<int>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

Seconds restartDelay(int failures, const BackoffConfig& config) {
  if (failures <= 1) return Seconds{0.0};
  // 2^(failures-2) overflows nothing: the exponent is clamped before pow.
  double factor = std::pow(2.0, std::min(failures - 2, 60));
  double delay = config.initial.count() * factor;
  return Seconds{std::min(delay, std::max(config.cap.count(), 0.0))};
}

std::string_view toString(ServerState state) {
  switch (state) {
    case ServerState::Idle: return "idle";
    case ServerState::Starting: return "starting";
    case ServerState::Up: return "up";
    case ServerState::Down: return "down";
    case ServerState::Waiting: return "waiting";
    case ServerState::Failed: return "failed";
  }
  return "idle";
}

ServerPolicy::ServerPolicy(ServerPolicyConfig config) : config_(std::move(config)) {}

Decision ServerPolicy::pauseDispatch() {
  Decision d;
  if (!dispatchPaused_) {
    dispatchPaused_ = true;
    d.actions.emplace_back(Pause{PauseReason::ServerDown});
  }
  return d;
}

Decision ServerPolicy::resumeDispatch() {
  Decision d;
  if (dispatchPaused_) {
    dispatchPaused_ = false;
    d.actions.emplace_back(Resume{PauseReason::ServerDown});
  }
  return d;
}

Decision ServerPolicy::reportUnhealthy(const std::string& reason) {
  Decision d = pauseDispatch();
  if (!unhealthyReported_) {
    unhealthyReported_ = true;
    d.events.push_back({EventKind::ServerUnhealthy, std::nullopt,
                        {{"reason", reason},
                         {"mode", std::string(toString(config_.mode))},
                         {"action", "report"},
                         {"fix", "restart the attached ollama server; oasisd does not restart a "
                                 "server it did not launch"}}});
  }
  return d;
}

Decision ServerPolicy::start(SteadyTime now) {
  if (state_ != ServerState::Idle) return {};
  Decision d = pauseDispatch();
  if (managed()) {
    pendingReason_ = "initial launch";
    d.append(launchNow(false, now));
  } else {
    state_ = ServerState::Down;  // until the first healthy HEAD /
  }
  return d;
}

Decision ServerPolicy::launchNow(bool restart, SteadyTime now) {
  (void)now;
  Decision d;
  state_ = ServerState::Starting;
  nextLaunchAt_.reset();
  if (restart) {
    d.actions.emplace_back(RestartServer{pendingReason_});
  } else {
    d.actions.emplace_back(StartServer{pendingReason_});
  }
  return d;
}

Decision ServerPolicy::fail(const std::string& reason, bool processAlive, SteadyTime now) {
  Decision d = pauseDispatch();
  ++failures_;
  healthConfirmed_ = false;
  healthySince_.reset();
  pendingReason_ = reason;
  if (failures_ >= std::max(config_.maxFastFailures, 1)) {
    state_ = ServerState::Failed;
    nextLaunchAt_.reset();
    d.actions.emplace_back(MarkFailed{reason});
    d.events.push_back({EventKind::ServerFailed, std::nullopt,
                        {{"reason", reason},
                         {"failures", failures_},
                         {"max_fast_failures", config_.maxFastFailures},
                         {"fix", "see the daemon log for serve's output; fix the cause, then "
                                 "reload the config (SIGHUP) to try again"}}});
    return d;
  }
  Seconds delay = restartDelay(failures_, config_.backoff);
  if (processAlive) {
    d.events.push_back({EventKind::ServerUnhealthy, std::nullopt,
                        {{"reason", reason},
                         {"mode", "managed"},
                         {"action", "restart_server"},
                         {"failures", failures_},
                         {"delay_s", delay.count()}}});
  }
  if (delay.count() <= 0.0) {
    d.append(launchNow(processAlive, now));
  } else {
    state_ = ServerState::Waiting;
    pendingIsRestart_ = processAlive;
    nextLaunchAt_ = now + std::chrono::duration_cast<SteadyTime::duration>(delay);
  }
  return d;
}

Decision ServerPolicy::onLaunched(std::optional<int> pid, SteadyTime now) {
  Decision d;
  if (state_ == ServerState::Failed) return d;  // a late report after giving up
  if (!everLaunched_) {
    d.events.push_back({EventKind::ServerStarted, std::nullopt,
                        {{"pid", optionalInt(pid)}, {"mode", std::string(toString(config_.mode))}}});
  } else {
    ++restarts_;
    d.events.push_back({EventKind::ServerRestarted, std::nullopt,
                        {{"pid", optionalInt(pid)},
                         {"mode", std::string(toString(config_.mode))},
                         {"restarts", restarts_},
                         {"reason", managed() ? pendingReason_ : std::string("external")},
                         {"consecutive_failures", failures_}}});
  }
  everLaunched_ = true;
  state_ = ServerState::Up;
  healthConfirmed_ = false;
  healthFailures_ = 0;
  psFailures_ = 0;
  launchedAt_ = now;
  healthySince_.reset();
  nextLaunchAt_.reset();
  return d;  // dispatch resumes on the first healthy HEAD /
}

Decision ServerPolicy::onLaunchFailed(const std::string& error, SteadyTime now) {
  if (!managed() || state_ != ServerState::Starting) return {};
  return fail("launch failed: " + error, false, now);
}

Decision ServerPolicy::onExit(std::optional<int> exitCode, std::optional<int> signal,
                              SteadyTime now) {
  Decision d;
  nlohmann::json detail = {{"exit_code", optionalInt(exitCode)},
                           {"signal", optionalInt(signal)},
                           {"mode", std::string(toString(config_.mode))}};
  detail["uptime_s"] = launchedAt_ ? nlohmann::json(secondsBetween(*launchedAt_, now))
                                   : nlohmann::json(nullptr);
  d.events.push_back({EventKind::ServerExited, std::nullopt, detail});
  healthConfirmed_ = false;
  launchedAt_.reset();
  std::string reason = "serve exited";
  if (exitCode) reason += " with code " + std::to_string(*exitCode);
  if (signal) reason += " on signal " + std::to_string(*signal);

  if (!managed()) {
    // Something else runs this server: wait for it to come back (onLaunched + HEAD /).
    state_ = ServerState::Down;
    unhealthyReported_ = false;
    d.append(pauseDispatch());
    return d;
  }
  switch (state_) {
    case ServerState::Up:
    case ServerState::Starting:
      d.append(fail(reason, false, now));
      return d;
    case ServerState::Waiting:
      pendingIsRestart_ = false;  // nothing left to stop: the next launch is a plain start
      return d;
    case ServerState::Idle:
    case ServerState::Down:
    case ServerState::Failed:
      return d;
  }
  return d;
}

Decision ServerPolicy::onHealth(bool ok, SteadyTime now) {
  Decision d;
  if (ok) {
    healthFailures_ = 0;
  } else {
    healthySince_.reset();
  }
  switch (state_) {
    case ServerState::Up:
      if (ok) {
        if (!healthConfirmed_) {
          healthConfirmed_ = true;
          healthySince_ = now;
        }
        break;
      }
      if (managed() && !healthConfirmed_) return d;  // still starting: startTimeout decides (tick)
      ++healthFailures_;
      if (healthFailures_ >= std::max(config_.healthFailuresBeforeRestart, 1)) {
        std::string reason = "HEAD / failed " + std::to_string(healthFailures_) + " times";
        if (managed()) return fail(reason, true, now);
        state_ = ServerState::Down;
        healthConfirmed_ = false;
        return reportUnhealthy(reason);
      }
      return d;
    case ServerState::Down:  // attach: the server answers again
      if (!ok) return d;
      state_ = ServerState::Up;
      healthConfirmed_ = true;
      healthySince_ = now;
      break;
    case ServerState::Waiting:
      // A wedged server that answers again before its restart: the restart is cancelled
      // once both checks pass (see onPs).
      if (ok && pendingIsRestart_ && psFailures_ == 0) {
        state_ = ServerState::Up;
        nextLaunchAt_.reset();
        healthConfirmed_ = true;
        healthySince_ = now;
        break;
      }
      return d;
    case ServerState::Idle:
    case ServerState::Starting:
    case ServerState::Failed:
      return d;
  }
  // Healthy path: resume when no check is over its threshold.
  if (healthConfirmed_ && psFailures_ < std::max(config_.psFailuresBeforeRestart, 1)) {
    d.append(resumeDispatch());
    if (unhealthyReported_) {
      unhealthyReported_ = false;
      d.events.push_back({EventKind::ServerHealthy, std::nullopt,
                          {{"mode", std::string(toString(config_.mode))}}});
    }
  }
  return d;
}

Decision ServerPolicy::onPs(bool ok, SteadyTime now) {
  Decision d;
  if (ok) {
    psFailures_ = 0;
  }
  switch (state_) {
    case ServerState::Up:
      if (!ok) {
        ++psFailures_;
        healthySince_.reset();
        if (psFailures_ >= std::max(config_.psFailuresBeforeRestart, 1)) {
          std::string reason = "/api/ps unanswered " + std::to_string(psFailures_) +
                               " times (scheduler wedged)";
          if (managed()) return fail(reason, true, now);
          return reportUnhealthy(reason);
        }
        return d;
      }
      if (healthConfirmed_ && !healthySince_) healthySince_ = now;
      if (healthConfirmed_) {
        d.append(resumeDispatch());
        if (unhealthyReported_) {
          unhealthyReported_ = false;
          d.events.push_back({EventKind::ServerHealthy, std::nullopt,
                              {{"mode", std::string(toString(config_.mode))}}});
        }
      }
      return d;
    case ServerState::Waiting:
      if (ok && pendingIsRestart_ && healthFailures_ == 0) {
        state_ = ServerState::Up;
        nextLaunchAt_.reset();
        healthConfirmed_ = true;
        healthySince_ = now;
        d.append(resumeDispatch());
      }
      return d;
    case ServerState::Idle:
    case ServerState::Starting:
    case ServerState::Down:
    case ServerState::Failed:
      return d;
  }
  return d;
}

Decision ServerPolicy::tick(SteadyTime now) {
  switch (state_) {
    case ServerState::Waiting:
      if (nextLaunchAt_ && now >= *nextLaunchAt_) return launchNow(pendingIsRestart_, now);
      return {};
    case ServerState::Up:
      if (managed() && !healthConfirmed_ && launchedAt_ &&
          secondsBetween(*launchedAt_, now) >= config_.startTimeout.count()) {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%g", config_.startTimeout.count());
        return fail(std::string("serve did not answer HEAD / within start_timeout_s (") + secs + " s)", true, now);
      }
      if (failures_ > 0 && healthConfirmed_ && healthySince_ &&
          secondsBetween(*healthySince_, now) >= config_.healthyResetAfter.count()) {
        failures_ = 0;  // healthy long enough: the next failure restarts immediately again
      }
      return {};
    case ServerState::Idle:
    case ServerState::Starting:
    case ServerState::Down:
    case ServerState::Failed:
      return {};
  }
  return {};
}

Decision ServerPolicy::requestRestart(const std::string& reason, SteadyTime now) {
  if (!managed()) {
    Decision d;
    d.events.push_back({EventKind::ServerUnhealthy, std::nullopt,
                        {{"reason", reason},
                         {"mode", "attach"},
                         {"action", "report"},
                         {"fix", "restart the attached ollama server; oasisd does not restart a "
                                 "server it did not launch"}}});
    return d;
  }
  if (state_ != ServerState::Up) return {};  // already (re)starting, waiting, or failed
  return fail(reason, true, now);
}

Decision ServerPolicy::resetFailed(SteadyTime now) {
  if (state_ != ServerState::Failed || !managed()) return {};
  failures_ = 0;
  pendingReason_ = "restart after the failed state was reset";
  return launchNow(false, now);
}

}  // namespace oasis::policy
