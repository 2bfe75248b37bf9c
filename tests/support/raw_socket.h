#pragma once
// Test helper: raw socket I/O. The library's client only sends well-formed requests; these send
// any bytes and read what comes back, on either side of a connection. Header-only, like oasisd.h.
//
//   int fd = oasis::test::connectUnix(d.socket());
//   oasis::test::writeAll(fd, "GET /v1/status HTTP/1.1\r\n\r\n");
//   std::string carry;
//   auto response = oasis::test::readOneMessage(fd, carry, std::chrono::seconds(10));
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <regex>
#include <string>
#include <string_view>

namespace oasis::test {

// A connected Unix stream socket, or -1.
inline int connectUnix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends all of `data` (no SIGPIPE); false once the peer is gone.
inline bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads until the peer closes or `timeout` passes. `closed` says which.
inline std::string readUntilClosed(int fd, std::chrono::milliseconds timeout, bool* closed = nullptr) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (closed) *closed = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return out;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (closed) *closed = true;
      return out;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// Reads exactly one HTTP message, request or response, whose body is framed by Content-Length
// (none: no body), head and body. What follows it stays in `carry` for the next call (pipelining).
// nullopt when the peer closes or `timeout` passes first.
inline std::optional<std::string> readOneMessage(int fd, std::string& carry, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto end = carry.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::smatch m;
      std::string head = carry.substr(0, end);
      std::size_t len = 0;
      static const std::regex cl("[Cc]ontent-[Ll]ength: *([0-9]+)");
      if (std::regex_search(head, m, cl)) len = std::stoul(m[1]);
      if (carry.size() >= end + 4 + len) {
        std::string one = carry.substr(0, end + 4 + len);
        carry.erase(0, end + 4 + len);
        return one;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    carry.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace oasis::test
