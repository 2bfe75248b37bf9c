#pragma once
// Trials: the queue (in SQLite), the dispatcher and the executor with token-level liveness.
//
// Every attempt talks to Ollama with stream:true, whatever the client asked for, so the
// executor knows the time to first token and every gap between tokens: a stall is detected in
// stall_timeout_s, not at request_timeout_s. On any failure the upstream connection is closed,
// which is what makes Ollama drop the request's reference on its runner (ollama-behaviour.md
// §3) — the incident's retries kept the "Stopping..." deadlock alive because they didn't.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "common/clock.h"
#include "common/config.h"
#include "common/http.h"
#include "daemon/api_bodies.h"  // TrialSpec, parseTrialSpec
#include "daemon/store.h"

namespace oasis {

// What the executor tells the supervisor after each attempt and on token progress.
struct AttemptReport {
  std::string model;
  std::string outcome;  // ok|timeout|stalled|http_error|connection_error|killed|interrupted
  SteadyTime at{};
  std::optional<std::uint64_t> evalCount;
  std::optional<std::chrono::nanoseconds> evalDuration;
  bool retried = false;
  std::int64_t trialId = 0;
  int attempt = 0;
  std::string error;
};

class TrialService {
 public:
  struct Hooks {
    std::function<bool(const std::string& model)> dispatchAllowed;
    std::function<void(const AttemptReport&)> onAttempt;
    std::function<void(const std::string& model)> onProgress;  // throttled per model
    std::function<void(const std::string& kind, const std::string& model, const nlohmann::json&)> onEvent;
  };

  TrialService(boost::asio::io_context& ioc, Store& store, const Config& config, Clock& clock,
               http::Endpoint ollama, Hooks hooks, int maxConcurrency);

  // Routes /v1/trials, /v1/trials/batch, /v1/trials/ID. Returns false if the path isn't ours.
  bool handles(const std::string& path) const;
  boost::asio::awaitable<void> handle(http::ServerRequest& req, http::ResponseWriter& w);

  // Called whenever the pause set or the server changed: dispatch what may run now.
  void kick();
  // Cancel in-flight attempts on a model (oasisd's own action): they are requeued without
  // counting against max_attempts. Empty model = every in-flight attempt.
  void interruptModel(const std::string& model, const std::string& outcome, const std::string& why);
  void setMaxConcurrency(int n) { maxConcurrency_ = n; kick(); }
  void stop();  // interrupt all, stop dispatching
  std::size_t inFlight() const { return inflight_.size(); }
  // Kept-alive connections to Ollama: after an attempt read to its end, the next one reuses
  // the connection instead of connecting again. A failed or interrupted attempt still closes
  // its connection (that is what releases Ollama's runner reference).
  const http::ConnectionPool& upstreamPool() const { return upstreamPool_; }

  // The Ollama-compatible surface: one trial, streamed back to the client in Ollama's format.
  boost::asio::awaitable<void> handleCompat(http::ServerRequest& req, http::ResponseWriter& w, const std::string& kind);

 private:
  struct InFlight {
    std::int64_t trialId = 0;
    std::int64_t attemptId = 0;
    std::string model;
    http::LineStream* stream = nullptr;
    std::string interruptOutcome;  // set when oasisd cut it short
    std::string interruptWhy;
    bool cancelled = false;        // the client cancelled the trial
  };

  boost::asio::awaitable<void> runAttempt(TrialRow trial, std::int64_t attemptId);
  struct Started {
    TrialRow trial;
    std::int64_t attemptId = 0;
  };
  void dispatch();
  // Starts in the store (and in inflight_) what may run now; `tx` is opened before the first
  // start, nested in the caller's transaction if there is one. Spawned only after the commit.
  std::vector<Started> startRunnable(std::optional<Database::Transaction>& tx);
  // A slot is free and dispatch is allowed for `model` (nothing else considered).
  bool mayStartNow(const std::string& model);
  // Records a started attempt in inflight_.
  Started track(TrialRow trial, std::int64_t attemptId);
  void spawn(std::vector<Started> started);
  void abandon(const std::vector<Started>& started);  // their transaction rolled back
  // A submit: inserts `news` and starts what may run now, in one transaction.
  std::vector<Started> insertAndStart(const std::vector<Store::NewTrial>& news, WallTime now,
                                      std::vector<Store::Inserted>& ids);
  void finished(std::int64_t trialId);
  // Until the trial ends, the timeout passes or the client goes away.
  boost::asio::awaitable<std::optional<TrialRow>> waitForEnd(std::int64_t id, std::chrono::milliseconds timeout,
                                                             const http::ResponseWriter& client);
  std::chrono::milliseconds retryDelay(int attemptsUsed) const;
  // An attempt's end could not be written (disk full, read-only database): its rows still
  // say `running`. Retried every second until the store takes writes again; then the attempt
  // becomes `interrupted` (not counted) and its trial is queued again, so it still ends once.
  void scheduleRepair();

  boost::asio::io_context& ioc_;
  Store& store_;
  const Config& config_;
  Clock& clock_;
  http::Endpoint ollama_;
  Hooks hooks_;
  int maxConcurrency_;
  bool stopped_ = false;
  bool dispatchPosted_ = false;
  std::map<std::int64_t, InFlight> inflight_;  // by attempt id
  std::map<std::int64_t, SteadyTime> notBefore_;  // retry backoff, by trial id
  http::ConnectionPool upstreamPool_;
  boost::asio::steady_timer retryTimer_;
  boost::asio::steady_timer repairTimer_;
  bool repairPending_ = false;
  std::map<std::string, SteadyTime> lastProgress_;
  // Waiters for a trial to end (?wait=S and compat calls): timers cancelled on end.
  std::multimap<std::int64_t, std::shared_ptr<boost::asio::steady_timer>> waiters_;
  // Live token forwarding for compat streams: trial id -> sink for response chunks.
  std::map<std::int64_t, std::function<void(const std::string& line)>> chunkSinks_;
  // Compat calls in progress, and Ollama's HTTP status for those that it refused.
  std::set<std::int64_t> compatWaiting_;
  std::map<std::int64_t, int> failStatus_;
};

}  // namespace oasis
