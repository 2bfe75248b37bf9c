#include "daemon/sqlite.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>

namespace oasis {

namespace {
[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw SqliteError(msg, rc);
}
}  // namespace

bool SqliteError::isStorageFailure() const {
  int primary = code_ & 0xff;
  return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_READONLY ||
         primary == SQLITE_CANTOPEN || primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) fail(db, rc, "prepare '" + std::string(sql.substr(0, 60)) + "'");
}
Statement::~Statement() {
  if (!stmt_) return;
  if (inUse_) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    *inUse_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
}
Statement::Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_), inUse_(o.inUse_) {
  o.stmt_ = nullptr;
  o.inUse_ = nullptr;
}

Statement& Statement::bind(int i, std::int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, i, v);
  if (rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}
Statement& Statement::bind(int i, double v) {
  int rc = sqlite3_bind_double(stmt_, i, v);
  if (rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}
Statement& Statement::bind(int i, std::string_view v) {
  int rc = sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}
Statement& Statement::bindNull(int i) {
  int rc = sqlite3_bind_null(stmt_, i);
  if (rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db_, rc, "step");
}
void Statement::run() {
  while (step()) {
  }
}
void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::isNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
std::int64_t Statement::getInt(int c) const { return sqlite3_column_int64(stmt_, c); }
double Statement::getDouble(int c) const { return sqlite3_column_double(stmt_, c); }
std::string Statement::getText(int c) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, c));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, c))) : std::string();
}
std::optional<std::string> Statement::getOptText(int c) const {
  if (isNull(c)) return std::nullopt;
  return getText(c);
}
std::optional<double> Statement::getOptDouble(int c) const {
  if (isNull(c)) return std::nullopt;
  return getDouble(c);
}
std::optional<std::int64_t> Statement::getOptInt(int c) const {
  if (isNull(c)) return std::nullopt;
  return getInt(c);
}

// Runs PASSIVE checkpoints for one database file on its own thread and its own connection, when
// the owning connection's commits say the WAL has grown past Options::checkpointPages. PASSIVE
// never waits for, nor blocks, the writer: it copies what no reader still needs and fsyncs.
class Database::Checkpointer {
 public:
  explicit Checkpointer(std::string path) : path_(std::move(path)), thread_([this] { run(); }) {}
  ~Checkpointer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  // Called from the committing thread on every commit past the threshold: one atomic read
  // unless a checkpoint is not yet asked for.
  void request() {
    if (wanted_.load(std::memory_order_relaxed)) return;
    {
      std::lock_guard lock(mu_);
      wanted_ = true;
    }
    cv_.notify_one();
  }
  std::uint64_t runs() const { return runs_; }
  std::uint64_t failures() const { return failures_; }

 private:
  void run() {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      spdlog::warn("sqlite checkpointer cannot open {}: {}; checkpoints run inline", path_,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
      if (db) sqlite3_close(db);
      db = nullptr;
    }
    // A new connection knows nothing of the file until it reads it: before that, a checkpoint
    // is a no-op that reports "not in WAL mode". Reading the journal mode opens the WAL.
    if (db && sqlite3_exec(db, "PRAGMA journal_mode", nullptr, nullptr, nullptr) != SQLITE_OK) {
      spdlog::warn("sqlite checkpointer cannot read {}: {}", path_, sqlite3_errmsg(db));
    }
    std::string lastError;
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || wanted_; });
      if (stop_) break;
      lock.unlock();
      if (db) {
        int logPages = 0, done = 0;
        rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &logPages, &done);
        if (rc == SQLITE_OK && logPages < 0) rc = SQLITE_ERROR;  // the connection does not see a WAL
        if (rc == SQLITE_OK) {
          ++runs_;
          lastError.clear();
        } else {
          ++failures_;
          std::string msg = logPages < 0 && rc == SQLITE_ERROR ? "the database is not in WAL mode on this connection"
                                                               : sqlite3_errmsg(db);
          if (msg != lastError) spdlog::warn("sqlite checkpoint of {} failed: {}", path_, msg);
          lastError = msg;
        }
      }
      // At most one checkpoint per 50 ms: while a reader pins the WAL, every commit stays past
      // the threshold and would otherwise ask again at once.
      lock.lock();
      wanted_ = false;
      cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return stop_; });
      if (stop_) break;
    }
    lock.unlock();
    if (db) sqlite3_close(db);
  }

  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> wanted_{false};
  bool stop_ = false;
  std::atomic<std::uint64_t> runs_{0}, failures_{0};
  std::thread thread_;  // last: starts once the members above exist
};

