// Ollama's streamed answer, bytes in: a misbehaving server is input too (issue 7).
//
// The input is everything "Ollama" sends back on the connection of one /api/generate or
// /api/chat attempt: status line, headers, body (chunked or not, NDJSON or not), cut wherever
// the input ends. An in-process server on a Unix socket sends it in pieces (sizes taken from
// the first byte, so partial reads across lines and chunk headers get exercised) and closes.
// The client side is the executor's real code: http::openLineStream (Beast's response parser
// with a buffer body, the line splitter and its maxLineBytes bound, common/http_client.cpp)
// and StreamAssembler (daemon/ollama_wire.cpp), driven the way TrialService::runAttempt
// drives them: a non-200 reads Ollama's error body, a 200 feeds lines until the final chunk,
// an error line, the end of the body or an error.
//
// Invariants: nothing throws, the exchange ends (the server closed, so every nextLine must
// complete: end, error or line), no line is longer than the bound, and a finished stream
// always yields a response of Ollama's non-stream shape.
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <spdlog/spdlog.h>
#include <string>

#include "common/http.h"
#include "daemon/ollama_wire.h"
#include "fuzz_check.h"
#include "harness_dir.h"

namespace net = boost::asio;
using unix_stream = net::local::stream_protocol;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kMaxLine = 4096;  // small, so the over-long-line error is reachable

struct Harness {
  net::io_context ioc;
  std::string dir, path;
  std::unique_ptr<unix_stream::acceptor> acceptor;
  Harness() {
    spdlog::set_level(spdlog::level::off);
    dir = oasis::fuzz::makeTempDir("oasis-fuzz-stream");
    path = dir + "/ollama.sock";
    acceptor = std::make_unique<unix_stream::acceptor>(ioc, unix_stream::endpoint(path));
  }
};

// "Ollama": accept one connection, read the request head, send the input in pieces, close.
net::awaitable<void> serveOnce(Harness& h, std::string bytes, std::size_t piece) {
  error_code ec;
  auto sock = co_await h.acceptor->async_accept(net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
    auto n = co_await sock.async_read_some(net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    head.append(buf, n);
  }
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    auto part = std::string_view(bytes).substr(at, piece);
    co_await net::async_write(sock, net::buffer(part.data(), part.size()), net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    co_await net::post(h.ioc, net::use_awaitable);  // let the client read what is there
  }
  sock.shutdown(unix_stream::socket::shutdown_send, ec);
  // Wait for the client to close, so that close() on our side never races its reads.
  while (!ec) co_await sock.async_read_some(net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
}

// The executor's side (TrialService::runAttempt, minus the store and the timers' policy).
net::awaitable<void> attempt(Harness& h, bool chat, bool& finished) {
  oasis::http::Request req;
  req.method = "POST";
  req.target = chat ? "/api/chat" : "/api/generate";
  req.body = R"({"model":"tiny:latest","prompt":"hi","stream":true})";
  oasis::http::StreamOptions opt;
  opt.connectTimeout = 2000ms;
  opt.headTimeout = 2000ms;
  opt.maxLineBytes = kMaxLine;
  auto opened = co_await oasis::http::openLineStream(h.ioc.get_executor(), oasis::http::Endpoint::unixSocket(h.path),
                                                     req, opt);
  if (!opened) {
    FUZZ_CHECK(!opened.error().message.empty());
    finished = true;
    co_return;
  }
  auto stream = std::move(*opened);
  int status = stream->head().status;
  if (status != 200) {
    std::string body;
    for (int i = 0; i < 64; ++i) {
      auto line = co_await stream->nextLine(2000ms);
      if (!line || !*line) break;
      FUZZ_CHECK((*line)->size() <= kMaxLine + 1);
      body += **line;
    }
    auto j = nlohmann::json::parse(body, nullptr, false);
    (void)(j.is_object() && j.contains("error") && j["error"].is_string());
  } else {
    oasis::StreamAssembler assembled(chat);
    for (;;) {
      auto line = co_await stream->nextLine(2000ms);
      if (!line) {
        // The server closed: an error here is the stream's own (truncated chunk, overlong
        // line, bad encoding), never a timeout.
        FUZZ_CHECK(line.error().code != ETIMEDOUT);
        break;
      }
      if (!line->has_value()) break;
      FUZZ_CHECK((*line)->size() <= kMaxLine + 1);
      auto step = assembled.feed(**line);
      if (step == oasis::StreamAssembler::Step::Failed) {
        FUZZ_CHECK(!assembled.error().empty());
        break;
      }
      if (step == oasis::StreamAssembler::Step::Done) {
        auto r = assembled.response();
        FUZZ_CHECK(r.is_object() && (chat ? r.contains("message") : r.contains("response")));
        break;
      }
    }
  }
  stream->close();
  finished = true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  oasis::fuzz::harness<Harness>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto& h = oasis::fuzz::harness<Harness>();
  const bool chat = data[0] & 0x80;
  const std::size_t piece = (data[0] & 0x3f) + 1;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  bool finished = false;
  // The previous input may have drained every handler, which stops an io_context.
  h.ioc.restart();
  net::co_spawn(h.ioc, serveOnce(h, std::move(bytes), piece), net::detached);
  net::co_spawn(h.ioc, attempt(h, chat, finished), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);  // an exception out of the client path is a finding
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!finished && std::chrono::steady_clock::now() < deadline) h.ioc.run_one_for(50ms);
  if (!finished) std::fprintf(stderr, "the stream did not end within 10 s of the server closing it\n");
  FUZZ_CHECK(finished);
  // Let the server coroutine see the client's close.
  for (int i = 0; i < 100 && h.ioc.poll() > 0; ++i) {
  }
  return 0;
}
