#pragma once
// Attach mode: when to look the server's pid up again. The lookup reads every TCP socket on the
// host (on Linux /proc/net/tcp, whose read walks the kernel's whole connection table: 20-30 ms
// of system time once a busy server has left thousands of TIME_WAIT entries) and every
// process's descriptors, so it should not run on every probe. It runs when the server is new
// to us: nothing known yet, the process we knew is gone (or its pid names another process),
// HEAD / failed since the last probe (a restart can bring a new process on the same port), and,
// as a backstop for a server replaced without either (an old process still alive after it gave
// the port up), once every kRefresh.
#include "common/clock.h"

#include <chrono>
#include <optional>

namespace oasis::policy {

class AttachLookup {
 public:
  static constexpr std::chrono::seconds kRefresh{60};

  // One probe: `healthy` is whether HEAD / answered; `stillKnown` whether the process found
  // last time is still the same process (pid and start time). True: look up now, then call
  // looked().
  bool due(bool healthy, bool stillKnown, SteadyTime now) {
    if (!healthy) {
      downSinceLookup_ = true;
      return false;  // nothing listens to find
    }
    return downSinceLookup_ || !stillKnown || !last_ || now - *last_ >= kRefresh;
  }
  void looked(SteadyTime now) {
    last_ = now;
    downSinceLookup_ = false;
  }

 private:
  std::optional<SteadyTime> last_;
  bool downSinceLookup_ = false;
};

}  // namespace oasis::policy
