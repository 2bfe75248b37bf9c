#include "daemon/store.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace oasis {

namespace {

double unix(WallTime t) { return toUnixSeconds(t); }

// Numbered migrations, applied in order at open; user_version records the last one applied.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at REAL NOT NULL,
  kind TEXT NOT NULL,
  model TEXT,
  detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_at ON events(at);
CREATE TABLE memory_samples (
  at REAL NOT NULL,
  total_bytes INTEGER, available_bytes INTEGER, free_bytes INTEGER,
  swapouts_bytes INTEGER, swapouts_per_s REAL, pressure TEXT
);
CREATE INDEX memory_samples_at ON memory_samples(at);
CREATE TABLE runner_samples (
  at REAL NOT NULL, model TEXT, pid INTEGER, cpu_pct REAL, rss_bytes INTEGER, flash_attention TEXT
);
CREATE INDEX runner_samples_at ON runner_samples(at);
CREATE TABLE ps_samples (at REAL NOT NULL, ok INTEGER NOT NULL, models TEXT);
CREATE INDEX ps_samples_at ON ps_samples(at);
CREATE TABLE trials (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run TEXT NOT NULL,
  key TEXT UNIQUE,
  model TEXT NOT NULL,
  kind TEXT NOT NULL,
  request TEXT NOT NULL,
  spec_hash TEXT NOT NULL,
  state TEXT NOT NULL,
  max_attempts INTEGER NOT NULL,
  attempts_used INTEGER NOT NULL DEFAULT 0,
  submitted_at REAL NOT NULL,
  finished_at REAL,
  response TEXT,
  error TEXT
);
CREATE INDEX trials_state ON trials(state, id);
CREATE INDEX trials_run ON trials(run, id);
CREATE INDEX trials_finished ON trials(finished_at);
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  trial_id INTEGER NOT NULL REFERENCES trials(id),
  n INTEGER NOT NULL,
  started_at REAL NOT NULL,
  ended_at REAL,
  outcome TEXT NOT NULL,
  error TEXT,
  latency_ms REAL, first_token_ms REAL, load_duration_ms REAL,
  eval_count INTEGER, eval_duration_ms REAL,
  counts INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX attempts_trial ON attempts(trial_id, n);
CREATE INDEX attempts_ended ON attempts(ended_at);
CREATE INDEX attempts_running ON attempts(outcome) WHERE outcome = 'running';
)sql",
    // The dispatcher's index: queued trials only, by run then id. It holds just the queue (rows
    // leave it when they start), so finding each run's oldest queued trial is a seek per run
    // instead of a scan of every queued row on every dispatch (issue 6 §3).
    R"sql(
CREATE INDEX trials_queued_run ON trials(run, id) WHERE state = 'queued';
)sql",
    // Every index is one more page rewritten in the WAL by each trial's transactions (issue 4's
    // per-trial overhead). trials_finished served no query; attempts_running only the start-up
    // recovery and the storage repair, which may as well scan attempts once.
    R"sql(
DROP INDEX IF EXISTS trials_finished;
DROP INDEX IF EXISTS attempts_running;
)sql",
    // An attempt has no end while it runs: indexing its NULL ended_at cost one more page in
    // every start's commit, and the window queries (`ended_at >= ? AND ...`) never read those.
    R"sql(
DROP INDEX IF EXISTS attempts_ended;
CREATE INDEX attempts_ended ON attempts(ended_at) WHERE ended_at IS NOT NULL;
)sql",
};

WallTime fromUnix(double s) { return fromUnixSeconds(s); }

AttemptRow readAttempt(Statement& s) {
  AttemptRow a;
  a.id = s.getInt(0);
  a.trialId = s.getInt(1);
  a.n = static_cast<int>(s.getInt(2));
  a.startedAt = fromUnix(s.getDouble(3));
  if (!s.isNull(4)) a.endedAt = fromUnix(s.getDouble(4));
  a.outcome = s.getText(5);
  a.error = s.getText(6);
  a.latencyMs = s.getOptDouble(7);
  a.firstTokenMs = s.getOptDouble(8);
  a.loadDurationMs = s.getOptDouble(9);
  a.evalCount = s.getOptInt(10);
  a.evalDurationMs = s.getOptDouble(11);
  a.countsAgainstBudget = s.getInt(12) != 0;
  return a;
}
constexpr const char* kAttemptCols =
    "id, trial_id, n, started_at, ended_at, outcome, error, latency_ms, first_token_ms, load_duration_ms, "
    "eval_count, eval_duration_ms, counts";

