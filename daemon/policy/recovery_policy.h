#pragma once
// Deadlock / "Stopping..." recovery (incident Bug 1), one explicit state machine per model.
//
//   Healthy --(evictThreshold consecutive stalled|timeout attempts, or an evict request
//              while the model is loaded)--> Evicting:  PauseModel(recovering) + SoftEvict
//   Evicting --(model left ps)--> Healthy:  ResumeModel + model_recovered
//   Evicting --(ps shows expires_at past for stoppingGrace AND no token for stoppingGrace,
//              or ps unanswered for stoppingGrace with no token)--> Killing:  KillRunner
//              + stopping_detected   (runner pid reported unknown -> Escalated instead)
//   Killing  --(effects confirm the kill)--> Confirming:  runner_killed
//   Killing  --(kill failed / no answer within killTimeout)--> Escalated
//   Confirming --(model left ps)--> Healthy:  ResumeModel + model_recovered
//   Confirming --(still in ps after confirmTimeout)--> Escalated
//   Escalated: managed -> RestartServer (a request: route it to ServerPolicy::requestRestart,
//              which applies backoff); attach -> recovery_escalated event only. Leaves when
//              the model leaves ps or the server restarts.
//   any state --(server restarted)--> Healthy (runners die with serve).
//
// False-positive guard: "Stopping..." is only `now > expires_at` (ollama-behaviour.md §2-3);
// a request that runs past the previous idle expiry shows it too. So a model is never
// killed while any attempt on it produced a token within stoppingGrace, and never killed
// from Healthy at all - only after a stall streak or an explicit evict/kill request.
//
// Kill decisions are taken on fresh ps observations (not on ticks), so the kill happens
// within stoppingGrace + one ps interval of the model starting to show "Stopping...".
#include "common/clock.h"
#include "daemon/policy/types.h"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace oasis::policy {

enum class AttemptResult { Ok, Timeout, Stalled, HttpError, ConnectionError, Killed, Interrupted };
// The trial record's names: "ok", "timeout", "stalled", "http_error", ...
std::string_view toString(AttemptResult result);
std::optional<AttemptResult> parseAttemptResult(std::string_view name);

enum class ServerMode { Managed, Attach };
std::string_view toString(ServerMode mode);  // "managed", "attach"

// ---- Inputs ---------------------------------------------------------------------------

struct AttemptOutcome {
  std::string model;
  AttemptResult outcome = AttemptResult::Ok;
  SteadyTime at{};
};

// Any token from any attempt on `model` (the executor reports at most one per second or so).
struct TokenProgress {
  std::string model;
  SteadyTime at{};
};

struct PsModel {
  std::string name;
  WallTime expiresAt{};
  std::uint64_t sizeVram = 0;
  std::uint64_t size = 0;
};

// One /api/ps poll. ok = answered in time; wallNow = the wall clock when it answered (what
// "Stopping..." is judged against, like the ollama CLI does).
struct PsObservation {
  SteadyTime at{};
  bool ok = true;
  std::vector<PsModel> models;
  WallTime wallNow{};
};

// The runner table's view of a model's runner: pid = nullopt means "looked and found none"
// (e.g. attach mode without permission); then a wedged runner is escalated, not killed.
struct RunnerInfo {
  std::string model;
  std::optional<int> pid;
  SteadyTime at{};
};

// Effects' answer to KillRunner.
struct KillResult {
  std::string model;
  bool killed = false;
  std::optional<int> pid;
  std::string error;  // why not, when !killed ("identity changed", "no runner", ...)
  SteadyTime at{};
};

enum class EvictSource { Policy, Api, Client };  // Client = an unload passed through the compat API
std::string_view toString(EvictSource source);

// POST /v1/evict, or a client's own keep_alive:0 unload seen on the compatible surface.
struct EvictRequest {
  std::string model;
  EvictSource source = EvictSource::Api;
  SteadyTime at{};
};
// POST /v1/kill-runner.
struct KillRequest {
  std::string model;
  SteadyTime at{};
};
// Serve was (re)launched: every runner died with it.
struct ServerRestarted {
  SteadyTime at{};
};
struct Tick {
  SteadyTime at{};
};

