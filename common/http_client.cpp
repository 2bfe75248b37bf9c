// HTTP/1.1 client over TCP or a Unix stream socket, for coroutines (asyncFetch, openLineStream)
// and for blocking callers (fetch, fetchLines run the same code on a private io_context).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <sys/socket.h>

#include <cerrno>
#include <deque>
#include <variant>

#include "common/http.h"

namespace oasis::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using unix_stream = net::local::stream_protocol;
using boost::system::error_code;

namespace {

constexpr int kTimedOut = ETIMEDOUT;
constexpr std::size_t kMaxResponseBody = 512u * 1024 * 1024;

// Either kind of socket, with one deadline timer that closes it when it fires. The socket
// state lives in a shared block so that a timer completion already queued when the Conn is
// destroyed finds it gone instead of touching freed memory.
class Conn {
  struct Inner {
    std::variant<std::monostate, tcp::socket, unix_stream::socket> sock;
    uint64_t generation = 0;
    bool timedOut = false;
    void closeSocket() {
      std::visit(
          [](auto& s) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(s)>, std::monostate>) {
              error_code ignored;
              if (s.is_open()) {
                s.shutdown(std::decay_t<decltype(s)>::shutdown_both, ignored);
                s.close(ignored);
              }
            }
          },
          sock);
    }
  };

 public:
  explicit Conn(net::any_io_executor exec) : exec_(exec), inner_(std::make_shared<Inner>()), timer_(exec) {}
  ~Conn() { close(); }

  net::awaitable<error_code> connect(const Endpoint& ep) {
    error_code ec;
    if (ep.kind == Endpoint::Kind::Unix) {
      auto& s = inner_->sock.emplace<unix_stream::socket>(exec_);
      co_await s.async_connect(unix_stream::endpoint(ep.path), net::redirect_error(net::use_awaitable, ec));
    } else {
      auto addr = net::ip::make_address(ep.host, ec);
      if (ec) {
        tcp::resolver resolver(exec_);
        auto results = co_await resolver.async_resolve(ep.host, std::to_string(ep.port),
                                                       net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return ec;
        auto& s = inner_->sock.emplace<tcp::socket>(exec_);
        co_await net::async_connect(s, results, net::redirect_error(net::use_awaitable, ec));
      } else {
        auto& s = inner_->sock.emplace<tcp::socket>(exec_);
        co_await s.async_connect(tcp::endpoint(addr, ep.port), net::redirect_error(net::use_awaitable, ec));
        if (!ec) s.set_option(tcp::no_delay(true), ec);
      }
    }
    if (inner_->timedOut) ec = net::error::timed_out;
    co_return ec;
  }

  // Arms the deadline; when it passes, the socket is closed and pending operations fail.
  void expireAfter(std::chrono::milliseconds d) {
    inner_->timedOut = false;
    auto gen = ++inner_->generation;
    if (d.count() <= 0) {
      timer_.cancel();
      return;
    }
    timer_.expires_after(d);
    std::weak_ptr<Inner> weak = inner_;
    timer_.async_wait([weak, gen](error_code ec) {
      auto in = weak.lock();
      if (ec || !in || gen != in->generation) return;
      in->timedOut = true;
      in->closeSocket();
    });
  }
  void disarm() {
    ++inner_->generation;
    timer_.cancel();
  }
  bool timedOut() const { return inner_->timedOut; }

  // Runs one awaitable I/O operation on whichever socket is open. Callers pass a named lambda
  // (GCC 12 miscompiles capturing lambdas written inside a co_await expression).
  template <typename F>
  net::awaitable<std::size_t> io(const F& f) {
    if (auto* t = std::get_if<tcp::socket>(&inner_->sock)) co_return co_await f(*t);
    if (auto* u = std::get_if<unix_stream::socket>(&inner_->sock)) co_return co_await f(*u);
    throw std::logic_error("http client: socket used before connect");
  }

  void close() {
    disarm();
    inner_->closeSocket();
  }

  // For a kept-alive connection between requests: true if it is open and has nothing to read.
  // A server that closed it (idle timeout, restart) has left an EOF or a reset here; a server
  // that wrote something unasked has broken the exchange. Either way it must not be reused.
  bool idleAndOpen() const {
    int fd = std::visit(
        [](auto& s) -> int {
          if constexpr (std::is_same_v<std::decay_t<decltype(s)>, std::monostate>) {
            return -1;
          } else {
            return s.is_open() ? static_cast<int>(s.native_handle()) : -1;
          }
        },
        inner_->sock);
    if (fd < 0) return false;
    char byte;
    auto n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

 private:
  net::any_io_executor exec_;
  std::shared_ptr<Inner> inner_;
  net::steady_timer timer_;
};

bhttp::request<bhttp::string_body> buildRequest(const Endpoint& ep, const Request& r) {
  bhttp::request<bhttp::string_body> req;
  req.method_string(r.method);
  req.target(r.target);
  req.version(11);
  req.set(bhttp::field::host, ep.hostHeader());
  req.set(bhttp::field::user_agent, "oasis/" OASIS_VERSION);
  req.set(bhttp::field::accept, "application/json, application/x-ndjson");
  for (auto& [k, v] : r.headers) req.set(k, v);
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT") {
    if (!r.contentType.empty()) req.set(bhttp::field::content_type, r.contentType);
    req.body() = r.body;
    req.prepare_payload();
  }
  req.keep_alive(true);
  return req;
}

