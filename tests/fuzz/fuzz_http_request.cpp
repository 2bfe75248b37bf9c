// The control API's HTTP request path, full request bytes in (issue 7).
//
// Why a whole daemon on a real socket: the request path is Beast's parser with oasisd's limits
// (common/http_server.cpp: header and body bounds, keep-alive, pipelining, the 403 gate), then
// Daemon::handle's route dispatch and every handler behind it (status, pause/resume, evict,
// kill-runner, events, timeline, diagnosis, preflight, metrics, the trials API with its SQLite
// store, the Ollama-compatible surface and the pass-through to Ollama). The connection class is
// private to http_server.cpp and the handlers are private to Daemon, so the only way to run
// exactly that code is the way a client does: one oasisd (attach mode, its Ollama URL on a
// closed loopback port, so pass-through and dispatch fail fast as they would with Ollama down)
// is constructed once, in process, on its own Unix socket. Each input is written on a fresh
// connection, the write side is shut (a client that sends its requests and waits), and the
// reply is read until the daemon closes the connection, with a deadline.
//
// Invariants: the daemon closes every such connection within the deadline (no hang: "the
// daemon never crashes or hangs on bad input"), what it sends is HTTP/1.1 responses, and none
// is the server's own 500 (a handler threw or produced no response).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <spdlog/spdlog.h>
#include <string>

#include "common/config.h"
#include "daemon/daemon.h"
#include "fuzz_check.h"
#include "harness_dir.h"

namespace net = boost::asio;
using unix_stream = net::local::stream_protocol;
using boost::system::error_code;

namespace {

uint16_t closedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct Harness {
  net::io_context ioc;
  std::string dir;
  std::string socketPath;
  std::unique_ptr<oasis::Daemon> daemon;

  Harness() {
    spdlog::set_level(spdlog::level::off);  // per-request logs would dominate the run time
    dir = oasis::fuzz::makeTempDir("oasis-fuzz-http");
    socketPath = dir + "/oasisd.sock";
    oasis::Config config;
    config.ollama.mode = oasis::OllamaConfig::Mode::Attach;
    config.ollama.url = "http://127.0.0.1:" + std::to_string(closedPort());
    config.ollama.healthTimeoutS = 0.2;
    config.ollama.psTimeoutS = 0.2;
    config.maxBodyBytes = 64 * 1024;  // keeps the 413 path within -max_len's reach
    config.retry.initialBackoffS = 0.05;
    config.retry.maxBackoffS = 0.1;
    oasis::DaemonOptions options;
    options.socketPath = socketPath;
    options.databasePath = dir + "/oasisd.db";
    daemon = std::make_unique<oasis::Daemon>(ioc, config, options);
    if (auto st = daemon->start(); !st) {
      std::fprintf(stderr, "fuzz_http_request: daemon did not start: %s\n", st.error().message.c_str());
      std::abort();
    }
    ioc.poll();
  }
};

bool startsWith(const std::string& s, std::size_t at, std::string_view prefix) {
  return s.size() >= at + prefix.size() && std::string_view(s).substr(at, prefix.size()) == prefix;
}

// Every "HTTP/1.1 NNN" status line in the reply (a reply is one or more responses).
void checkReply(const std::string& reply) {
  if (reply.empty()) return;  // closed without answering: only for input that is no request
  FUZZ_CHECK(startsWith(reply, 0, "HTTP/1.1 "));
  for (std::size_t at = reply.find("HTTP/1.1 "); at != std::string::npos; at = reply.find("HTTP/1.1 ", at + 1)) {
    if (at != 0 && reply[at - 1] != '\n') continue;  // inside a body
    if (at + 12 > reply.size()) break;
    std::string code = reply.substr(at + 9, 3);
    // The server's own 500 (code "internal": a handler threw, or returned without answering a
    // client that is still there). The compat surface's Ollama-format 500s ({"error": "..."}
    // for a failed or cancelled trial, as Ollama answers a runner failure) are answers.
    auto next = reply.find("\nHTTP/1.1 ", at + 1);
    auto response = reply.substr(at, next == std::string::npos ? std::string::npos : next - at);
    bool internal = code == "500" && response.find("\"code\":\"internal\"") != std::string::npos;
    if (internal) std::fprintf(stderr, "a handler failed:\n%s\n", response.substr(0, 400).c_str());
    FUZZ_CHECK(!internal);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  oasis::fuzz::harness<Harness>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& h = oasis::fuzz::harness<Harness>();
  h.ioc.restart();  // in case a previous input left it stopped (out of work)
  unix_stream::socket client(h.ioc);
  error_code ec;
  client.connect(unix_stream::endpoint(h.socketPath), ec);
  FUZZ_CHECK(!ec);
  client.non_blocking(true);

  std::string request(reinterpret_cast<const char*>(data), size);
  std::string reply;
  bool written = false, closed = false;
  net::async_write(client, net::buffer(request), [&](error_code wec, std::size_t) {
    written = true;
    // EPIPE/ECONNRESET: the daemon answered (413, 431, 400) and closed before taking it all.
    error_code ignored;
    if (!wec) client.shutdown(unix_stream::socket::shutdown_send, ignored);
  });
  std::array<char, 8192> buf{};
  std::function<void()> readMore = [&] {
    client.async_read_some(net::buffer(buf), [&](error_code rec, std::size_t n) {
      reply.append(buf.data(), n);
      if (rec || reply.size() > (8u << 20)) {
        closed = true;
        return;
      }
      readMore();
    });
  };
  readMore();

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(written && closed) && std::chrono::steady_clock::now() < deadline)
    h.ioc.run_one_for(std::chrono::milliseconds(50));
  if (!closed) {
    std::fprintf(stderr, "the daemon kept the connection open for 10 s after the request (%zu bytes) was sent; "
                 "reply so far:\n%s\n", size, reply.substr(0, 600).c_str());
  }
  FUZZ_CHECK(closed);
  checkReply(reply);
  client.close(ec);
  h.ioc.poll();  // let the daemon finish with the connection
  return 0;
}
