#pragma once
// Server health: when to (re)start `ollama serve` and when dispatch waits for it.
//
// Managed mode: StartServer at start; an exit, `healthFailuresBeforeRestart` consecutive
// failed `HEAD /`, or `psFailuresBeforeRestart` consecutive unanswered `/api/ps` (a wedged
// scheduler still answers HEAD /, ollama-behaviour.md §3 "Cascades") -> relaunch with
// backoff: the first immediately, then doubling from `backoffInitial` to `backoffCap`. The
// failure count resets after `healthyResetAfter` of healthy running; `maxFastFailures`
// consecutive failures -> MarkFailed, terminal until resetFailed() (the API stays up and
// reports it). Attach mode never starts or restarts anything: it reports (events) and
// pauses/resumes dispatch with reason server_down.
//
// Effects report back: onLaunched when a launched (or, in attach mode, discovered) serve
// answers to its pid, onLaunchFailed when a launch did not produce a server, onExit for
// exits they did not cause themselves (the stop half of RestartServer is not reported).
//
// RestartServer actions from RecoveryPolicy are requests: route them to requestRestart(),
// which applies the same backoff and failure counting.
#include "common/clock.h"
#include "daemon/policy/recovery_policy.h"
#include "daemon/policy/types.h"

#include <optional>
#include <string>

namespace oasis::policy {

struct BackoffConfig {
  Seconds initial{1.0};
  Seconds cap{60.0};
};

// Delay before relaunch number `failures` (1 = the first failure since the server was last
// healthy for long enough): 0, initial, 2*initial, 4*initial, ... capped at `cap`.
Seconds restartDelay(int failures, const BackoffConfig& config);

struct ServerPolicyConfig {
  ServerMode mode = ServerMode::Managed;
  int psFailuresBeforeRestart = 3;
  int healthFailuresBeforeRestart = 3;
  // Managed: a launched serve has this long to answer its first HEAD /; failed checks before
  // that do not count (a cold start with many models to scan can be slow). Then: a failure.
  Seconds startTimeout{60.0};
  BackoffConfig backoff;
  Seconds healthyResetAfter{120.0};
  int maxFastFailures = 5;
};

enum class ServerState {
  Idle,      // start() not called yet
  Starting,  // StartServer/RestartServer issued, waiting for onLaunched
  Up,        // process launched (managed) or seen answering (attach)
  Down,      // attach mode: not answering / exited; waiting for it to come back
  Waiting,   // managed: waiting out the backoff before the next launch
  Failed,    // managed: gave up (terminal until resetFailed)
};
std::string_view toString(ServerState state);

class ServerPolicy {
 public:
  explicit ServerPolicy(ServerPolicyConfig config = {});

  // Managed: StartServer. Both modes: Pause(server_down) until the first healthy HEAD /.
  Decision start(SteadyTime now);

  Decision onLaunched(std::optional<int> pid, SteadyTime now);
  Decision onLaunchFailed(const std::string& error, SteadyTime now);
  Decision onExit(std::optional<int> exitCode, std::optional<int> signal, SteadyTime now);
  Decision onHealth(bool ok, SteadyTime now);  // HEAD /
  Decision onPs(bool ok, SteadyTime now);      // /api/ps answered in time
  Decision tick(SteadyTime now);

  // Recovery escalation or an operator: restart (managed) or report (attach).
  Decision requestRestart(const std::string& reason, SteadyTime now);
  // Leave the terminal failed state (operator action or config reload): start afresh.
  Decision resetFailed(SteadyTime now);

  ServerState state() const { return state_; }
  bool up() const { return state_ == ServerState::Up && healthConfirmed_; }
  bool failed() const { return state_ == ServerState::Failed; }
  int restarts() const { return restarts_; }
  int consecutiveFailures() const { return failures_; }
  std::optional<SteadyTime> nextLaunchAt() const { return nextLaunchAt_; }
  const ServerPolicyConfig& config() const { return config_; }
  void setConfig(ServerPolicyConfig config) { config_ = std::move(config); }

 private:
  bool managed() const { return config_.mode == ServerMode::Managed; }
  // A failure of a managed server: count it, then relaunch (now or after backoff) or give up.
  Decision fail(const std::string& reason, bool processAlive, SteadyTime now);
  Decision launchNow(bool restart, SteadyTime now);
  Decision pauseDispatch();
  Decision resumeDispatch();
  Decision reportUnhealthy(const std::string& reason);

  ServerPolicyConfig config_;
  ServerState state_ = ServerState::Idle;
  bool dispatchPaused_ = false;
  bool healthConfirmed_ = false;  // a HEAD / succeeded since the last launch
  bool everLaunched_ = false;
  bool unhealthyReported_ = false;  // attach mode: server_unhealthy sent, waiting for healthy
  int healthFailures_ = 0;
  int psFailures_ = 0;
  int failures_ = 0;  // consecutive, reset after healthyResetAfter of health
  int restarts_ = 0;
  std::string pendingReason_;
  bool pendingIsRestart_ = false;  // the process is still alive: RestartServer, not StartServer
  std::optional<SteadyTime> nextLaunchAt_;
  std::optional<SteadyTime> healthySince_;
  std::optional<SteadyTime> launchedAt_;
};

}  // namespace oasis::policy
