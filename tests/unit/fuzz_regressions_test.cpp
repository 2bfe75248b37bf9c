// Regressions for what fuzzing oasisd's input surfaces turned up (tests/fuzz, issue 7), plus the
// behaviour of the parsers that were moved out of the handlers so the fuzz targets could call
// them (daemon/api_bodies.h, daemon/ollama_wire.h). Ollama is input too: none of these throw.
#include <nlohmann/json.hpp>
#include <set>

#include "catch.h"
#include "common/config.h"
#include "common/process_parse.h"
#include "daemon/api_bodies.h"
#include "daemon/ollama_wire.h"

using namespace oasis;
using nlohmann::json;

TEST_CASE("fuzz regression: /api/ps with wrong types neither throws nor converts out of range", "[fuzz_regression]") {
  // Before: m.value("name", ...) threw on a non-string name (the probe coroutine died every
  // tick), and a float size went through get<uint64_t>() (undefined for 1e30 or -1.5).
  auto body = json::parse(R"({"models":[
      {"name": 7, "model": "fallback:latest", "size": 1e30, "size_vram": -1.5},
      {"name": "a:1", "size": -4, "size_vram": 10.0, "expires_at": 12},
      {"model": ["x"]}, "not an object",
      {"name": "gemma3:12b", "size": 10130544640, "size_vram": 10130544640,
       "expires_at": "2026-08-21T19:03:12.514722-07:00"}]})");
  std::vector<policy::PsModel> models;
  REQUIRE_NOTHROW(models = parsePsModels(body));
  REQUIRE(models.size() == 3);
  CHECK(models[0].name == "fallback:latest");
  CHECK(models[0].size == 0);
  CHECK(models[0].sizeVram == 0);
  CHECK(models[1].name == "a:1");
  CHECK(models[1].size == 0);
  CHECK(models[1].sizeVram == 10);
  CHECK(models[1].expiresAt == WallTime{});
  CHECK(models[2].name == "gemma3:12b");
  CHECK(models[2].size == 10130544640ull);
  WallTime expected;
  REQUIRE(parseIso8601("2026-08-22T02:03:12.514722Z", expected));
  CHECK(models[2].expiresAt == expected);
  CHECK(parsePsModels(json::parse(R"({"models": {"name": "x"}})")).empty());
  CHECK(parsePsModels(json::parse("[1,2]")).empty());
}

TEST_CASE("fuzz regression: /api/version with a non-string version is no version", "[fuzz_regression]") {
  // Before: j.value("version", "") threw, before the probe reached /api/ps, on every probe.
  CHECK(parseVersionBody(json::parse(R"({"version": 12})")).empty());
  CHECK(parseVersionBody(json::parse(R"({"version": "0.12.3"})")) == "0.12.3");
  CHECK(parseVersionBody(json::parse("null")).empty());
}

TEST_CASE("fuzz regression: a stream chunk whose done is not a boolean does not throw", "[fuzz_regression]") {
  // Before: chunk.value("done", false) threw out of runAttempt, which left the attempt in
  // inflight_ for good: a dispatch slot stranded by one bad line from the server.
  StreamAssembler a(false);
  StreamAssembler::Step step{};
  REQUIRE_NOTHROW(step = a.feed(R"({"response":"x","done":"yes"})"));
  CHECK(step == StreamAssembler::Step::Chunk);
  CHECK(a.feed(R"({"response":"y","done":1})") == StreamAssembler::Step::Chunk);
  CHECK(a.feed(R"({"response":"z","done":true,"eval_count":-3,"eval_duration":1.5,"load_duration":2000000})") ==
        StreamAssembler::Step::Done);
  CHECK(a.response()["response"] == "xyz");
  CHECK_FALSE(a.evalCount());          // negative: not a count
  CHECK_FALSE(a.evalDuration());       // not an integer number of ns
  CHECK(a.evalDurationMs() == Approx(1.5e-6));
  CHECK(a.loadDurationMs() == Approx(2.0));
}

