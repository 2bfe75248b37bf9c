#include "daemon/service_notify.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace oasis {

Result<NotifyAddress> parseNotifySocket(std::string_view value) {
  NotifyAddress a;
  a.addr.sun_family = AF_UNIX;
  if (value.empty()) return Error("NOTIFY_SOCKET is empty");
  if (value.front() != '/' && value.front() != '@')
    return Error("NOTIFY_SOCKET '" + std::string(value) + "' is neither an absolute path nor an @abstract name");
  if (value.size() >= sizeof a.addr.sun_path)
    return Error("NOTIFY_SOCKET is " + std::to_string(value.size()) + " bytes, over the " +
                 std::to_string(sizeof a.addr.sun_path - 1) + " a socket address holds");
  if (value.front() == '@' && value.size() == 1) return Error("NOTIFY_SOCKET '@' names no abstract socket");
  std::memcpy(a.addr.sun_path, value.data(), value.size());
  // An abstract name starts with a NUL byte and its length is exact (no terminator).
  if (value.front() == '@') a.addr.sun_path[0] = '\0';
  a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() + (value.front() == '/' ? 1 : 0));
  return a;
}

ServiceNotifier ServiceNotifier::fromEnvironment() {
  const char* raw = std::getenv("NOTIFY_SOCKET");
  if (!raw) return {};
  std::string value = raw;
  ::unsetenv("NOTIFY_SOCKET");
  auto parsed = parseNotifySocket(value);
  if (!parsed) {
    spdlog::warn("ignoring NOTIFY_SOCKET: {}", parsed.error().message);
    return {};
  }
  return ServiceNotifier(*parsed);
}

Status ServiceNotifier::send(std::string_view state) const {
  if (!address_) return Status::success();
#ifndef __linux__
  (void)state;  // systemd is Linux-only; launchd has no readiness protocol
  return Status::success();
#else
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(std::string("notify socket: ") + std::strerror(errno), errno);
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                       reinterpret_cast<const sockaddr*>(&address_->addr), address_->length);
  int err = errno;
  ::close(fd);
  if (n < 0) return Error(std::string("notify systemd: ") + std::strerror(err), err);
  return Status::success();
#endif
}

}  // namespace oasis
