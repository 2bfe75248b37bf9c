// Ollama's keep_alive parsing (ollama-behaviour.md §3 "Parsing", §7 OLLAMA_KEEP_ALIVE).
#include <nlohmann/json.hpp>

#include "catch.h"
#include "common/ollama_duration.h"

using namespace oasis::ollama;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("Go time.ParseDuration", "[ollama_duration]") {
  CHECK(*parseGoDuration("5m") == 5min);
  CHECK(*parseGoDuration("1h30m") == 90min);
  CHECK(*parseGoDuration("0s") == 0s);
  CHECK(*parseGoDuration("0") == 0s);
  CHECK(*parseGoDuration("-1m") == -1min);
  CHECK(*parseGoDuration("1.5s") == 1500ms);
  CHECK(*parseGoDuration(".5s") == 500ms);
  CHECK(*parseGoDuration("+2h") == 2h);
  CHECK(*parseGoDuration("1h2m3s4ms5us6ns") == 1h + 2min + 3s + 4ms + 5us + 6ns);
  CHECK(*parseGoDuration("3\xC2\xB5s") == 3us);
  auto bare = parseGoDuration("300");
  REQUIRE_FALSE(bare.ok());
  CHECK(bare.error().message == R"(time: missing unit in duration "300")");
  CHECK(parseGoDuration("5 minutes").error().message == R"(time: unknown unit " minutes" in duration "5 minutes")");
  CHECK_FALSE(parseGoDuration("").ok());
  CHECK_FALSE(parseGoDuration("m").ok());
  CHECK_FALSE(parseGoDuration(".s").ok());
  CHECK_FALSE(parseGoDuration("9999999999h").ok());  // overflows int64 nanoseconds
}

TEST_CASE("keep_alive in JSON: number = seconds, string = duration, negative = forever", "[ollama_duration]") {
  CHECK(*parseKeepAliveJson(json(300)) == Duration(300s));
  CHECK(*parseKeepAliveJson(json(1.5)) == Duration(1500ms));
  CHECK(*parseKeepAliveJson(json(0)) == Duration(0));
  CHECK(*parseKeepAliveJson(json(-1)) == kForever);
  CHECK(*parseKeepAliveJson(json("10m")) == Duration(10min));
  CHECK(*parseKeepAliveJson(json("-1m")) == kForever);
  CHECK_FALSE(parseKeepAliveJson(json(nullptr))->has_value());  // absent
  CHECK_FALSE(parseKeepAliveJson(json("300")).ok());
  CHECK(parseKeepAliveJson(json(true)).error().message == "Unsupported type: 'bool'");
}

TEST_CASE("OLLAMA_KEEP_ALIVE: duration, else integer seconds, else 5m", "[ollama_duration]") {
  CHECK(keepAliveFromEnv(nullptr) == 5min);
  CHECK(keepAliveFromEnv("") == 5min);
  CHECK(keepAliveFromEnv("10m") == 10min);
  CHECK(keepAliveFromEnv("300") == 300s);
  CHECK(keepAliveFromEnv("\"1h\"") == 1h);
  CHECK(keepAliveFromEnv("-1") == kForever);
  CHECK(keepAliveFromEnv("-5m") == kForever);
  CHECK(keepAliveFromEnv("soon") == 5min);
}

TEST_CASE("Go Duration.String and MarshalJSON", "[ollama_duration]") {
  CHECK(formatGoDuration(5min) == "5m0s");
  CHECK(formatGoDuration(90min) == "1h30m0s");
  CHECK(formatGoDuration(0s) == "0s");
  CHECK(formatGoDuration(1500ms) == "1.5s");
  CHECK(formatGoDuration(2ms) == "2ms");
  CHECK(formatGoDuration(kForever) == "2562047h47m16.854775807s");
  CHECK(keepAliveToJson(kForever) == json(-1));
  CHECK(keepAliveToJson(Duration(0)) == json("0s"));
}