template <typename Fields>
std::map<std::string, std::string> lowerHeaders(const Fields& fields) {
  std::map<std::string, std::string> out;
  for (auto& f : fields) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out[name] = std::string(f.value());
  }
  return out;
}

// The server closed or reset the connection before any byte of an answer: on a reused
// connection this is the server's idle close racing our request, not an answer.
bool closedUnanswered(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::connection_aborted;
}

Error timeoutOr(const Conn& c, const error_code& ec, const std::string& what) {
  if (c.timedOut() || ec == net::error::timed_out) return Error(what + ": timed out", kTimedOut);
  return Error(what + ": " + ec.message(), ec.value());
}

}  // namespace

struct ConnectionPool::Impl {
  std::size_t maxIdle;
  std::chrono::milliseconds maxIdleTime;
  struct Idle {
    std::string key;
    std::unique_ptr<Conn> conn;
    std::chrono::steady_clock::time_point since;
  };
  std::deque<Idle> idle;  // most recently returned last
  Counters counters;

  std::unique_ptr<Conn> take(const std::string& key) {
    auto now = std::chrono::steady_clock::now();
    for (auto it = idle.end(); it != idle.begin();) {
      --it;
      if (it->key != key) continue;
      auto conn = std::move(it->conn);
      bool fresh = now - it->since < maxIdleTime;
      it = idle.erase(it);
      if (fresh && conn->idleAndOpen()) return conn;
      ++counters.stale;  // closed by its destructor
    }
    return nullptr;
  }
  void put(std::string key, std::unique_ptr<Conn> conn) {
    if (maxIdle == 0) return;
    while (idle.size() >= maxIdle) idle.pop_front();
    idle.push_back({std::move(key), std::move(conn), std::chrono::steady_clock::now()});
  }
};

ConnectionPool::ConnectionPool(std::size_t maxIdle, std::chrono::milliseconds maxIdleTime)
    : impl_(std::make_shared<Impl>()) {
  impl_->maxIdle = maxIdle;
  impl_->maxIdleTime = maxIdleTime;
}
ConnectionPool::~ConnectionPool() = default;
void ConnectionPool::clear() { impl_->idle.clear(); }
std::size_t ConnectionPool::idleCount() const { return impl_->idle.size(); }
ConnectionPool::Counters ConnectionPool::counters() const { return impl_->counters; }

namespace {

class LineStreamImpl final : public LineStream {
 public:
  LineStreamImpl(net::any_io_executor exec, std::shared_ptr<ConnectionPool::Impl> pool, std::string key,
                 std::size_t maxLine)
      : exec_(std::move(exec)), pool_(std::move(pool)), key_(std::move(key)), maxLine_(maxLine) {}

  net::awaitable<error_code> start(const Endpoint& ep, const Request& request, const StreamOptions& opt) {
    auto req = buildRequest(ep, request);
    error_code ec;
    if (pool_) conn_ = pool_->take(key_);
    if (conn_) {
      reused_ = true;
      ++pool_->counters.reused;
      conn_->expireAfter(opt.headTimeout);
      ec = co_await exchangeHead(req);
      if (!ec || conn_->timedOut() || !closedUnanswered(ec)) co_return ec;
      // The server closed this idle connection as the request went out (its idle timeout, a
      // restart): nothing was answered, so the request goes once more, on a new connection.
      ++pool_->counters.resent;
      conn_->close();
      reused_ = false;
    }
    conn_ = std::make_unique<Conn>(exec_);
    if (pool_) ++pool_->counters.opened;
    conn_->expireAfter(opt.connectTimeout);
    ec = co_await conn_->connect(ep);
    if (ec) co_return ec;
    conn_->expireAfter(opt.headTimeout);
    co_return co_await exchangeHead(req);
  }