// What one model sees of a ps observation.
struct PsSighting {
  SteadyTime at{};
  WallTime wallNow{};
  bool ok = true;
  std::optional<PsModel> entry;  // nullopt = not listed
};

using ModelInput = std::variant<AttemptOutcome, TokenProgress, PsSighting, RunnerInfo,
                                KillResult, EvictRequest, KillRequest, ServerRestarted, Tick>;

// ---- Config and per-model state --------------------------------------------------------

struct RecoveryConfig {
  int evictThreshold = 3;             // ollama_evict_threshold
  Seconds stoppingGrace{10.0};        // stopping_grace_s
  Seconds killTimeout{15.0};          // effects must answer KillRunner within this
  Seconds confirmTimeout{30.0};       // after the kill, the model must leave ps within this
  Seconds evictRetryAfter{10.0};      // re-send keep_alive:0 if ps still shows a future expiry
  ServerMode mode = ServerMode::Managed;
};

enum class ModelState { Healthy, Evicting, Killing, Confirming, Escalated };
std::string_view toString(ModelState state);

struct ModelRecovery {
  std::string model;
  ModelState state = ModelState::Healthy;
  SteadyTime stateSince{};
  SteadyTime recoveryStarted{};
  std::string trigger;                       // "stall_streak", "api_evict", "client_evict", "api_kill"
  int streak = 0;                            // consecutive stalled|timeout attempts
  std::deque<AttemptResult> recentOutcomes;  // last few, for the stall_detected evidence
  std::optional<SteadyTime> lastProgress;
  // From the latest answered ps:
  bool inPs = false;
  std::optional<WallTime> expiresAt;
  std::optional<SteadyTime> stoppingSince;   // first answered ps with expires_at in the past
  std::optional<SteadyTime> psFailingSince;  // first unanswered ps since the last answer
  // Runner table: unset = never reported; set(nullopt) = reported as not found.
  std::optional<std::optional<int>> runnerPid;
  SteadyTime lastEvictAt{};
  int evictsSent = 0;
};

// The transition function: every (state, input) pair is handled in it (most inputs only
// update the record in most states; see the .cpp for the table).
Decision transition(ModelRecovery& m, const ModelInput& input, const RecoveryConfig& config);

// ---- The policy over all models --------------------------------------------------------

class RecoveryPolicy {
 public:
  explicit RecoveryPolicy(RecoveryConfig config = {});

  Decision onAttempt(const AttemptOutcome& outcome);
  Decision onProgress(const TokenProgress& progress);
  // Fans out to every known model and to every model listed (creating records).
  Decision onPs(const PsObservation& observation);
  Decision onRunnerInfo(const RunnerInfo& info);
  Decision onKillResult(const KillResult& result);
  Decision onServerRestarted(SteadyTime at);
  Decision tick(SteadyTime now);

  // Manual requests. requestEvict with no model = every model in the last answered ps.
  Decision requestEvict(std::optional<std::string> model, EvictSource source, SteadyTime at);
  Decision requestKill(const std::string& model, SteadyTime at);

  // Status: state of one model (Healthy when unknown), and how long it has looked
  // "Stopping..." (0 when it does not).
  ModelState state(const std::string& model) const;
  double stoppingForSec(const std::string& model, SteadyTime now) const;
  const ModelRecovery* record(const std::string& model) const;
  std::vector<std::string> models() const;

  void setConfig(RecoveryConfig config) { config_ = std::move(config); }
  const RecoveryConfig& config() const { return config_; }

 private:
  ModelRecovery& recordFor(const std::string& model);
  Decision route(const std::string& model, const ModelInput& input);

  RecoveryConfig config_;
  std::map<std::string, ModelRecovery, std::less<>> models_;
};

}  // namespace oasis::policy