TEST_CASE("stream assembler: chat chunks, Ollama's error line, non-JSON lines", "[ollama_wire]") {
  StreamAssembler chat(true);
  CHECK(chat.feed("") == StreamAssembler::Step::Skip);
  CHECK(chat.feed(R"({"message":{"role":"assistant","content":"Hel","thinking":"t"},"done":false})") ==
        StreamAssembler::Step::Chunk);
  CHECK(chat.feed(R"({"message":{"role":"assistant","content":"lo","tool_calls":[{"function":{"name":"f"}}]},"done":false})") ==
        StreamAssembler::Step::Chunk);
  CHECK(chat.feed(R"({"message":{"role":"assistant","content":""},"done":true,"eval_count":2,"eval_duration":40})") ==
        StreamAssembler::Step::Done);
  auto r = chat.response();
  CHECK(r["message"]["content"] == "Hello");
  CHECK(r["message"]["thinking"] == "t");
  CHECK(r["message"]["tool_calls"].size() == 1);
  CHECK(r["done"] == true);
  CHECK(chat.evalCount() == 2);
  CHECK(chat.evalDuration() == std::chrono::nanoseconds(40));

  StreamAssembler failed(false);
  CHECK(failed.feed(R"({"error":"unexpected EOF"})") == StreamAssembler::Step::Failed);
  CHECK(failed.error() == "unexpected EOF");
  StreamAssembler garbage(false);
  CHECK(garbage.feed("<html>") == StreamAssembler::Step::Failed);
  CHECK(garbage.error() == "Ollama sent a line that is not a JSON object");
}

TEST_CASE("API bodies: pause, evict and trials parse as the contract says", "[api_bodies]") {
  auto pause = parsePauseBody(json::parse(R"({"reason":"memory_pressure","drain":false})"));
  REQUIRE(pause);
  CHECK(pause->reason == policy::PauseReason::MemoryPressure);
  CHECK_FALSE(pause->drain);
  CHECK(parsePauseBody(json::object())->reason == policy::PauseReason::Manual);
  CHECK(parsePauseBody(json::parse(R"({"reason":3})")).error().message == "field 'reason' must be a string");
  CHECK(parsePauseBody(json::parse(R"({"drain":"no"})")).error().message == "field 'drain' must be a boolean");
  CHECK_FALSE(parsePauseBody(json::parse(R"({"reason":"bored"})")));

  CHECK_FALSE(parseModelBody(json::object()).value().has_value());
  CHECK(parseModelBody(json::parse(R"({"model":"tiny:latest"})")).value() == "tiny:latest");
  CHECK(parseModelBody(json::parse(R"({"model":""})")).error().message == "field 'model' must be a non-empty string");

  CHECK(parseObjectBody("").value() == json::object());
  CHECK(parseObjectBody("[]").error().message == "body must be a JSON object");
  CHECK(parseObjectBody("{").error().message == "body is not valid JSON");

  auto one = parseTrialsBody(R"({"model":"m","request":{"prompt":"p","stream":false,"model":"z"},"key":"k"})", false, 3);
  REQUIRE(one);
  REQUIRE(one->size() == 1);
  CHECK(one->front().request == json::parse(R"({"prompt":"p"})"));
  CHECK(one->front().maxAttempts == 3);
  CHECK(one->front().run == "default");
  CHECK(parseTrialsBody("\xc3(", false, 3).error().message == "body is not valid UTF-8");
  CHECK(parseTrialsBody(R"({"trials":[]})", true, 3).error().message ==
        "field 'trials' must be a non-empty array of trial specs");
  CHECK(parseTrialsBody(R"({"trials":[{"model":"m","request":{}},{"model":"m"}]})", true, 3).error().message ==
        "trials[1]: field 'request' is required and must be an object");
  CHECK(parseTrialsBody(R"({"trials":[{"model":"m","request":{}},{"model":"n","kind":"chat","request":{"messages":[]}}]})",
                        true, 3)
            ->size() == 2);
  CHECK(validUtf8("\xe2\x9c\x93"));
  CHECK_FALSE(validUtf8("\xe2\x9c"));
  CHECK_FALSE(validUtf8("\xff"));
}

