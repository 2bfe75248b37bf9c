// Attach mode's pid lookup schedule (daemon/policy/attach_lookup.h).
#include "catch.h"
#include "daemon/policy/attach_lookup.h"

using namespace oasis;
using namespace oasis::policy;
using namespace std::chrono_literals;

TEST_CASE("attach lookup: first probe, then only when the server is new or the backstop is due", "[policy][attach]") {
  AttachLookup l;
  SteadyTime t{};
  CHECK(l.due(true, false, t));  // nothing known yet
  l.looked(t);
  // Steady state: the same process answering is not looked up again...
  for (int i = 1; i < 30; ++i) CHECK_FALSE(l.due(true, true, t + i * 2s));
  // ...until the backstop, in case an old process kept living after it gave the port up.
  CHECK(l.due(true, true, t + AttachLookup::kRefresh));
  l.looked(t + AttachLookup::kRefresh);
  CHECK_FALSE(l.due(true, true, t + AttachLookup::kRefresh + 2s));
}

TEST_CASE("attach lookup: the known process exiting, or HEAD failing in between, looks up again", "[policy][attach]") {
  AttachLookup l;
  SteadyTime t{};
  REQUIRE(l.due(true, false, t));
  l.looked(t);
  // The process went away (or its pid now names another): at once, on the next healthy probe.
  CHECK(l.due(true, false, t + 2s));
  l.looked(t + 2s);
  CHECK_FALSE(l.due(true, true, t + 4s));
  // Down: nothing to find while HEAD fails; the first healthy probe after it looks up, even if
  // a process with the cached pid and start time still runs (it may no longer be the listener).
  CHECK_FALSE(l.due(false, true, t + 6s));
  CHECK_FALSE(l.due(false, true, t + 8s));
  CHECK(l.due(true, true, t + 10s));
  l.looked(t + 10s);
  CHECK_FALSE(l.due(true, true, t + 12s));
}