  net::awaitable<error_code> exchangeHead(bhttp::request<bhttp::string_body>& req) {
    error_code ec;
    auto write = [&](auto& s) { return bhttp::async_write(s, req, net::redirect_error(net::use_awaitable, ec)); };
    co_await conn_->io(write);
    if (ec) co_return ec;
    buffer_.clear();
    parser_.emplace();
    parser_->body_limit(boost::none);
    auto readHeader = [&](auto& s) {
      return bhttp::async_read_header(s, buffer_, *parser_, net::redirect_error(net::use_awaitable, ec));
    };
    co_await conn_->io(readHeader);
    if (ec) co_return ec;
    conn_->disarm();
    head_.status = static_cast<int>(parser_->get().result_int());
    head_.headers = lowerHeaders(parser_->get());
    if (parser_->is_done()) bodyDone_ = true;
    co_return ec;
  }

  const Response& head() const override { return head_; }

  net::awaitable<Result<std::optional<std::string>>> nextLine(std::chrono::milliseconds timeout) override {
    if (closed_) co_return Error("stream closed");
    conn_->expireAfter(timeout);
    for (;;) {
      auto nl = pending_.find('\n', scanFrom_);
      if (nl != std::string::npos) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        scanFrom_ = 0;
        conn_->disarm();
        if (!line.empty() && line.back() == '\r') line.pop_back();
        co_return std::optional<std::string>(std::move(line));
      }
      scanFrom_ = pending_.size();
      if (pending_.size() > maxLine_) {
        conn_->disarm();
        co_return Error("line longer than " + std::to_string(maxLine_) + " bytes", EMSGSIZE);
      }
      if (bodyDone_) {
        conn_->disarm();
        if (pending_.empty()) co_return std::optional<std::string>();
        std::string line = std::move(pending_);
        pending_.clear();
        scanFrom_ = 0;
        co_return std::optional<std::string>(std::move(line));
      }
      char chunk[16384];
      error_code ec;
      std::size_t got = co_await readSome(chunk, sizeof chunk, ec);
      pending_.append(chunk, got);
      if (ec) {
        conn_->disarm();
        if (conn_->timedOut()) co_return Error("no data within " + std::to_string(timeout.count()) + " ms", kTimedOut);
        co_return Error("stream read failed: " + ec.message(), ec.value() ? ec.value() : EIO);
      }
    }
  }

  void close() override {
    closed_ = true;
    if (conn_) conn_->close();
  }

  net::awaitable<void> finish(std::chrono::milliseconds grace) override {
    if (closed_ || !pool_ || !conn_) {
      close();
      co_return;
    }
    conn_->expireAfter(grace);
    while (!bodyDone_) {
      char chunk[4096];
      error_code ec;
      co_await readSome(chunk, sizeof chunk, ec);
      if (ec) {
        close();
        co_return;
      }
    }
    conn_->disarm();
    // Reusable only if the server keeps it open and sent nothing past this response.
    if (!parser_->keep_alive() || buffer_.size() != 0 || conn_->timedOut()) {
      close();
      co_return;
    }
    closed_ = true;
    pool_->put(key_, std::move(conn_));
  }

  bool reusedConnection() const override { return reused_; }

 private:
  // One read_some of the body into `buf`; sets bodyDone_ when the parser has seen its end.
  // read_some, not read: async_read would wait until the buffer is full or the body ends, so a
  // line (a token) would not be seen until much later (or never, on a hang).
  net::awaitable<std::size_t> readSome(char* buf, std::size_t size, error_code& ec) {
    parser_->get().body().data = buf;
    parser_->get().body().size = size;
    auto read = [&](auto& s) { return bhttp::async_read_some(s, buffer_, *parser_, net::redirect_error(net::use_awaitable, ec)); };
    co_await conn_->io(read);
    if (ec == bhttp::error::need_buffer) ec = {};
    if (!ec && parser_->is_done()) bodyDone_ = true;
    co_return size - parser_->get().body().size;
  }

  net::any_io_executor exec_;
  std::shared_ptr<ConnectionPool::Impl> pool_;
  std::string key_;
  std::unique_ptr<Conn> conn_;
  std::size_t maxLine_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
  Response head_;
  std::string pending_;
  std::size_t scanFrom_ = 0;
  bool bodyDone_ = false;
  bool closed_ = false;
  bool reused_ = false;
};

}  // namespace

