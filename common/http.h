#pragma once
// HTTP/1.1 over TCP or a Unix stream socket: one server and one client, used by oasisd (its
// control API and its Ollama client), oasisctl, fake-ollama and the tests. Beast/Asio templates
// are instantiated only in http_server.cpp and http_client.cpp.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace oasis::http {

namespace net = boost::asio;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Where a server listens or a client connects: "http://127.0.0.1:11434", "127.0.0.1:0",
// "unix:/path/to.sock" or an absolute path "/path/to.sock".
struct Endpoint {
  enum class Kind { Tcp, Unix };
  Kind kind = Kind::Tcp;
  std::string host = "127.0.0.1";
  uint16_t port = 11434;
  std::string path;  // Unix socket path

  static Result<Endpoint> parse(std::string_view text);
  static Endpoint unixSocket(std::string path);
  static Endpoint tcp(std::string host, uint16_t port);
  std::string toString() const;  // "http://host:port" or "unix:/path"
  std::string hostHeader() const;
};

// Percent-decoding and query splitting ("a=1&b=x%20y").
std::string urlDecode(std::string_view s);
std::map<std::string, std::string> parseQuery(std::string_view query);

// ---------------------------------------------------------------- server

struct PeerCredentials {
  bool known = false;
  int pid = -1;
  unsigned uid = 0;
  unsigned gid = 0;
  // Supplementary groups of the peer at connect time (Linux SO_PEERGROUPS); empty when the
  // platform cannot tell. The group allowance (security.allow_group) checks these too, so a
  // member whose primary group is another one is let in.
  std::vector<unsigned> groups;
};

struct ServerRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw target, "/v1/trials?x=1"
  std::string path;    // decoded path without the query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  PeerCredentials peer;
  bool keepAlive = true;

  std::string header(const std::string& lowerName, std::string fallback = {}) const;
};

// Writes one response: either whole (send) or as a chunked stream (beginStream / writeChunk /
// endStream). Handlers that hold a request open without writing (a hung generation) use
// waitUntilClosed(), which completes when the peer closes or resets its connection.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual net::awaitable<void> send(int status, std::string body, std::string contentType = "application/json",
                                    Headers extra = {}) = 0;
  virtual net::awaitable<bool> beginStream(int status, std::string contentType, Headers extra = {}) = 0;
  virtual net::awaitable<bool> writeChunk(std::string data) = 0;  // false: the client is gone
  virtual net::awaitable<void> endStream() = 0;
  virtual bool clientGone() const = 0;
  virtual net::awaitable<void> waitUntilClosed() = 0;
  virtual bool started() const = 0;  // a status line was already written
};

using Handler = std::function<net::awaitable<void>(ServerRequest&, ResponseWriter&)>;

struct ServerOptions {
  std::size_t maxBodyBytes = 8 * 1024 * 1024;
  std::size_t maxHeaderBytes = 16 * 1024;
  std::chrono::milliseconds readTimeout{30000};   // to receive one whole request once it has begun
  std::chrono::milliseconds idleTimeout{120000};  // keep-alive connection with no request
  std::size_t maxConnections = 4096;
  unsigned socketMode = 0600;  // Unix sockets only
  // Unix sockets only: give the socket file (and a socket directory this server creates) to
  // this group, so that a group allowed by the authorize callback can also reach the file.
  // The directory is then created 0710 (members may traverse it, not list it).
  std::optional<unsigned> socketGroup;
  // Called for every new connection with the peer's credentials (Unix sockets). Returning false
  // answers every request on it with 403.
  std::function<bool(const PeerCredentials&)> authorize;
  std::string serverName = "oasisd";
};

class HttpServer {
 public:
  HttpServer(net::any_io_executor exec, Handler handler, ServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; for TCP port 0 picks a free port (see boundPort()).
  Status listen(const Endpoint& endpoint);
  uint16_t boundPort() const;
  void start();  // begins accepting on every listener
  void stop();   // closes listeners and every open connection
  std::size_t openConnections() const;

  struct Impl;  // defined in http_server.cpp

 private:
  std::shared_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- client

struct Request {
  std::string method = "GET";
  std::string target = "/";
  std::string body;
  std::string contentType = "application/json";
  Headers headers;
};

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& lowerName, std::string fallback = {}) const;
};

