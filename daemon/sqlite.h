#pragma once
// Thin RAII over the SQLite C API: one Database (connection) and prepared Statements with
// bound parameters. Errors throw SqliteError; callers at the API boundary turn them into 503s.
#include <sqlite3.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace oasis {

class SqliteError : public std::runtime_error {
 public:
  SqliteError(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }
  // SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN: the disk, not the request.
  bool isStorageFailure() const;

 private:
  int code_;
};

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);  // prepared for this use, finalized after it
  ~Statement();
  Statement(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;

  Statement& bind(int index, std::int64_t v);
  Statement& bind(int index, int v) { return bind(index, static_cast<std::int64_t>(v)); }
  Statement& bind(int index, double v);
  Statement& bind(int index, std::string_view v);
  Statement& bind(int index, const char* v) { return bind(index, std::string_view(v)); }
  Statement& bind(int index, const std::string& v) { return bind(index, std::string_view(v)); }
  Statement& bindNull(int index);
  template <typename T>
  Statement& bind(int index, const std::optional<T>& v) {
    return v ? bind(index, *v) : bindNull(index);
  }

  bool step();  // true while a row is available
  void run();   // step to completion, for statements without rows
  void reset();

  bool isNull(int col) const;
  std::int64_t getInt(int col) const;
  double getDouble(int col) const;
  std::string getText(int col) const;
  std::optional<std::string> getOptText(int col) const;
  std::optional<double> getOptDouble(int col) const;
  std::optional<std::int64_t> getOptInt(int col) const;

 private:
  friend class Database;
  // Borrowed from Database's cache: reset and handed back instead of finalized.
  Statement(sqlite3* db, sqlite3_stmt* cached, bool* inUse) : db_(db), stmt_(cached), inUse_(inUse) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  bool* inUse_ = nullptr;  // non-null: borrowed
};

class Database {
 public:
  struct Options {
    // WAL pages after which a checkpoint is due (SQLite's own automatic checkpoint uses 1000).
    // The checkpoint runs on a background thread with its own connection: it copies pages into
    // the database file and fsyncs, ~15 ms here, which on the event loop stalled every ~70th
    // trial. Commits never wait for it (PASSIVE).
    int checkpointPages = 1000;
    // Past this many pages (the background thread cannot keep up, or failed to start), the
    // committing connection checkpoints inline, so the WAL file cannot grow without bound.
    int inlineCheckpointPages = 50000;
  };
  // ":memory:" for tests. Opens with WAL and a busy timeout; throws SqliteError.
  explicit Database(const std::string& path) : Database(path, Options()) {}
  Database(const std::string& path, Options options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(std::string_view sql);
  // A statement for `sql`. Compiled statements are kept (up to kMaxCached distinct texts) and
  // reused, so the store's per-trial queries are parsed once, not on every call; a text whose
  // cached statement is still in use (nested use) gets a fresh one.
  Statement prepare(std::string_view sql);
  static constexpr std::size_t kMaxCached = 256;
  std::int64_t lastInsertId() const;
  int changes() const;
  sqlite3* handle() { return db_; }
  const std::string& path() const { return path_; }
  std::string journalMode();

  // The background checkpointer's record (all zero for ":memory:").
  struct CheckpointStats {
    std::uint64_t runs = 0;         // PASSIVE checkpoints completed by the background thread
    std::uint64_t inlineRuns = 0;   // checkpoints the committing connection ran itself
    std::uint64_t failures = 0;
    int lastWalPages = 0;           // WAL size reported after the latest commit
  };
  CheckpointStats checkpointStats() const;

  // RAII transaction: commits in commit(), rolls back if destroyed first. Transactions nest:
  // the outermost is BEGIN IMMEDIATE ... COMMIT, an inner one a SAVEPOINT, so a store call that
  // opens its own transaction can also run as one part of a caller's larger one (its failure
  // then undoes only its part, and nothing is durable until the outermost commits).
  class Transaction {
   public:
    explicit Transaction(Database& db);
    ~Transaction();
    void commit();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

   private:
    Database& db_;
    int depth_;  // 0: the outermost
    bool done_ = false;
  };
  int transactionDepth() const { return depth_; }

 private:
  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool inUse = false;
  };
  class Checkpointer;
  static int onWalCommit(void* self, sqlite3* db, const char* schema, int pages);

  sqlite3* db_ = nullptr;
  std::string path_;
  Options options_;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::atomic<int> lastWalPages_{0};
  std::atomic<std::uint64_t> inlineRuns_{0};
  std::unordered_map<std::string, std::unique_ptr<Cached>> cache_;
  int depth_ = 0;  // open Transactions
};

}  // namespace oasis