int Database::onWalCommit(void* self, sqlite3* db, const char*, int pages) {
  auto* d = static_cast<Database*>(self);
  d->lastWalPages_.store(pages, std::memory_order_relaxed);
  if (pages >= d->options_.inlineCheckpointPages || (!d->checkpointer_ && pages >= d->options_.checkpointPages)) {
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    d->inlineRuns_.fetch_add(1, std::memory_order_relaxed);
  } else if (d->checkpointer_ && pages >= d->options_.checkpointPages) {
    d->checkpointer_->request();
  }
  return SQLITE_OK;
}

Database::CheckpointStats Database::checkpointStats() const {
  CheckpointStats s;
  if (checkpointer_) {
    s.runs = checkpointer_->runs();
    s.failures = checkpointer_->failures();
  }
  s.inlineRuns = inlineRuns_.load();
  s.lastWalPages = lastWalPages_.load();
  return s;
}

Database::Database(const std::string& path, Options options) : path_(path), options_(options) {
  int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "open database " + path + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
    throw SqliteError(msg, rc);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA foreign_keys=ON");
  if (path != ":memory:") {
    // WAL: readers never block the writer, and a commit is one append. synchronous=NORMAL in
    // WAL mode survives a crash of oasisd (kill -9) without fsync on every commit; only a power
    // loss can drop the last commits.
    auto mode = journalMode();
    if (mode != "wal") {
      Statement s(db_, "PRAGMA journal_mode=WAL");
      s.step();
      mode = s.getText(0);
      if (mode != "wal") throw SqliteError("database " + path + " refused WAL mode (got " + mode + ")", SQLITE_ERROR);
    }
    exec("PRAGMA synchronous=NORMAL");
    // Replaces SQLite's automatic checkpoint (which runs inside the commit that crosses 1000
    // pages, fsync included) with the background one.
    try {
      checkpointer_ = std::make_unique<Checkpointer>(path);
    } catch (const std::system_error& e) {
      spdlog::warn("no background checkpoint thread ({}): checkpoints run inline", e.what());
    }
    sqlite3_wal_hook(db_, &Database::onWalCommit, this);
  }
}

Database::~Database() {
  // The checkpointer's connection closes first, so that closing the last one below
  // checkpoints the whole WAL and removes it, as before.
  checkpointer_.reset();
  for (auto& [sql, c] : cache_) sqlite3_finalize(c->stmt);
  if (db_) sqlite3_close_v2(db_);
}

Statement Database::prepare(std::string_view sql) {
  auto it = cache_.find(std::string(sql));
  if (it == cache_.end()) {
    if (cache_.size() >= kMaxCached) return Statement(db_, sql);
    auto c = std::make_unique<Cached>();
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &c->stmt,
                                nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(c->stmt);
      fail(db_, rc, "prepare '" + std::string(sql.substr(0, 60)) + "'");
    }
    it = cache_.emplace(std::string(sql), std::move(c)).first;
  }
  Cached& c = *it->second;
  if (c.inUse) return Statement(db_, sql);
  c.inUse = true;
  return Statement(db_, c.stmt, &c.inUse);
}

void Database::exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = std::string("exec: ") + (err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    throw SqliteError(msg, rc);
  }
}

std::int64_t Database::lastInsertId() const { return sqlite3_last_insert_rowid(db_); }
int Database::changes() const { return sqlite3_changes(db_); }

std::string Database::journalMode() {
  Statement s(db_, "PRAGMA journal_mode");
  s.step();
  return s.getText(0);
}

Database::Transaction::Transaction(Database& db) : db_(db), depth_(db.depth_) {
  if (depth_ == 0) db_.prepare("BEGIN IMMEDIATE").run();
  else db_.prepare("SAVEPOINT nested_" + std::to_string(depth_)).run();
  ++db_.depth_;
}
Database::Transaction::~Transaction() {
  if (done_) return;
  try {
    if (depth_ == 0) {
      db_.prepare("ROLLBACK").run();
    } else {
      auto name = "nested_" + std::to_string(depth_);
      db_.prepare("ROLLBACK TO " + name).run();
      db_.prepare("RELEASE " + name).run();
    }
  } catch (...) {
    // A failed COMMIT or an I/O error may already have ended the transaction.
  }
  --db_.depth_;
}
void Database::Transaction::commit() {
  if (depth_ == 0) db_.prepare("COMMIT").run();
  else db_.prepare("RELEASE nested_" + std::to_string(depth_)).run();
  done_ = true;
  --db_.depth_;
}

}  // namespace oasis
