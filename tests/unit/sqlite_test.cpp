#include <filesystem>

#include "catch.h"
#include "daemon/sqlite.h"
#include "test_support.h"

using namespace oasis;
using namespace std::chrono_literals;

namespace {
void insertRows(Database& db, int n) {
  for (int i = 0; i < n; ++i) {
    Database::Transaction tx(db);
    db.prepare("INSERT INTO t(v) VALUES(?)").bind(1, std::string(3000, static_cast<char>('a' + i % 26))).run();
    tx.commit();
  }
}
}  // namespace

TEST_CASE("sqlite: the background thread checkpoints the WAL, commits do not", "[sqlite]") {
  test::TempDir dir;
  Database::Options opt;
  opt.checkpointPages = 20;
  opt.inlineCheckpointPages = 1000000;
  Database db(dir.file("c.db"), opt);
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  insertRows(db, 40);  // ~1 page of row per commit plus the b-tree: well past 20 pages
  REQUIRE(test::waitFor([&] { return db.checkpointStats().runs > 0; }, 10s));
  // Once a checkpoint has copied the WAL back, the next commits start the WAL over, so the
  // size the commit hook reports falls back below the threshold without any inline checkpoint.
  REQUIRE(test::waitFor(
      [&] {
        insertRows(db, 1);
        return db.checkpointStats().lastWalPages < opt.checkpointPages;
      },
      10s));
  auto s = db.checkpointStats();
  CHECK(s.inlineRuns == 0);
  CHECK(s.failures == 0);
  auto count = db.prepare("SELECT COUNT(*) FROM t");
  REQUIRE(count.step());
  CHECK(count.getInt(0) >= 41);
}

TEST_CASE("sqlite: past the inline limit the committing connection checkpoints itself", "[sqlite]") {
  test::TempDir dir;
  Database::Options opt;
  opt.checkpointPages = 1000000;  // the thread is never asked
  opt.inlineCheckpointPages = 20;
  Database db(dir.file("i.db"), opt);
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  insertRows(db, 40);
  auto s = db.checkpointStats();
  CHECK(s.inlineRuns > 0);
  CHECK(s.runs == 0);
  CHECK(s.lastWalPages < 40);
}

TEST_CASE("sqlite: closing the database checkpoints and removes the WAL", "[sqlite]") {
  test::TempDir dir;
  auto path = dir.file("w.db");
  {
    Database db(path);
    db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    insertRows(db, 10);
    CHECK(std::filesystem::exists(path + "-wal"));
  }
  CHECK_FALSE(std::filesystem::exists(path + "-wal"));
  Database again(path);
  auto count = again.prepare("SELECT COUNT(*) FROM t");
  REQUIRE(count.step());
  CHECK(count.getInt(0) == 10);
}

TEST_CASE("sqlite: an in-memory database has no checkpointer", "[sqlite]") {
  Database db(":memory:");
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  insertRows(db, 5);
  auto s = db.checkpointStats();
  CHECK(s.runs == 0);
  CHECK(s.inlineRuns == 0);
}

TEST_CASE("sqlite: transactions nest as savepoints", "[sqlite]") {
  test::TempDir dir;
  Database db(dir.file("n.db"));
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  auto count = [&] {
    auto s = db.prepare("SELECT COUNT(*) FROM t");
    s.step();
    return s.getInt(0);
  };
  {
    Database::Transaction outer(db);
    db.prepare("INSERT INTO t(v) VALUES('a')").run();
    {
      Database::Transaction inner(db);
      CHECK(db.transactionDepth() == 2);
      db.prepare("INSERT INTO t(v) VALUES('b')").run();
    }  // not committed: only its own row goes
    CHECK(count() == 1);
    {
      Database::Transaction inner(db);
      db.prepare("INSERT INTO t(v) VALUES('c')").run();
      inner.commit();
    }
    outer.commit();
  }
  CHECK(db.transactionDepth() == 0);
  CHECK(count() == 2);
  {
    Database::Transaction outer(db);
    {
      Database::Transaction inner(db);
      db.prepare("INSERT INTO t(v) VALUES('d')").run();
      inner.commit();
    }
  }  // the outer one rolls back what the inner one committed
  CHECK(count() == 2);
  // A different connection sees nothing of an open outer transaction.
  Database other(dir.file("n.db"));
  {
    Database::Transaction outer(db);
    db.prepare("INSERT INTO t(v) VALUES('e')").run();
    auto s = other.prepare("SELECT COUNT(*) FROM t");
    s.step();
    CHECK(s.getInt(0) == 2);
    outer.commit();
  }
  CHECK(count() == 3);
}