TrialRow readTrial(Statement& s) {
  TrialRow t;
  t.id = s.getInt(0);
  t.run = s.getText(1);
  t.key = s.getOptText(2);
  t.model = s.getText(3);
  t.kind = s.getText(4);
  t.request = nlohmann::json::parse(s.getText(5), nullptr, false);
  t.specHash = s.getText(6);
  t.state = s.getText(7);
  t.maxAttempts = static_cast<int>(s.getInt(8));
  t.attemptsUsed = static_cast<int>(s.getInt(9));
  t.submittedAt = fromUnix(s.getDouble(10));
  if (!s.isNull(11)) t.finishedAt = fromUnix(s.getDouble(11));
  if (!s.isNull(12)) t.response = nlohmann::json::parse(s.getText(12), nullptr, false);
  t.error = s.getOptText(13);
  return t;
}
constexpr const char* kTrialCols =
    "id, run, key, model, kind, request, spec_hash, state, max_attempts, attempts_used, submitted_at, finished_at, "
    "response, error";

nlohmann::json optNum(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

}  // namespace

std::optional<double> percentile(std::vector<double> values, double p) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  // nearest-rank: the smallest value with at least p% of the values at or below it
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  if (rank == 0) rank = 1;
  return values[std::min(rank, values.size()) - 1];
}

nlohmann::json StoredEvent::toJson() const {
  nlohmann::json j = {{"id", id}, {"at", formatIso8601Utc(at)}, {"kind", kind}, {"detail", detail}};
  if (!model.empty()) j["model"] = model;
  return j;
}

nlohmann::json AttemptRow::toJson() const {
  nlohmann::json j = {{"n", n},
                      {"started_at", formatIso8601Utc(startedAt)},
                      {"ended_at", endedAt ? nlohmann::json(formatIso8601Utc(*endedAt)) : nlohmann::json()},
                      {"outcome", outcome},
                      {"error", error.empty() ? nlohmann::json() : nlohmann::json(error)},
                      {"latency_ms", optNum(latencyMs)},
                      {"first_token_ms", optNum(firstTokenMs)},
                      {"load_duration_ms", optNum(loadDurationMs)},
                      {"eval_count", evalCount ? nlohmann::json(*evalCount) : nlohmann::json()},
                      {"eval_duration_ms", optNum(evalDurationMs)},
                      {"counted", countsAgainstBudget}};
  return j;
}

nlohmann::json TrialRow::toJson() const {
  nlohmann::json atts = nlohmann::json::array();
  for (auto& a : attempts) atts.push_back(a.toJson());
  return {{"id", id},
          {"run", run},
          {"key", key ? nlohmann::json(*key) : nlohmann::json()},
          {"model", model},
          {"kind", kind},
          {"state", state},
          {"max_attempts", maxAttempts},
          {"submitted_at", formatIso8601Utc(submittedAt)},
          {"finished_at", finishedAt ? nlohmann::json(formatIso8601Utc(*finishedAt)) : nlohmann::json()},
          {"response", response},
          {"error", error ? nlohmann::json(*error) : nlohmann::json()},
          {"attempts", atts}};
}

Store::Store(const std::string& path) : db_(path) { migrate(); }

int Store::schemaVersion() {
  auto s = db_.prepare("PRAGMA user_version");
  s.step();
  return static_cast<int>(s.getInt(0));
}

