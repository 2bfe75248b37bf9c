#pragma once
// The store: every event, sample, trial and attempt oasisd knows about, in one SQLite file.
// One owner (the daemon's io thread) uses it; nothing else opens the connection.
//
// "Nothing lost" lives here: a trial is committed before POST /v1/trials answers, every attempt
// is a row, and on start attempts left 'running' by a crash become 'interrupted' and their
// trials go back to the queue.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "daemon/sqlite.h"

namespace oasis {

struct StoredEvent {
  std::int64_t id = 0;
  WallTime at;
  std::string kind;
  std::string model;  // empty when not about a model
  nlohmann::json detail = nlohmann::json::object();
  nlohmann::json toJson() const;
};

struct MemorySampleRow {
  WallTime at;
  std::uint64_t totalBytes = 0, availableBytes = 0, freeBytes = 0;
  std::uint64_t swapoutsBytes = 0;  // cumulative
  double swapoutsPerSec = 0;
  std::string pressure;  // ok|warn|critical
};

struct RunnerSampleRow {
  WallTime at;
  std::string model;
  int pid = 0;
  double cpuPct = 0;
  std::uint64_t rssBytes = 0;
  std::string flashAttention;
};

struct AttemptRow {
  std::int64_t id = 0;
  std::int64_t trialId = 0;
  int n = 0;
  WallTime startedAt;
  std::optional<WallTime> endedAt;
  std::string outcome;  // running|ok|timeout|stalled|http_error|connection_error|killed|interrupted
  std::string error;
  std::optional<double> latencyMs, firstTokenMs, loadDurationMs, evalDurationMs;
  std::optional<std::int64_t> evalCount;
  bool countsAgainstBudget = true;
  nlohmann::json toJson() const;
};

struct TrialRow {
  std::int64_t id = 0;
  std::string run;
  std::optional<std::string> key;
  std::string model;
  std::string kind;  // generate|chat
  nlohmann::json request;
  std::string state;  // queued|running|succeeded|failed|cancelled
  int maxAttempts = 3;
  int attemptsUsed = 0;  // attempts that count against max_attempts
  WallTime submittedAt;
  std::optional<WallTime> finishedAt;
  nlohmann::json response;  // null unless succeeded
  std::optional<std::string> error;
  std::string specHash;
  std::vector<AttemptRow> attempts;
  nlohmann::json toJson() const;
};

struct TrialCounts {
  std::int64_t queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
};

struct TimelineRow {
  WallTime start;
  std::int64_t trials = 0, succeeded = 0, failed = 0;
  double failureRate = 0;
  std::optional<double> p50Ms, p95Ms;
  std::vector<std::string> actions;
};

// Nearest-rank percentile of unsorted values; nullopt for an empty set.
std::optional<double> percentile(std::vector<double> values, double p);

class Store {
 public:
  explicit Store(const std::string& path);  // ":memory:" for tests; runs migrations
  Database& db() { return db_; }
  int schemaVersion();

  // events ---------------------------------------------------------------------------------
  std::int64_t addEvent(WallTime at, const std::string& kind, const std::string& model, const nlohmann::json& detail);
  std::vector<StoredEvent> eventsSince(std::int64_t afterId, int limit = 1000);
  std::vector<StoredEvent> eventsBetween(WallTime from, WallTime to, const std::string& kindPrefix = "");
  std::vector<StoredEvent> lastEvents(int n);

  // samples (with retention) ---------------------------------------------------------------
  void addMemorySample(const MemorySampleRow& s);
  void addRunnerSample(const RunnerSampleRow& s);
  void addPsSample(WallTime at, bool ok, const nlohmann::json& models);
  std::vector<MemorySampleRow> memorySamplesBetween(WallTime from, WallTime to);
  std::vector<RunnerSampleRow> runnerSamplesBetween(WallTime from, WallTime to);
  void pruneSamples(WallTime olderThan);

