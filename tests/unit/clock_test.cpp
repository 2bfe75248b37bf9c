#include "catch.h"
#include "common/clock.h"

using namespace oasis;
using namespace std::chrono_literals;

TEST_CASE("ManualClock moves only when advanced", "[clock]") {
  ManualClock clock;
  auto s0 = clock.steadyNow();
  auto w0 = clock.wallNow();
  CHECK(clock.steadyNow() == s0);
  clock.advance(1500ms);
  CHECK(clock.steadyNow() - s0 == 1500ms);
  CHECK(clock.wallNow() - w0 == 1500ms);
}

TEST_CASE("ISO-8601 round trips in UTC and with offsets", "[clock]") {
  WallTime t;
  REQUIRE(parseIso8601("2026-08-21T18:48:22.386139Z", t));
  CHECK(formatIso8601Utc(t) == "2026-08-21T18:48:22.386139Z");
  WallTime t2;
  REQUIRE(parseIso8601("2026-08-21T11:48:22.386139-07:00", t2));
  CHECK(t2 == t);
  REQUIRE(parseIso8601("2026-08-21T18:48:22Z", t2));
  CHECK(std::chrono::duration_cast<std::chrono::microseconds>(t - t2).count() == 386139);
  WallTime local;
  REQUIRE(parseIso8601(formatIso8601Local(t), local));
  CHECK(local == t);
  CHECK_FALSE(parseIso8601("2026-13-01T00:00:00Z", t2));
  CHECK_FALSE(parseIso8601("yesterday", t2));
  CHECK_FALSE(parseIso8601("2026-08-21T18:48:22+0700", t2));
}

TEST_CASE("ISO-8601 beyond the clock's range saturates (keep_alive forever -> year 2318)", "[clock]") {
  WallTime t;
  REQUIRE(parseIso8601("2318-11-27T03:23:45.123456-07:00", t));
  CHECK(t == WallTime::max());
  ManualClock clock;
  CHECK(clock.wallNow() < t);  // never "Stopping..."
  REQUIRE(parseIso8601("1500-01-01T00:00:00Z", t));
  CHECK(t == WallTime::min());
  REQUIRE(parseIso8601("2200-01-01T00:00:00Z", t));
  CHECK(t < WallTime::max());
  CHECK(formatIso8601Utc(t) == "2200-01-01T00:00:00.000000Z");
}

TEST_CASE("fuzz regression: the saturated ends of the clock format without overflowing", "[clock][fuzz_regression]") {
  // A `since` in year 1013 saturates to WallTime::min(); formatting it overflowed a seconds ->
  // nanoseconds conversion (UBSan, found by fuzz_http_request on /v1/diagnosis).
  CHECK(formatIso8601Utc(WallTime::min()) == "1677-09-21T00:12:43.145224Z");
  CHECK(formatIso8601Utc(WallTime::max()) == "2262-04-11T23:47:16.854775Z");
  CHECK(formatIso8601Utc(WallTime{} - std::chrono::nanoseconds(1)) == "1969-12-31T23:59:59.999999Z");
  CHECK(formatIso8601Utc(WallTime{} - std::chrono::seconds(1)) == "1969-12-31T23:59:59.000000Z");
  WallTime t;
  REQUIRE(parseIso8601("1013-12-04T18:30:00+01:00", t));
  CHECK(t == WallTime::min());
}