void Store::migrate() {
  int have = schemaVersion();
  int want = static_cast<int>(std::size(kMigrations));
  if (have > want)
    throw SqliteError("database " + db_.path() + " has schema version " + std::to_string(have) +
                          ", newer than this oasisd understands (" + std::to_string(want) + ")",
                      SQLITE_ERROR);
  for (int v = have; v < want; ++v) {
    Database::Transaction tx(db_);
    db_.exec(kMigrations[v]);
    db_.exec("PRAGMA user_version=" + std::to_string(v + 1));
    tx.commit();
  }
}

std::int64_t Store::addEvent(WallTime at, const std::string& kind, const std::string& model,
                             const nlohmann::json& detail) {
  auto s = db_.prepare("INSERT INTO events(at, kind, model, detail) VALUES (?,?,?,?)");
  s.bind(1, unix(at)).bind(2, kind);
  if (model.empty()) s.bindNull(3); else s.bind(3, model);
  s.bind(4, detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  s.run();
  return db_.lastInsertId();
}

namespace {
StoredEvent readEvent(Statement& s) {
  StoredEvent e;
  e.id = s.getInt(0);
  e.at = fromUnix(s.getDouble(1));
  e.kind = s.getText(2);
  e.model = s.getText(3);
  e.detail = nlohmann::json::parse(s.getText(4), nullptr, false);
  if (e.detail.is_discarded()) e.detail = nlohmann::json::object();
  return e;
}
}  // namespace

std::vector<StoredEvent> Store::eventsSince(std::int64_t afterId, int limit) {
  auto s = db_.prepare("SELECT id, at, kind, model, detail FROM events WHERE id > ? ORDER BY id LIMIT ?");
  s.bind(1, afterId).bind(2, limit);
  std::vector<StoredEvent> out;
  while (s.step()) out.push_back(readEvent(s));
  return out;
}

std::vector<StoredEvent> Store::eventsBetween(WallTime from, WallTime to, const std::string& kindPrefix) {
  auto s = db_.prepare(
      "SELECT id, at, kind, model, detail FROM events WHERE at >= ? AND at < ? AND kind LIKE ? ORDER BY id");
  s.bind(1, unix(from)).bind(2, unix(to)).bind(3, kindPrefix + "%");
  std::vector<StoredEvent> out;
  while (s.step()) out.push_back(readEvent(s));
  return out;
}

std::vector<StoredEvent> Store::lastEvents(int n) {
  auto s = db_.prepare("SELECT id, at, kind, model, detail FROM events ORDER BY id DESC LIMIT ?");
  s.bind(1, n);
  std::vector<StoredEvent> out;
  while (s.step()) out.push_back(readEvent(s));
  std::reverse(out.begin(), out.end());
  return out;
}

void Store::addMemorySample(const MemorySampleRow& m) {
  auto s = db_.prepare(
      "INSERT INTO memory_samples(at,total_bytes,available_bytes,free_bytes,swapouts_bytes,swapouts_per_s,pressure) "
      "VALUES (?,?,?,?,?,?,?)");
  s.bind(1, unix(m.at))
      .bind(2, static_cast<std::int64_t>(m.totalBytes))
      .bind(3, static_cast<std::int64_t>(m.availableBytes))
      .bind(4, static_cast<std::int64_t>(m.freeBytes))
      .bind(5, static_cast<std::int64_t>(m.swapoutsBytes))
      .bind(6, m.swapoutsPerSec)
      .bind(7, m.pressure);
  s.run();
}

void Store::addRunnerSample(const RunnerSampleRow& r) {
  auto s = db_.prepare(
      "INSERT INTO runner_samples(at,model,pid,cpu_pct,rss_bytes,flash_attention) VALUES (?,?,?,?,?,?)");
  s.bind(1, unix(r.at)).bind(2, r.model).bind(3, r.pid).bind(4, r.cpuPct).bind(5, static_cast<std::int64_t>(r.rssBytes));
  s.bind(6, r.flashAttention);
  s.run();
}

void Store::addPsSample(WallTime at, bool ok, const nlohmann::json& models) {
  auto s = db_.prepare("INSERT INTO ps_samples(at, ok, models) VALUES (?,?,?)");
  s.bind(1, unix(at)).bind(2, ok ? 1 : 0).bind(3, models.dump());
  s.run();
}

std::vector<MemorySampleRow> Store::memorySamplesBetween(WallTime from, WallTime to) {
  auto s = db_.prepare(
      "SELECT at,total_bytes,available_bytes,free_bytes,swapouts_bytes,swapouts_per_s,pressure FROM memory_samples "
      "WHERE at >= ? AND at < ? ORDER BY at");
  s.bind(1, unix(from)).bind(2, unix(to));
  std::vector<MemorySampleRow> out;
  while (s.step()) {
    MemorySampleRow m;
    m.at = fromUnix(s.getDouble(0));
    m.totalBytes = static_cast<std::uint64_t>(s.getInt(1));
    m.availableBytes = static_cast<std::uint64_t>(s.getInt(2));
    m.freeBytes = static_cast<std::uint64_t>(s.getInt(3));
    m.swapoutsBytes = static_cast<std::uint64_t>(s.getInt(4));
    m.swapoutsPerSec = s.getDouble(5);
    m.pressure = s.getText(6);
    out.push_back(m);
  }
  return out;
}

std::vector<RunnerSampleRow> Store::runnerSamplesBetween(WallTime from, WallTime to) {
  auto s = db_.prepare(
      "SELECT at,model,pid,cpu_pct,rss_bytes,flash_attention FROM runner_samples WHERE at >= ? AND at < ? ORDER BY at");
  s.bind(1, unix(from)).bind(2, unix(to));
  std::vector<RunnerSampleRow> out;
  while (s.step()) {
    RunnerSampleRow r;
    r.at = fromUnix(s.getDouble(0));
    r.model = s.getText(1);
    r.pid = static_cast<int>(s.getInt(2));
    r.cpuPct = s.getDouble(3);
    r.rssBytes = static_cast<std::uint64_t>(s.getInt(4));
    r.flashAttention = s.getText(5);
    out.push_back(r);
  }
  return out;
}

void Store::pruneSamples(WallTime olderThan) {
  for (const char* table : {"memory_samples", "runner_samples", "ps_samples"}) {
    auto s = db_.prepare(std::string("DELETE FROM ") + table + " WHERE at < ?");
    s.bind(1, unix(olderThan));
    s.run();
  }
}

namespace {
// The trial an idempotency key already names (KeyConflict if its spec differs), or nullopt.
std::optional<std::int64_t> findByKey(Statement& find, const Store::NewTrial& t) {
  if (!t.key) return std::nullopt;
  find.reset();
  find.bind(1, *t.key);
  if (!find.step()) return std::nullopt;
  auto id = find.getInt(0);
  if (find.getText(1) != t.specHash) throw Store::KeyConflict(id, *t.key);
  return id;
}

// One statement for both ways a trial is written: `queued`, or already `running`.
constexpr const char* kInsertTrial =
    "INSERT INTO trials(run, key, model, kind, request, spec_hash, max_attempts, submitted_at, state) "
    "VALUES (?,?,?,?,?,?,?,?,?)";

void bindNewTrial(Statement& ins, const Store::NewTrial& t, double submittedAt, std::string_view state) {
  ins.reset();
  ins.bind(1, t.run).bind(2, t.key).bind(3, t.model).bind(4, t.kind).bind(5, t.request.dump()).bind(6, t.specHash);
  ins.bind(7, t.maxAttempts).bind(8, submittedAt).bind(9, state);
}

constexpr const char* kFindByKey = "SELECT id, spec_hash FROM trials WHERE key = ?";
}  // namespace

std::vector<Store::Inserted> Store::insertTrials(const std::vector<NewTrial>& trials, WallTime now) {
  std::vector<Inserted> out;
  out.reserve(trials.size());
  Database::Transaction tx(db_);
  auto find = db_.prepare(kFindByKey);
  auto ins = db_.prepare(kInsertTrial);
  std::int64_t added = 0;
  for (auto& t : trials) {
    if (auto existing = findByKey(find, t)) {
      out.push_back({*existing, true});
      continue;
    }
    bindNewTrial(ins, t, unix(now), "queued");
    ins.run();
    out.push_back({db_.lastInsertId(), false});
    ++added;
  }
  tx.commit();
  if (counts_) counts_->queued += added;
  return out;
}

Store::InsertedStarted Store::insertStartedTrial(const NewTrial& t, WallTime now) {
  Database::Transaction tx(db_);
  auto find = db_.prepare(kFindByKey);
  if (auto existing = findByKey(find, t)) return {{*existing, true}, 0};
  auto ins = db_.prepare(kInsertTrial);
  bindNewTrial(ins, t, unix(now), "running");
  ins.run();
  InsertedStarted out{{db_.lastInsertId(), false}, 0};
  auto att = db_.prepare("INSERT INTO attempts(trial_id, n, started_at, outcome) VALUES (?,1,?,'running')");
  att.bind(1, out.trial.id).bind(2, unix(now));
  att.run();
  out.attemptId = db_.lastInsertId();
  tx.commit();
  if (counts_) counts_->running += 1;
  return out;
}

std::optional<TrialRow> Store::trial(std::int64_t id, bool withAttempts) {
  auto s = db_.prepare(std::string("SELECT ") + kTrialCols + " FROM trials WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  auto t = readTrial(s);
  if (withAttempts) {
    auto a = db_.prepare(std::string("SELECT ") + kAttemptCols + " FROM attempts WHERE trial_id = ? ORDER BY n");
    a.bind(1, id);
    while (a.step()) t.attempts.push_back(readAttempt(a));
  }
  return t;
}

std::vector<TrialRow> Store::listTrials(const std::optional<std::string>& run, const std::optional<std::string>& state,
                                        std::int64_t afterId, int limit) {
  std::string sql = std::string("SELECT ") + kTrialCols + " FROM trials WHERE id > ?";
  if (run) sql += " AND run = ?";
  if (state) sql += " AND state = ?";
  sql += " ORDER BY id LIMIT ?";
  auto s = db_.prepare(sql);
  int i = 1;
  s.bind(i++, afterId);
  if (run) s.bind(i++, *run);
  if (state) s.bind(i++, *state);
  s.bind(i, limit);
  std::vector<TrialRow> out;
  while (s.step()) out.push_back(readTrial(s));
  return out;
}

TrialCounts& Store::liveCounts() {
  if (!counts_) {
    TrialCounts c;
    auto s = db_.prepare("SELECT state, COUNT(*) FROM trials GROUP BY state");
    while (s.step()) {
      auto st = s.getText(0);
      auto n = s.getInt(1);
      if (st == "queued") c.queued = n;
      else if (st == "running") c.running = n;
      else if (st == "succeeded") c.succeeded = n;
      else if (st == "failed") c.failed = n;
      else if (st == "cancelled") c.cancelled = n;
    }
    counts_ = c;
  }
  return *counts_;
}

void Store::countMove(const std::string& from, const std::string& to, std::int64_t n) {
  if (!counts_) return;  // not loaded yet: the first liveCounts() reads the table
  auto slot = [this](const std::string& st) -> std::int64_t* {
    if (st == "queued") return &counts_->queued;
    if (st == "running") return &counts_->running;
    if (st == "succeeded") return &counts_->succeeded;
    if (st == "failed") return &counts_->failed;
    if (st == "cancelled") return &counts_->cancelled;
    return nullptr;
  };
  auto* a = slot(from);
  auto* b = slot(to);
  if (!a || !b) {
    counts_.reset();
    return;
  }
  *a -= n;
  *b += n;
}

std::string Store::trialState(std::int64_t trialId) {
  auto s = db_.prepare("SELECT state FROM trials WHERE id = ?");
  s.bind(1, trialId);
  return s.step() ? s.getText(0) : std::string();
}

std::optional<Store::TrialOutcome> Store::trialOutcome(std::int64_t trialId) {
  auto s = db_.prepare("SELECT state, error, response FROM trials WHERE id = ?");
  s.bind(1, trialId);
  if (!s.step()) return std::nullopt;
  TrialOutcome o;
  o.state = s.getText(0);
  o.error = s.getOptText(1);
  o.responseText = s.getText(2);
  return o;
}

TrialCounts Store::counts() { return liveCounts(); }

std::int64_t Store::queuedCount() { return liveCounts().queued; }

std::vector<TrialRow> Store::nextQueued(int limit, const std::vector<std::string>& excludedModels) {
  // FIFO within a run; across runs, take the oldest queued trial of each run in turn so that one
  // big run cannot starve a small one submitted later.
  std::string exclude;
  for (std::size_t i = 0; i < excludedModels.size(); ++i) exclude += (i ? ",?" : "?");
  std::vector<std::string> runNames;
  if (exclude.empty()) {
    // A skip-scan over trials_queued_run: one index seek per distinct run with queued trials,
    // then one seek for that run's oldest. INDEXED BY, because without statistics the planner
    // prefers trials_state and sorts every queued row. The GROUP BY below reads every queued row instead,
    // which made each dispatch O(queue length) (issue 6 §3).
    auto runs = db_.prepare(
        "WITH RECURSIVE runs(run) AS ("
        " SELECT (SELECT run FROM trials INDEXED BY trials_queued_run WHERE state = 'queued' ORDER BY run LIMIT 1)"
        " UNION ALL"
        " SELECT (SELECT t.run FROM trials t INDEXED BY trials_queued_run"
        "         WHERE t.state = 'queued' AND t.run > runs.run ORDER BY t.run LIMIT 1)"
        " FROM runs WHERE runs.run IS NOT NULL)"
        " SELECT run, (SELECT MIN(id) FROM trials INDEXED BY trials_queued_run WHERE state = 'queued' AND run = runs.run)"
        " AS first"
        " FROM runs WHERE run IS NOT NULL ORDER BY first LIMIT ?");
    runs.bind(1, limit);
    while (runs.step()) runNames.push_back(runs.getText(0));
  } else {
    std::string runsSql = "SELECT run, MIN(id) FROM trials WHERE state = 'queued'";
    runsSql += " AND model NOT IN (" + exclude + ")";
    runsSql += " GROUP BY run ORDER BY MIN(id) LIMIT ?";
    auto runs = db_.prepare(runsSql);
    int i = 1;
    for (auto& m : excludedModels) runs.bind(i++, m);
    runs.bind(i, limit);
    while (runs.step()) runNames.push_back(runs.getText(0));
  }
  if (runNames.empty()) return {};

  std::string perRunSql = std::string("SELECT ") + kTrialCols +
                          " FROM trials INDEXED BY trials_queued_run WHERE state = 'queued' AND run = ?";
  if (!exclude.empty()) perRunSql += " AND model NOT IN (" + exclude + ")";
  perRunSql += " ORDER BY id LIMIT ?";
  auto per = db_.prepare(perRunSql);
  std::vector<std::vector<TrialRow>> lanes;
  for (auto& r : runNames) {
    per.reset();
    int j = 1;
    per.bind(j++, r);
    for (auto& m : excludedModels) per.bind(j++, m);
    per.bind(j, limit);
    std::vector<TrialRow> lane;
    while (per.step()) lane.push_back(readTrial(per));
    lanes.push_back(std::move(lane));
  }
  std::vector<TrialRow> out;
  for (std::size_t round = 0; static_cast<int>(out.size()) < limit; ++round) {
    bool any = false;
    for (auto& lane : lanes) {
      if (round < lane.size() && static_cast<int>(out.size()) < limit) {
        out.push_back(std::move(lane[round]));
        any = true;
      }
    }
    if (!any) break;
  }
  return out;
}

std::int64_t Store::startAttempt(std::int64_t trialId, WallTime at) {
  Database::Transaction tx(db_);
  auto n = db_.prepare("SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE trial_id = ?");
  n.bind(1, trialId);
  n.step();
  auto next = n.getInt(0);
  auto up = db_.prepare("UPDATE trials SET state = 'running' WHERE id = ? AND state = 'queued'");
  up.bind(1, trialId);
  up.run();
  if (db_.changes() != 1) throw SqliteError("trial " + std::to_string(trialId) + " is not queued", SQLITE_CONSTRAINT);
  auto ins = db_.prepare("INSERT INTO attempts(trial_id, n, started_at, outcome) VALUES (?,?,?,'running')");
  ins.bind(1, trialId).bind(2, next).bind(3, unix(at));
  ins.run();
  auto id = db_.lastInsertId();
  tx.commit();
  countMove("queued", "running");
  return id;
}

void Store::finishAttempt(const AttemptRow& a) {
  auto s = db_.prepare(
      "UPDATE attempts SET ended_at=?, outcome=?, error=?, latency_ms=?, first_token_ms=?, load_duration_ms=?, "
      "eval_count=?, eval_duration_ms=?, counts=? WHERE id=?");
  s.bind(1, a.endedAt ? unix(*a.endedAt) : 0.0).bind(2, a.outcome);
  if (a.error.empty()) s.bindNull(3); else s.bind(3, a.error);
  s.bind(4, a.latencyMs).bind(5, a.firstTokenMs).bind(6, a.loadDurationMs).bind(7, a.evalCount).bind(8, a.evalDurationMs);
  s.bind(9, a.countsAgainstBudget ? 1 : 0).bind(10, a.id);
  s.run();
}

void Store::markTrialQueued(std::int64_t trialId, bool countedAttempt) {
  auto s = db_.prepare(
      "UPDATE trials SET state='queued', attempts_used = attempts_used + ? WHERE id = ? AND state = 'running'");
  s.bind(1, countedAttempt ? 1 : 0).bind(2, trialId);
  s.run();
  if (db_.changes() == 1) countMove("running", "queued");
}

void Store::markTrialSucceeded(std::int64_t trialId, WallTime at, const nlohmann::json& response, bool countedAttempt) {
  auto s = db_.prepare(
      "UPDATE trials SET state='succeeded', finished_at=?, response=?, error=NULL, attempts_used = attempts_used + ? "
      "WHERE id = ? AND state = 'running'");
  s.bind(1, unix(at)).bind(2, response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  s.bind(3, countedAttempt ? 1 : 0).bind(4, trialId);
  s.run();
  if (db_.changes() == 1) countMove("running", "succeeded");
}

void Store::markTrialFailed(std::int64_t trialId, WallTime at, const std::string& error, bool countedAttempt) {
  auto s = db_.prepare(
      "UPDATE trials SET state='failed', finished_at=?, error=?, attempts_used = attempts_used + ? "
      "WHERE id = ? AND state IN ('running', 'queued')");
  auto before = trialState(trialId);
  s.bind(1, unix(at)).bind(2, error).bind(3, countedAttempt ? 1 : 0).bind(4, trialId);
  s.run();
  if (db_.changes() == 1) countMove(before, "failed");
}

bool Store::cancelTrial(std::int64_t trialId, WallTime at) {
  auto s = db_.prepare(
      "UPDATE trials SET state='cancelled', finished_at=? WHERE id = ? AND state IN ('queued','running') "
      "RETURNING id");
  auto before = trialState(trialId);
  s.bind(1, unix(at)).bind(2, trialId);
  bool changed = s.step();
  s.run();
  if (changed) countMove(before, "cancelled");
  return changed;
}

int Store::recoverInterrupted(WallTime at) {
  Database::Transaction tx(db_);
  auto a = db_.prepare(
      "UPDATE attempts SET outcome='interrupted', ended_at=?, error='oasisd stopped while the attempt ran', counts=0 "
      "WHERE outcome='running'");
  a.bind(1, unix(at));
  a.run();
  int n = db_.changes();
  db_.exec("UPDATE trials SET state='queued' WHERE state='running'");
  tx.commit();
  counts_.reset();  // recount once: start-up only
  return n;
}

int Store::requeueOrphanedAttempts(WallTime at, const std::vector<std::int64_t>& liveAttemptIds) {
  Database::Transaction tx(db_);
  std::string live;
  for (auto id : liveAttemptIds) live += (live.empty() ? "" : ",") + std::to_string(id);
  auto a = db_.prepare(
      "UPDATE attempts SET outcome='interrupted', ended_at=?, "
      "error='oasisd could not record how this attempt ended (storage error)', counts=0 "
      "WHERE outcome='running' AND id NOT IN (" + live + ")");
  a.bind(1, unix(at));
  a.run();
  int n = db_.changes();
  db_.exec("UPDATE trials SET state='queued' WHERE state='running' AND id NOT IN "
           "(SELECT trial_id FROM attempts WHERE outcome='running')");
  tx.commit();
  counts_.reset();  // rare (storage repair): recount on the next read
  return n;
}

std::vector<AttemptRow> Store::attemptsBetween(WallTime from, WallTime to) {
  auto s = db_.prepare(std::string("SELECT ") + kAttemptCols +
                       " FROM attempts WHERE ended_at >= ? AND ended_at < ? ORDER BY ended_at");
  s.bind(1, unix(from)).bind(2, unix(to));
  std::vector<AttemptRow> out;
  while (s.step()) out.push_back(readAttempt(s));
  return out;
}

std::vector<TimelineRow> Store::timeline(const std::optional<std::string>& run, WallTime since, WallTime until,
                                         int bucketSeconds) {
  // Attempts are bucketed by when they ended: the table answers "what did a client see in
  // this minute" (the incident report's p50/p95/failure-rate table), including retries.
  const double b = bucketSeconds;
  const double from = std::floor(unix(since) / b) * b;
  const double to = unix(until);
  std::map<std::int64_t, TimelineRow> rows;
  std::map<std::int64_t, std::vector<double>> latencies;
  for (double t = from; t < to; t += b) {
    auto k = static_cast<std::int64_t>(std::llround(t / b));
    rows[k].start = fromUnix(t);
  }
  std::string sql =
      "SELECT a.ended_at, a.outcome, a.latency_ms FROM attempts a JOIN trials t ON t.id = a.trial_id "
      "WHERE a.ended_at >= ? AND a.ended_at < ? AND a.outcome != 'running'";
  if (run) sql += " AND t.run = ?";
  auto s = db_.prepare(sql);
  s.bind(1, from).bind(2, to);
  if (run) s.bind(3, *run);
  while (s.step()) {
    auto k = static_cast<std::int64_t>(std::floor(s.getDouble(0) / b));
    auto& r = rows[k];
    r.start = fromUnix(static_cast<double>(k) * b);
    r.trials++;
    auto outcome = s.getText(1);
    if (outcome == "ok") {
      r.succeeded++;
      if (!s.isNull(2)) latencies[k].push_back(s.getDouble(2));
    } else if (outcome != "interrupted") {
      r.failed++;
      // A timed-out attempt is a latency too: it is what the client waited.
      if (!s.isNull(2)) latencies[k].push_back(s.getDouble(2));
    }
  }
  auto ev = db_.prepare(
      "SELECT at, kind, model FROM events WHERE at >= ? AND at < ? AND kind IN "
      "('paused','resumed','evict_requested','runner_killed','server_restarted','stall_detected','cpu_spill_suspected',"
      "'memory_pressure','memory_recovered') ORDER BY id");
  ev.bind(1, from).bind(2, to);
  while (ev.step()) {
    auto k = static_cast<std::int64_t>(std::floor(ev.getDouble(0) / b));
    auto& r = rows[k];
    r.start = fromUnix(static_cast<double>(k) * b);
    std::string a = ev.getText(1);
    if (!ev.isNull(2)) a += "(" + ev.getText(2) + ")";
    r.actions.push_back(a);
  }
  std::vector<TimelineRow> out;
  for (auto& [k, r] : rows) {
    auto& l = latencies[k];
    r.p50Ms = percentile(l, 50);
    r.p95Ms = percentile(l, 95);
    auto done = r.succeeded + r.failed;
    r.failureRate = done ? static_cast<double>(r.failed) / static_cast<double>(done) : 0.0;
    out.push_back(r);
  }
  return out;
}

}  // namespace oasis
