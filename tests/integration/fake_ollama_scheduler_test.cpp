// fake-ollama's scheduler semantics (ollama-behaviour.md §1 "How expires_at is set", §3, §4):
// expires_at staleness, absence while loading, the keep_alive:0 + hung request deadlock, and
// what SIGTERM / SIGKILL of serve do to its runners.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "catch.h"
#include "common/clock.h"
#include "support/fake_ollama.h"

using nlohmann::json;
using oasis::test::FakeOllama;
using oasis::test::HeldStream;
using oasis::test::holdsFor;
using oasis::test::processAlive;
using oasis::test::waitFor;
using namespace std::chrono_literals;

namespace {

json psModels(const FakeOllama& fo) { return json::parse(fo.get("/api/ps").body)["models"]; }

std::optional<json> psEntry(const FakeOllama& fo, const std::string& name) {
  for (auto& m : psModels(fo))
    if (m["name"] == name) return m;
  return std::nullopt;
}

oasis::WallTime expiresAt(const json& entry) {
  oasis::WallTime t;
  REQUIRE(oasis::parseIso8601(entry["expires_at"].get<std::string>(), t));
  return t;
}

double secondsFromNow(oasis::WallTime t) {
  return std::chrono::duration<double>(t - std::chrono::system_clock::now()).count();
}

std::string slowCatalog(const oasis::test::TempDir& dir) {
  // load 1 s, generation 10 tokens at 10 tokens/s = 1 s
  std::ofstream(dir.file("models.json")) << R"({"models":[
    {"name":"slow:1b","size":2000000000,"load_ms":1000,"tokens_per_s":10,"num_predict":10},
    {"name":"tiny","size":50000000,"load_ms":50}]})";
  return dir.file("models.json");
}

}  // namespace

TEST_CASE("fake-ollama: expires_at is absent while loading, moving during the first request, then stale",
          "[fake_ollama]") {
  oasis::test::TempDir dir;
  FakeOllama fo({{"FAKE_OLLAMA_MODELS", slowCatalog(dir)}});
  const std::string first = R"({"model":"slow:1b","prompt":"a","keep_alive":"10m","stream":false})";

  // 1. A cold load: the runner process exists but the model is not in ps yet (era C).
  std::optional<oasis::Result<oasis::http::Response>> firstResult;
  std::thread a([&] {
    oasis::http::Request req;
    req.method = "POST";
    req.target = "/api/generate";
    req.body = first;
    firstResult = oasis::http::fetch(fo.endpoint(), req, 30s);
  });
  REQUIRE(waitFor([&] { return !fo.runnerPids().empty(); }, 10s));
  CHECK(psModels(fo).empty());

  // 2. First request after the load: expires_at = now + keep_alive, recomputed on every poll.
  REQUIRE(waitFor([&] { return psEntry(fo, "slow:1b").has_value(); }, 10s));
  auto e1 = expiresAt(*psEntry(fo, "slow:1b"));
  CHECK(secondsFromNow(e1) == Approx(600).margin(5));
  std::this_thread::sleep_for(5ms);  // not a race guard: the clock must move between polls
  auto e2 = expiresAt(*psEntry(fo, "slow:1b"));
  CHECK(e2 > e1);
  a.join();
  REQUIRE(firstResult.has_value());
  REQUIRE(firstResult->ok());
  CHECK((*firstResult)->status == 200);

  // 3. Idle: expires_at was set once, at the end of the request.
  auto idle = expiresAt(*psEntry(fo, "slow:1b"));
  CHECK(secondsFromNow(idle) == Approx(600).margin(5));
  CHECK(holdsFor([&] { return expiresAt(*psEntry(fo, "slow:1b")) == idle; }, 200ms));

  // 4. A later request with keep_alive 1h: while it runs, expires_at is the stale idle value.
  {
    auto held = HeldStream::open(fo.endpoint(), "/api/generate", R"({"model":"slow:1b","prompt":"b","keep_alive":"1h"})");
    REQUIRE(held);
    REQUIRE(held->nextLine(10s));  // the first token: the request is running
    CHECK(expiresAt(*psEntry(fo, "slow:1b")) == idle);
    while (auto line = held->nextLine(10s))
      if (json::parse(*line)["done"] == true) break;
  }
  REQUIRE(waitFor([&] { return secondsFromNow(expiresAt(*psEntry(fo, "slow:1b"))) > 3000; }, 5s));
  CHECK(secondsFromNow(expiresAt(*psEntry(fo, "slow:1b"))) == Approx(3600).margin(5));

  // 5. keep_alive:0 during a request: expires_at = now (soon in the past), the model stays
  //    until the request ends, then the runner is killed and reaped.
  auto runner = fo.runnerPids().at(0);
  {
    auto held = HeldStream::open(fo.endpoint(), "/api/generate", R"({"model":"slow:1b","prompt":"c"})");
    REQUIRE(held);
    REQUIRE(held->nextLine(10s));
    auto unload = json::parse(fo.post("/api/generate", R"({"model":"slow:1b","keep_alive":0})").body);
    CHECK(unload["done_reason"] == "unload");
    auto entry = psEntry(fo, "slow:1b");
    REQUIRE(entry);  // still there: a request holds it
    CHECK(secondsFromNow(expiresAt(*entry)) <= 0.01);
    CHECK(secondsFromNow(expiresAt(*entry)) > -5);
    while (auto line = held->nextLine(10s))
      if (json::parse(*line)["done"] == true) break;
  }
  CHECK(waitFor([&] { return !psEntry(fo, "slow:1b"); }, 5s));
  CHECK(waitFor([&] { return !processAlive(runner); }, 5s));
}

