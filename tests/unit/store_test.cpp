#include "catch.h"
#include "daemon/store.h"
#include "test_support.h"

using namespace oasis;
using namespace std::chrono_literals;

namespace {
Store::NewTrial spec(std::string run, std::optional<std::string> key = std::nullopt, std::string hash = "h1") {
  Store::NewTrial t;
  t.run = std::move(run);
  t.model = "tiny:latest";
  t.kind = "generate";
  t.request = {{"prompt", "hi"}};
  t.key = std::move(key);
  t.specHash = std::move(hash);
  return t;
}
}  // namespace

TEST_CASE("percentile uses nearest rank and is empty-safe", "[store]") {
  CHECK_FALSE(percentile({}, 50).has_value());
  CHECK(*percentile({7}, 95) == 7);
  CHECK(*percentile({1, 2, 3, 4}, 50) == 2);
  CHECK(*percentile({5, 1, 4, 2, 3}, 50) == 3);
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  CHECK(*percentile(v, 95) == 95);
}

TEST_CASE("store: migrations run once and use WAL on disk", "[store]") {
  test::TempDir dir;
  {
    Store s(dir.file("a.db"));
    CHECK(s.schemaVersion() == 4);
    CHECK(s.db().journalMode() == "wal");
  }
  Store again(dir.file("a.db"));
  CHECK(again.schemaVersion() == 4);
  // Migration 4: attempts still running (ended_at NULL) are not in the window index.
  auto sql = again.db().prepare("SELECT sql FROM sqlite_master WHERE name = 'attempts_ended'");
  REQUIRE(sql.step());
  CHECK(sql.getText(0).find("WHERE ended_at IS NOT NULL") != std::string::npos);
  auto plan = again.db().prepare(
      "EXPLAIN QUERY PLAN SELECT ended_at, outcome, latency_ms FROM attempts WHERE ended_at >= 1 AND ended_at < 2");
  std::string steps;
  while (plan.step()) steps += plan.getText(3) + "\n";
  CHECK(steps.find("USING INDEX attempts_ended") != std::string::npos);
}

TEST_CASE("store: a submit that starts at once is written running, with its first attempt", "[store]") {
  test::TempDir dir;
  ManualClock clock;
  Store s(dir.file("s.db"));
  CHECK(s.counts().running == 0);  // loaded: from here on every change adjusts them in memory
  auto r = s.insertStartedTrial(spec("r", "k1"), clock.wallNow());
  CHECK_FALSE(r.trial.existed);
  REQUIRE(r.attemptId > 0);
  auto t = s.trial(r.trial.id);
  REQUIRE(t);
  CHECK(t->state == "running");
  CHECK(t->attemptsUsed == 0);
  REQUIRE(t->attempts.size() == 1);
  CHECK(t->attempts[0].id == r.attemptId);
  CHECK(t->attempts[0].n == 1);
  CHECK(t->attempts[0].outcome == "running");
  CHECK(s.counts().running == 1);
  CHECK(s.counts().queued == 0);
  CHECK(s.nextQueued(10, {}).empty());
  {
    Store recount(dir.file("s.db"));  // a second connection counts with GROUP BY
    CHECK(recount.counts().running == 1);
    CHECK(recount.counts().queued == 0);
  }
  // The same key again: the existing trial, not started a second time; another body conflicts.
  auto again = s.insertStartedTrial(spec("r", "k1"), clock.wallNow());
  CHECK(again.trial.existed);
  CHECK(again.trial.id == r.trial.id);
  CHECK(again.attemptId == 0);
  CHECK(s.trial(r.trial.id)->attempts.size() == 1);
  CHECK_THROWS_AS(s.insertStartedTrial(spec("r", "k1", "other"), clock.wallNow()), Store::KeyConflict);
  CHECK(s.counts().running == 1);
  // It ends like any started trial, and a crash while it runs requeues it.
  auto second = s.insertStartedTrial(spec("r"), clock.wallNow());
  CHECK(s.counts().running == 2);
  CHECK(s.recoverInterrupted(clock.wallNow()) == 2);
  CHECK(s.trial(second.trial.id)->state == "queued");
}

