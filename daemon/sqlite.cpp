#include "daemon/sqlite.h"

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

Database::Database(const std::string& path) : path_(path) {
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
  }
}

Database::~Database() {
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

Database::Transaction::Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
Database::Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
    }
  }
}
void Database::Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace oasis
