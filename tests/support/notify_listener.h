#pragma once
// The systemd side of sd_notify for tests: a bound datagram socket that collects what oasisd's
// ServiceNotifier sends (daemon/service_notify.h).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "daemon/service_notify.h"

namespace oasis::test {

class NotifyListener {
 public:
  explicit NotifyListener(const NotifyAddress& a) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&a.addr), a.length) != 0)
      throw std::runtime_error("cannot bind the notify socket");
  }
  ~NotifyListener() { ::close(fd_); }
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  // The next datagram, or "" if none arrives within `timeout`.
  std::string next(std::chrono::milliseconds timeout = std::chrono::seconds(1)) const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return "";
    char buf[1024];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }

 private:
  int fd_ = -1;
};

}  // namespace oasis::test