TEST_CASE("store: trialOutcome gives the stored response text and the last error", "[store]") {
  Store s(":memory:");
  ManualClock clock;
  auto ok = s.insertStartedTrial(spec("r"), clock.wallNow());
  auto bad = s.insertStartedTrial(spec("r"), clock.wallNow());
  auto queued = s.insertTrials({spec("r")}, clock.wallNow())[0].id;
  nlohmann::json response = {{"model", "tiny:latest"}, {"response", "caf\u00e9"}, {"done", true}};
  s.markTrialSucceeded(ok.trial.id, clock.wallNow(), response, true);
  s.markTrialFailed(bad.trial.id, clock.wallNow(), "model 'x' not found", true);
  auto o = s.trialOutcome(ok.trial.id);
  REQUIRE(o);
  CHECK(o->state == "succeeded");
  CHECK_FALSE(o->error);
  CHECK(nlohmann::json::parse(o->responseText) == response);
  auto f = s.trialOutcome(bad.trial.id);
  REQUIRE(f);
  CHECK(f->state == "failed");
  CHECK(f->error == "model 'x' not found");
  CHECK(f->responseText.empty());
  CHECK(s.trialOutcome(queued)->state == "queued");
  CHECK_FALSE(s.trialOutcome(queued + 100));
}

TEST_CASE("store: idempotency keys return the same trial or conflict", "[store]") {
  Store s(":memory:");
  ManualClock clock;
  auto first = s.insertTrials({spec("r", "k1")}, clock.wallNow());
  auto again = s.insertTrials({spec("r", "k1")}, clock.wallNow());
  CHECK(again[0].id == first[0].id);
  CHECK(again[0].existed);
  CHECK_THROWS_AS(s.insertTrials({spec("r", "k1", "other")}, clock.wallNow()), Store::KeyConflict);
  CHECK(s.queuedCount() == 1);
}

TEST_CASE("store: a failing batch inserts nothing", "[store]") {
  Store s(":memory:");
  ManualClock clock;
  s.insertTrials({spec("r", "k1")}, clock.wallNow());
  CHECK_THROWS(s.insertTrials({spec("r", "k2"), spec("r", "k1", "different")}, clock.wallNow()));
  CHECK(s.counts().queued == 1);
  CHECK(s.listTrials(std::nullopt, std::nullopt, 0, 10).size() == 1);
}

TEST_CASE("store: dispatch order is FIFO per run and round-robin across runs", "[store]") {
  Store s(":memory:");
  ManualClock clock;
  s.insertTrials({spec("big"), spec("big"), spec("big")}, clock.wallNow());
  s.insertTrials({spec("small")}, clock.wallNow());
  auto next = s.nextQueued(4, {});
  REQUIRE(next.size() == 4);
  CHECK(next[0].run == "big");
  CHECK(next[1].run == "small");
  CHECK(next[2].run == "big");
  CHECK(next[0].id < next[2].id);
  CHECK(s.nextQueued(10, {"tiny:latest"}).empty());
}

TEST_CASE("store: the dispatcher's per-run seek takes each run's oldest, oldest run first", "[store]") {
  Store s(":memory:");
  ManualClock clock;
  auto b = s.insertTrials({spec("b"), spec("b")}, clock.wallNow());
  auto a = s.insertTrials({spec("a"), spec("a")}, clock.wallNow());
  s.insertTrials({spec("c")}, clock.wallNow());
  s.startAttempt(b[0].id, clock.wallNow());  // "b"'s head is running: its next is b[1]
  auto next = s.nextQueued(3, {});
  REQUIRE(next.size() == 3);
  CHECK(next[0].id == b[1].id);  // runs ordered by their oldest queued trial, not by name
  CHECK(next[1].id == a[0].id);
  CHECK(next[2].run == "c");
  CHECK(s.nextQueued(1, {})[0].id == b[1].id);
}