TEST_CASE("fake-ollama: ps is sorted by expires_at, keep_alive numbers are seconds, negative is forever",
          "[fake_ollama]") {
  oasis::test::TempDir dir;
  FakeOllama fo({{"FAKE_OLLAMA_MODELS", slowCatalog(dir)}, {"OLLAMA_KEEP_ALIVE", "2m"}});
  // tiny with the server default (2m), slow:1b forever.
  CHECK(fo.post("/api/generate", R"({"model":"tiny"})").status == 200);
  CHECK(fo.post("/api/generate", R"({"model":"slow:1b","keep_alive":-1})").status == 200);
  auto models = psModels(fo);
  REQUIRE(models.size() == 2);
  CHECK(models[0]["name"] == "slow:1b");  // longest remaining first
  CHECK(models[0]["expires_at"].get<std::string>().substr(0, 2) == "23");  // ~292 years ahead
  CHECK(models[1]["name"] == "tiny:latest");
  CHECK(secondsFromNow(expiresAt(models[1])) == Approx(120).margin(5));
  for (auto& m : models) {
    CHECK(m["digest"].get<std::string>().size() == 64);
    CHECK(m["size_vram"] == m["size"]);
    CHECK(m["context_length"].is_number_integer());
    CHECK(m["details"]["families"].is_array());
  }
  // A number is seconds: keep_alive 1 unloads one second after the request ends.
  auto runner = fo.runnerPids();
  CHECK(fo.post("/api/generate", R"({"model":"tiny","prompt":"x","keep_alive":1,"stream":false})").status == 200);
  CHECK(secondsFromNow(expiresAt(*psEntry(fo, "tiny:latest"))) == Approx(1).margin(1));
  CHECK(waitFor([&] { return !psEntry(fo, "tiny:latest"); }, 5s));
  CHECK(psEntry(fo, "slow:1b").has_value());
}