net::awaitable<Result<Response>> asyncFetch(net::any_io_executor exec, Endpoint endpoint, Request request,
                                            std::chrono::milliseconds timeout) {
  Conn conn(exec);
  conn.expireAfter(timeout);
  auto ec = co_await conn.connect(endpoint);
  if (ec) co_return timeoutOr(conn, ec, "connect " + endpoint.toString());
  auto req = buildRequest(endpoint, request);
  auto write = [&](auto& s) { return bhttp::async_write(s, req, net::redirect_error(net::use_awaitable, ec)); };
  co_await conn.io(write);
  // A server may answer and close before taking the whole body (413 for an oversized one):
  // the write then fails with EPIPE/ECONNRESET, but the answer is there to read.
  bool writeCut = ec == net::error::broken_pipe || ec == net::error::connection_reset;
  if (ec && !writeCut) co_return timeoutOr(conn, ec, request.method + " " + request.target);
  auto writeError = ec;
  ec = {};
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  if (request.method == "HEAD") parser.skip(true);
  auto read = [&](auto& s) { return bhttp::async_read(s, buffer, parser, net::redirect_error(net::use_awaitable, ec)); };
  co_await conn.io(read);
  if (ec) co_return timeoutOr(conn, writeCut ? writeError : ec, request.method + " " + request.target);
  conn.close();
  Response res;
  res.status = static_cast<int>(parser.get().result_int());
  res.headers = lowerHeaders(parser.get());
  res.body = std::move(parser.get().body());
  co_return res;
}

net::awaitable<Result<std::unique_ptr<LineStream>>> openLineStream(net::any_io_executor exec, Endpoint endpoint,
                                                                   Request request, StreamOptions options) {
  std::shared_ptr<ConnectionPool::Impl> pool = options.pool ? options.pool->impl() : nullptr;
  auto stream = std::make_unique<LineStreamImpl>(exec, std::move(pool), endpoint.toString(), options.maxLineBytes);
  auto ec = co_await stream->start(endpoint, request, options);
  if (ec) {
    bool timedOut = ec == net::error::timed_out || ec == net::error::operation_aborted || ec == net::error::bad_descriptor;
    stream->close();
    if (timedOut) co_return Error(request.method + " " + request.target + " on " + endpoint.toString() + ": timed out", kTimedOut);
    co_return Error(request.method + " " + request.target + " on " + endpoint.toString() + ": " + ec.message(), ec.value());
  }
  co_return std::unique_ptr<LineStream>(std::move(stream));
}

Result<Response> fetch(const Endpoint& endpoint, const Request& request, std::chrono::milliseconds timeout) {
  net::io_context ioc;
  std::optional<Result<Response>> result;
  std::exception_ptr failure;
  net::co_spawn(ioc, asyncFetch(ioc.get_executor(), endpoint, request, timeout),
                [&](std::exception_ptr e, Result<Response> r) {
                  if (e) failure = e;
                  else result.emplace(std::move(r));
                });
  // The operation enforces its own deadline; this bound is a backstop against a bug.
  ioc.run_for(timeout + std::chrono::seconds(5));
  if (failure) std::rethrow_exception(failure);
  if (!result) return Error("request timed out", kTimedOut);
  return std::move(*result);
}

namespace {
net::awaitable<Result<int>> linesLoop(net::any_io_executor exec, Endpoint endpoint, Request request,
                                      std::function<bool(std::string_view)> onLine,
                                      std::function<void(const Response&)> onHead, std::chrono::milliseconds timeout,
                                      std::chrono::milliseconds lineTimeout) {
  StreamOptions opt;
  opt.headTimeout = timeout;
  auto opened = co_await openLineStream(exec, endpoint, request, opt);
  if (!opened) co_return opened.error();
  auto& stream = *opened;
  if (onHead) onHead(stream->head());
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) co_return Error("stream timed out", kTimedOut);
    auto wait = lineTimeout.count() > 0 ? std::min(left, lineTimeout) : left;
    auto line = co_await stream->nextLine(wait);
    if (!line) co_return line.error();
    if (!line->has_value()) break;
    if (!onLine(**line)) break;
  }
  stream->close();
  co_return stream->head().status;
}
}  // namespace

Result<int> fetchLines(const Endpoint& endpoint, const Request& request,
                       const std::function<bool(std::string_view line)>& onLine, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds lineTimeout, const std::function<void(const Response& head)>& onHead) {
  net::io_context ioc;
  net::any_io_executor exec = ioc.get_executor();
  std::optional<Result<int>> result;
  std::exception_ptr failure;
  net::co_spawn(ioc, linesLoop(exec, endpoint, request, onLine, onHead, timeout, lineTimeout),
                [&](std::exception_ptr e, Result<int> r) {
                  if (e) failure = e;
                  else result.emplace(std::move(r));
                });
  ioc.run_for(timeout + std::chrono::seconds(5));
  if (failure) std::rethrow_exception(failure);
  if (!result) return Error("stream timed out", kTimedOut);
  return std::move(*result);
}

}  // namespace oasis::http