// Blocking calls on a private io_context (oasisctl, tests, benchmarks). The timeout bounds the
// whole exchange. Errors (connect refused, timeout, reset) come back as Error values.
Result<Response> fetch(const Endpoint& endpoint, const Request& request,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));

// Blocking streaming: onStatus is called once with the status and headers; onLine for each
// complete line of the body (without the newline). Return false from onLine to stop early.
// lineTimeout bounds the wait for each next line (0 = only the overall timeout applies).
Result<int> fetchLines(const Endpoint& endpoint, const Request& request,
                       const std::function<bool(std::string_view line)>& onLine,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(30000),
                       std::chrono::milliseconds lineTimeout = std::chrono::milliseconds(0),
                       const std::function<void(const Response& head)>& onHead = {});

// Asynchronous client for coroutines (oasisd talking to Ollama).
net::awaitable<Result<Response>> asyncFetch(net::any_io_executor exec, Endpoint endpoint, Request request,
                                            std::chrono::milliseconds timeout);

// An open response whose body is read line by line as it arrives (NDJSON). Destroying it or
// calling close() closes the connection, which is what makes Ollama drop the request's
// reference on its runner.
class LineStream {
 public:
  virtual ~LineStream() = default;
  virtual const Response& head() const = 0;  // status and headers; body empty
  // The next line, std::nullopt at the end of the body, or an Error (timeout -> code 110
  // ETIMEDOUT, reset, truncated chunk, line longer than maxLineBytes).
  virtual net::awaitable<Result<std::optional<std::string>>> nextLine(std::chrono::milliseconds timeout) = 0;
  virtual void close() = 0;
  // For a caller that has what it wanted from a response (Ollama's final chunk): reads what is
  // left of the body (the chunked terminator, normally) for up to `grace`, then gives the
  // connection back to the stream's pool if the body ended cleanly and the server keeps it
  // alive; otherwise, or without a pool, closes it. Any unread line is discarded.
  virtual net::awaitable<void> finish(std::chrono::milliseconds grace) = 0;
  virtual bool reusedConnection() const = 0;  // this request went out on a pooled connection
};

// Kept-alive client connections for openLineStream, per endpoint, all on one executor, whose
// io_context must outlive the pool (the idle sockets and timers belong to it). Only a
// connection whose response was read to its end goes back (LineStream::finish); a stream that
// failed, timed out or was cut short is closed as before. An idle connection older than
// maxIdleTime, or one the server has closed meanwhile, is dropped when next looked at; a request
// on a pooled connection that the server closed before answering goes out again once on a new
// one.
class ConnectionPool {
 public:
  explicit ConnectionPool(std::size_t maxIdle = 8, std::chrono::milliseconds maxIdleTime = std::chrono::seconds(30));
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  void clear();  // closes every idle connection
  std::size_t idleCount() const;
  struct Counters {
    std::uint64_t opened = 0;  // new connections made for pooled streams
    std::uint64_t reused = 0;  // requests sent on an idle connection
    std::uint64_t stale = 0;   // idle connections found closed or expired, and dropped
    std::uint64_t resent = 0;  // requests sent again after a reused connection failed unanswered
  };
  Counters counters() const;

  struct Impl;  // defined in http_client.cpp
  const std::shared_ptr<Impl>& impl() const { return impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

struct StreamOptions {
  std::chrono::milliseconds connectTimeout{5000};
  std::chrono::milliseconds headTimeout{30000};  // until the status line and headers arrive
  std::size_t maxLineBytes = 16 * 1024 * 1024;
  ConnectionPool* pool = nullptr;  // reuse kept-alive connections (must outlive the call, not the stream)
};

net::awaitable<Result<std::unique_ptr<LineStream>>> openLineStream(net::any_io_executor exec, Endpoint endpoint,
                                                                   Request request, StreamOptions options = {});

// {"error":{"code":..,"message":..}} — the control API's error body.
std::string errorBody(std::string_view code, std::string_view message);

}  // namespace oasis::http