TEST_CASE("store: in-memory trial counts match a recount after every kind of change", "[store]") {
  test::TempDir dir;
  ManualClock clock;
  Store s(dir.file("n.db"));
  auto recount = [&] {
    Store fresh(dir.file("n.db"));  // a second connection counts with GROUP BY
    return fresh.counts();
  };
  auto same = [&] {
    auto live = s.counts();
    auto db = recount();
    CHECK(live.queued == db.queued);
    CHECK(live.running == db.running);
    CHECK(live.succeeded == db.succeeded);
    CHECK(live.failed == db.failed);
    CHECK(live.cancelled == db.cancelled);
  };
  auto ids = s.insertTrials({spec("r"), spec("r"), spec("r"), spec("r"), spec("r"), spec("r")}, clock.wallNow());
  same();
  for (int i = 0; i < 5; ++i) s.startAttempt(ids[static_cast<std::size_t>(i)].id, clock.wallNow());
  same();
  s.markTrialSucceeded(ids[0].id, clock.wallNow(), {}, true);
  s.markTrialSucceeded(ids[0].id, clock.wallNow(), {}, true);  // already ended: no change
  s.markTrialQueued(ids[1].id, true);
  s.markTrialFailed(ids[2].id, clock.wallNow(), "running -> failed", true);
  s.markTrialFailed(ids[5].id, clock.wallNow(), "queued -> failed", true);
  s.markTrialFailed(ids[0].id, clock.wallNow(), "ended: no change", true);
  CHECK(s.cancelTrial(ids[3].id, clock.wallNow()));  // running -> cancelled
  CHECK(s.cancelTrial(ids[1].id, clock.wallNow()));  // queued -> cancelled
  CHECK_FALSE(s.cancelTrial(ids[1].id, clock.wallNow()));
  same();
  CHECK(s.counts().running == 1);
  CHECK(s.counts().queued == 0);
  CHECK(s.recoverInterrupted(clock.wallNow()) == 5);  // attempts left 'running' (never finished here)
  same();
  CHECK(s.queuedCount() == 1);
}

TEST_CASE("store: crash recovery marks running attempts interrupted and requeues", "[store]") {
  test::TempDir dir;
  ManualClock clock;
  std::int64_t id;
  {
    Store s(dir.file("c.db"));
    id = s.insertTrials({spec("r")}, clock.wallNow())[0].id;
    s.startAttempt(id, clock.wallNow());
    CHECK(s.counts().running == 1);
  }  // "crash": the process goes away with the attempt running
  Store s(dir.file("c.db"));
  CHECK(s.recoverInterrupted(clock.wallNow()) == 1);
  auto t = s.trial(id);
  REQUIRE(t);
  CHECK(t->state == "queued");
  REQUIRE(t->attempts.size() == 1);
  CHECK(t->attempts[0].outcome == "interrupted");
  CHECK_FALSE(t->attempts[0].countsAgainstBudget);
  CHECK(s.queuedCount() == 1);
}

TEST_CASE("store: a trial ends exactly once", "[store]") {
  Store s(":memory:");
  ManualClock clock;
  auto id = s.insertTrials({spec("r")}, clock.wallNow())[0].id;
  s.startAttempt(id, clock.wallNow());
  s.markTrialSucceeded(id, clock.wallNow(), {{"response", "ok"}}, true);
  CHECK_FALSE(s.cancelTrial(id, clock.wallNow()));
  s.markTrialFailed(id, clock.wallNow(), "late failure", true);
  auto t = s.trial(id);
  CHECK(t->state == "succeeded");
  CHECK(t->response["response"] == "ok");
}

TEST_CASE("store: timeline buckets attempts, percentiles and actions", "[store]") {
  Store s(":memory:");
  ManualClock clock;
  auto t0 = clock.wallNow();
  auto ids = s.insertTrials({spec("r"), spec("r"), spec("r")}, t0);
  auto finish = [&](std::int64_t trial, WallTime end, const char* outcome, double ms) {
    auto a = s.startAttempt(trial, end);
    AttemptRow row;
    row.id = a;
    row.endedAt = end;
    row.outcome = outcome;
    row.latencyMs = ms;
    s.finishAttempt(row);
    if (std::string(outcome) == "ok") s.markTrialSucceeded(trial, end, {}, true);
    else s.markTrialQueued(trial, true);
  };
  finish(ids[0].id, t0 + 10s, "ok", 4000);
  finish(ids[1].id, t0 + 20s, "ok", 6000);
  finish(ids[2].id, t0 + 70s, "timeout", 60000);
  s.addEvent(t0 + 75s, "runner_killed", "tiny:latest", {});
  auto rows = s.timeline(std::nullopt, t0, t0 + 180s, 60);
  REQUIRE(rows.size() >= 3);
  CHECK(rows[0].trials == 2);
  CHECK(rows[0].failureRate == 0.0);
  CHECK(*rows[0].p50Ms == 4000);
  CHECK(rows[1].failed == 1);
  CHECK(rows[1].failureRate == 1.0);
  REQUIRE(rows[1].actions.size() == 1);
  CHECK(rows[1].actions[0] == "runner_killed(tiny:latest)");
  CHECK(rows[2].trials == 0);
  CHECK_FALSE(rows[2].p50Ms.has_value());
}