TEST_CASE("fuzz regression: config numbers beyond the daemon's clocks and byte counts are rejected", "[fuzz_regression]") {
  // Before: only the sign was checked, so 1e300 validated and then overflowed the daemon's
  // conversions (GiB -> uint64 bytes, seconds -> int64 ns): undefined behaviour.
  auto load = parseConfig(R"({"request_timeout_s": 1e300,
      "memory": {"pause_below_available_gb": 1e300, "resume_above_available_gb": 1e300},
      "retry": {"max_backoff_s": 1e20}, "ollama": {"restart": {"max_backoff_s": 1e10}},
      "preflight": {"min_free_gb": {"huge:latest": 1e12}}})");
  REQUIRE_FALSE(load.ok());
  std::set<std::string> keys;
  for (auto& p : load.problems) keys.insert(p.key);
  for (const char* k : {"request_timeout_s", "memory.pause_below_available_gb", "memory.resume_above_available_gb",
                        "retry.max_backoff_s", "ollama.restart.max_backoff_s", "preflight.min_free_gb.huge:latest"}) {
    INFO(k);
    CHECK(keys.count(k) == 1);
  }
  // A year of sample retention, a 1 TiB threshold: still fine.
  auto fine = parseConfig(R"({"store": {"sample_retention_s": 31536000},
      "memory": {"pause_below_available_gb": 1024, "resume_above_available_gb": 1024}})");
  INFO(formatConfigProblems(fine.problems));
  CHECK(fine.ok());
}

TEST_CASE("fuzz regression: /proc/net/tcp state must be two hex digits", "[fuzz_regression]") {
  // Before: from_chars took "-1" as the state of a row.
  const std::string header =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  auto bad = parseProcNetTcp(header + "   0: 0100007F:2CAA 00000000:0000 -1 00000000:00000000 00:00000000 00000000 0 0 4242 1\n");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("bad state") != std::string::npos);
  auto good = parseProcNetTcp(header + "   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 4242 1\n");
  REQUIRE(good);
  REQUIRE(good->size() == 1);
  CHECK(good->front().state == kTcpStateListen);
  CHECK(good->front().localPort == 11434);
  CHECK(good->front().inode == 4242);
}

TEST_CASE("fuzz regression: Ollama's error line with an empty message still gives a reason", "[fuzz_regression]") {
  // Before: {"error": ""} failed the attempt with an empty error text.
  StreamAssembler a(false);
  CHECK(a.feed(R"({"error":""})") == StreamAssembler::Step::Failed);
  CHECK(a.error() == "Ollama reported an error without a message");
}

TEST_CASE("fuzz regression: a timeline window of more than 10000 buckets is refused, naming the count", "[fuzz_regression]") {
  // Found by fuzz_http_request: a seed with since=2026-06-04 at bucket_s=60 became 263,000
  // rows as the calendar moved on, and held the event loop past the harness's 10 s deadline.
  CHECK(checkTimelineWindow(3600, 60).ok());
  CHECK(checkTimelineWindow(10000.0 * 60, 60).ok());  // exactly the limit
  CHECK(checkTimelineWindow(-5, 60).ok());             // since in the future: no rows
  auto longWindow = checkTimelineWindow(183.0 * 86400, 60);
  REQUIRE_FALSE(longWindow.ok());
  CHECK(longWindow.error().message.find("263520 buckets") != std::string::npos);
  CHECK(longWindow.error().message.find("raise bucket_s") != std::string::npos);
  auto epoch = checkTimelineWindow(1.7e9, 1);  // since=1970 at bucket_s=1
  REQUIRE_FALSE(epoch.ok());
  CHECK(epoch.error().message.find("1700000000 buckets") != std::string::npos);
  CHECK_FALSE(checkTimelineWindow(60, 0).ok());
}
