#pragma once
// systemd's readiness protocol (sd_notify(3)), written out: a unit with Type=notify starts
// oasisd with $NOTIFY_SOCKET naming a datagram socket, and oasisd sends "READY=1" to it once
// its API socket is listening, "RELOADING=1" and "READY=1" around a SIGHUP reload, and
// "STOPPING=1" when it begins to shut down. `systemctl start` then returns only when oasisd
// serves (or has failed), which is what `oasisctl install` and scripts after it rely on.
// Without $NOTIFY_SOCKET (launchd, a terminal, tests) every call does nothing.
#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace oasis {

// A parsed $NOTIFY_SOCKET: a filesystem path ("/run/user/1000/systemd/notify") or, with a
// leading '@', a Linux abstract socket name. Errors name what is wrong with the value.
struct NotifyAddress {
  sockaddr_un addr{};
  socklen_t length = 0;
};
Result<NotifyAddress> parseNotifySocket(std::string_view value);

class ServiceNotifier {
 public:
  // Reads $NOTIFY_SOCKET and removes it from the environment, so that the processes oasisd
  // launches (a managed `ollama serve`) cannot speak for it. An invalid value is logged once
  // and ignored: systemd then reports the start as timed out, which names the problem too.
  static ServiceNotifier fromEnvironment();
  ServiceNotifier() = default;
  explicit ServiceNotifier(NotifyAddress address) : address_(address) {}

  bool enabled() const { return address_.has_value(); }
  // One datagram of newline-separated assignments ("READY=1\nSTATUS=..."). Never blocks.
  Status send(std::string_view state) const;

 private:
  std::optional<NotifyAddress> address_;
};

}  // namespace oasis