TEST_CASE("fake-ollama: a hung generation plus keep_alive:0 deadlocks until the client lets go", "[fake_ollama]") {
  FakeOllama fo;
  REQUIRE(fo.post("/_fake/faults", R"({"hang_after_tokens":2})").status == 200);
  auto held = HeldStream::open(fo.endpoint(), "/api/generate", R"({"model":"tiny","prompt":"hang please"})");
  REQUIRE(held);
  REQUIRE(held->nextLine(10s));
  REQUIRE(held->nextLine(10s));
  REQUIRE(fo.waitForLog("generation hung", 10s));
  auto runners = fo.runnerPids();
  REQUIRE(runners.size() == 1);
  const pid_t runner = runners[0];

  auto unload = json::parse(fo.post("/api/generate", R"({"model":"tiny","keep_alive":0})").body);
  CHECK(unload["done_reason"] == "unload");  // answered at once

  // "Stopping...": still in ps, expires_at in the past, runner alive, for as long as the
  // client holds its connection.
  auto entry = psEntry(fo, "tiny:latest");
  REQUIRE(entry);
  CHECK(secondsFromNow(expiresAt(*entry)) <= 0);
  CHECK(holdsFor([&] { return psEntry(fo, "tiny:latest").has_value() && processAlive(runner); }, 1s));

  // A retry waits behind the hung slot (holding its own reference) and never starts.
  oasis::http::Request retry;
  retry.method = "POST";
  retry.target = "/api/generate";
  retry.body = R"({"model":"tiny","prompt":"retry","stream":false})";
  auto retried = oasis::http::fetch(fo.endpoint(), retry, 1500ms);
  CHECK_FALSE(retried.ok());
  CHECK(psEntry(fo, "tiny:latest").has_value());
  CHECK(processAlive(runner));

  // Closing the client connection drops the last reference: the pending unload proceeds,
  // the runner is SIGKILLed and reaped (gone from the process table, not even a zombie).
  held->close();
  CHECK(waitFor([&] { return !psEntry(fo, "tiny:latest"); }, 5s));
  CHECK(waitFor([&] { return !oasis::test::readProcStat(runner).has_value(); }, 5s));
  CHECK(fo.waitForLog("unloaded runner model=tiny:latest pid=" + std::to_string(runner), 5s));

  // The model loads again afterwards, in a new runner.
  auto after = fo.post("/api/generate", R"({"model":"tiny","prompt":"again","stream":false})");
  CHECK(after.status == 200);
  auto now = fo.runnerPids();
  REQUIRE(now.size() == 1);
  CHECK(now[0] != runner);
}

TEST_CASE("fake-ollama: SIGTERM on serve kills its runners and exits 0", "[fake_ollama]") {
  FakeOllama fo;
  CHECK(fo.post("/api/generate", R"({"model":"tiny"})").status == 200);
  CHECK(fo.post("/api/generate", R"({"model":"gemma4:e4b"})").status == 200);
  auto runners = fo.runnerPids();
  REQUIRE(runners.size() == 2);
  for (auto r : runners) {
    auto st = oasis::test::readProcStat(r);
    REQUIRE(st);
    CHECK(st->pgrp == fo.pid());  // same process group as serve
    auto args = oasis::test::processArgs(r);
    CHECK(args.at(1) == "runner");
    CHECK(oasis::test::argAfter(args, "--flash-attn") == "on");
  }
  fo.signal(SIGTERM);
  REQUIRE(fo.waitExit(10s));
  CHECK(WIFEXITED(fo.exitStatus()));
  CHECK(WEXITSTATUS(fo.exitStatus()) == 0);
  for (auto r : runners) CHECK(waitFor([&] { return !processAlive(r); }, 5s));
}

TEST_CASE("fake-ollama: SIGKILL on serve orphans its runners", "[fake_ollama]") {
  FakeOllama fo;
  CHECK(fo.post("/api/generate", R"({"model":"tiny"})").status == 200);
  auto runners = fo.runnerPids();
  REQUIRE(runners.size() == 1);
  const pid_t runner = runners[0];
  const pid_t serve = fo.pid();
  fo.signal(SIGKILL);
  REQUIRE(fo.waitExit(10s));
  CHECK(WIFSIGNALED(fo.exitStatus()));
  CHECK(holdsFor([&] { return processAlive(runner); }, 300ms));
  auto st = oasis::test::readProcStat(runner);
  REQUIRE(st);
  CHECK(st->ppid != serve);  // re-parented
  ::kill(runner, SIGKILL);
  CHECK(waitFor([&] { return !processAlive(runner); }, 5s));
}