  // trials ---------------------------------------------------------------------------------
  // Inserts in one transaction; with an idempotency key already present, returns the existing
  // id if the spec hash matches, or throws KeyConflict if it does not.
  struct NewTrial {
    std::string run, model, kind, specHash;
    std::optional<std::string> key;
    nlohmann::json request;
    int maxAttempts = 3;
  };
  struct KeyConflict : std::runtime_error {
    std::int64_t existingId;
    KeyConflict(std::int64_t id, const std::string& key)
        : std::runtime_error("idempotency key '" + key + "' was used with a different trial"), existingId(id) {}
  };
  struct Inserted {
    std::int64_t id;
    bool existed;
  };
  std::vector<Inserted> insertTrials(const std::vector<NewTrial>& trials, WallTime now);
  // A submit that may start at once: the trial is written already `running`, with its first
  // attempt, instead of `queued` and then moved (which touches the queue's index and reads
  // the attempt number back). attemptId is 0 when the key named an existing trial, which is
  // returned as it is and not started.
  struct InsertedStarted {
    Inserted trial;
    std::int64_t attemptId = 0;
  };
  InsertedStarted insertStartedTrial(const NewTrial& t, WallTime now);

  std::optional<TrialRow> trial(std::int64_t id, bool withAttempts = true);
  std::vector<TrialRow> listTrials(const std::optional<std::string>& run, const std::optional<std::string>& state,
                                   std::int64_t afterId, int limit);
  TrialCounts counts();
  // After a transaction that changed trial states was rolled back: recount on the next read.
  void forgetCounts() { counts_.reset(); }
  std::int64_t queuedCount();

  // The next queued trials in FIFO order per run, round-robin across runs, skipping paused models.
  std::vector<TrialRow> nextQueued(int limit, const std::vector<std::string>& excludedModels);
  std::int64_t startAttempt(std::int64_t trialId, WallTime at);  // trial -> running, returns attempt id
  void finishAttempt(const AttemptRow& a);  // outcome + metrics
  void markTrialQueued(std::int64_t trialId, bool countedAttempt);
  void markTrialSucceeded(std::int64_t trialId, WallTime at, const nlohmann::json& response, bool countedAttempt);
  void markTrialFailed(std::int64_t trialId, WallTime at, const std::string& error, bool countedAttempt);
  // Cancels a queued or running trial; returns false if it had already ended.
  bool cancelTrial(std::int64_t trialId, WallTime at);
  // Crash recovery: running attempts -> interrupted, their trials -> queued. Returns how many.
  int recoverInterrupted(WallTime at);
  // The same while running: attempts still `running` whose ids are not in `liveAttemptIds`
  // (their end could not be written) become `interrupted`, and running trials without a
  // running attempt are queued again. Returns the number of attempts repaired.
  int requeueOrphanedAttempts(WallTime at, const std::vector<std::int64_t>& liveAttemptIds);

  std::vector<TimelineRow> timeline(const std::optional<std::string>& run, WallTime since, WallTime until,
                                    int bucketSeconds);
  std::vector<AttemptRow> attemptsBetween(WallTime from, WallTime to);
  // Just the state ("" if there is no such trial): cheap polling, no JSON columns parsed.
  std::string trialState(std::int64_t trialId);
  // How a trial ended, for a caller that relays it: the response as the stored JSON text (no
  // parse and re-serialisation) and the last error.
  struct TrialOutcome {
    std::string state;
    std::optional<std::string> error;
    std::string responseText;  // "" unless it succeeded
  };
  std::optional<TrialOutcome> trialOutcome(std::int64_t trialId);

 private:
  void migrate();
  TrialCounts& liveCounts();  // loads the counts once, then every mutation keeps them exact
  void countMove(const std::string& from, const std::string& to, std::int64_t n = 1);
  Database db_;
  // Per-state trial counts, kept in memory: GET /v1/status must not COUNT(*) a million-row
  // queue on every call (issue 6 §3). Loaded by one GROUP BY at first use, then adjusted by
  // every mutation below, which all run on the store's single owner.
  std::optional<TrialCounts> counts_;
};

}  // namespace oasis
