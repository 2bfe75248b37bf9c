// HTTP/1.1 server over TCP and Unix stream sockets (Beast parser/serializer, Asio coroutines).
//
// One coroutine owns each connection. Every read is bounded: header and body sizes, a read
// timeout once a request has begun and an idle timeout between keep-alive requests, so a
// slowloris client cannot hold a slot. While a handler runs, a watcher notices when the peer
// closes its side: fake-ollama uses this to drop a runner reference exactly when Ollama would
// (at client disconnect), and oasisd uses it to cancel work nobody waits for any more.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstring>
#include <list>
#include <spdlog/spdlog.h>

#include "common/http.h"

namespace oasis::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using unix_stream = net::local::stream_protocol;
using boost::system::error_code;

namespace {

PeerCredentials peerOf(int fd) {
  PeerCredentials p;
#if defined(__linux__)
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    p.known = true;
    p.pid = cred.pid;
    p.uid = cred.uid;
    p.gid = cred.gid;
  }
#if defined(SO_PEERGROUPS)
  // Groups are read once, at accept: they are the credentials the peer connected with.
  std::vector<gid_t> groups(64);
  socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  int rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen);
  if (rc != 0 && errno == ERANGE && glen > 0) {
    groups.resize(glen / sizeof(gid_t));
    rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen);
  }
  if (rc == 0) {
    groups.resize(glen / sizeof(gid_t));
    p.groups.assign(groups.begin(), groups.end());
  }
#endif
#elif defined(__APPLE__)
  uid_t uid = 0;
  gid_t gid = 0;
  if (getpeereid(fd, &uid, &gid) == 0) {
    p.known = true;
    p.uid = uid;
    p.gid = gid;
    pid_t pid = -1;
    socklen_t len = sizeof pid;
    if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0) p.pid = pid;
  }
#else
  (void)fd;
#endif
  return p;
}

const char* reasonFor(int status) {
  auto r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return r.empty() ? "Unknown" : r.data();
}

}  // namespace

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void closeNow() = 0;
};

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  net::any_io_executor exec;
  Handler handler;
  ServerOptions options;
  std::vector<std::unique_ptr<tcp::acceptor>> tcpAcceptors;
  std::vector<std::unique_ptr<unix_stream::acceptor>> unixAcceptors;
  std::vector<std::string> unixPaths;
  std::list<std::weak_ptr<ConnectionBase>> connections;
  std::size_t open = 0;
  bool stopped = false;
  uint16_t port = 0;

  template <typename Acceptor>
  net::awaitable<void> acceptLoop(Acceptor* acceptor, bool isUnix);
};

namespace {

template <typename Socket>
class Connection final : public ConnectionBase,
                         public ResponseWriter,
                         public std::enable_shared_from_this<Connection<Socket>> {
 public:
  Connection(Socket socket, std::shared_ptr<HttpServer::Impl> server, bool isUnix)
      : socket_(std::move(socket)),
        server_(std::move(server)),
        isUnix_(isUnix),
        deadline_(socket_.get_executor()),
        closedSignal_(socket_.get_executor()) {
    closedSignal_.expires_at(net::steady_timer::time_point::max());
  }

  void closeNow() override {
    error_code ignored;
    if (socket_.is_open()) {
      socket_.shutdown(Socket::shutdown_both, ignored);
      socket_.close(ignored);
    }
    markGone();
  }

  net::awaitable<void> run() {
    auto self = this->shared_from_this();
    PeerCredentials peer;
    if (isUnix_) peer = peerOf(socket_.native_handle());
    bool authorized = !server_->options.authorize || server_->options.authorize(peer);
    watchdogStart();
    try {
      while (socket_.is_open() && !server_->stopped) {
        if (!co_await readOne(peer, authorized)) break;
      }
    } catch (const std::exception& e) {
      spdlog::debug("http connection ended: {}", e.what());
    }
    deadline_.cancel();
    closeNow();
  }

  // ResponseWriter ---------------------------------------------------------------------------
  net::awaitable<void> send(int status, std::string body, std::string contentType, Headers extra) override {
    if (started_) co_return;
    started_ = true;
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
    res.reason(reasonFor(status));
    res.set(bhttp::field::server, server_->options.serverName);
    if (!contentType.empty()) res.set(bhttp::field::content_type, contentType);
    for (auto& [k, v] : extra) res.set(k, v);
    res.keep_alive(keepAlive_);
    if (method_ == "HEAD") {
      res.content_length(body.size());
    } else {
      res.body() = std::move(body);
      res.prepare_payload();
    }
    error_code ec;
    if (method_ == "HEAD") {
      bhttp::response_serializer<bhttp::string_body> sr{res};
      co_await bhttp::async_write_header(socket_, sr, net::redirect_error(net::use_awaitable, ec));
    } else {
      co_await bhttp::async_write(socket_, res, net::redirect_error(net::use_awaitable, ec));
    }
    if (ec) markGone();
    finished_ = true;
  }

  net::awaitable<bool> beginStream(int status, std::string contentType, Headers extra) override {
    if (started_) co_return !gone_;
    started_ = true;
    streaming_ = true;
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(status), 11};
    res.reason(reasonFor(status));
    res.set(bhttp::field::server, server_->options.serverName);
    res.set(bhttp::field::content_type, contentType);
    for (auto& [k, v] : extra) res.set(k, v);
    res.keep_alive(keepAlive_);
    res.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    error_code ec;
    co_await bhttp::async_write_header(socket_, sr, net::redirect_error(net::use_awaitable, ec));
    if (ec) markGone();
    co_return !gone_;
  }

  net::awaitable<bool> writeChunk(std::string data) override {
    if (!streaming_ || gone_) co_return false;
    if (data.empty()) co_return true;  // an empty chunk would end the body
    error_code ec;
    co_await net::async_write(socket_, bhttp::make_chunk(net::buffer(data)), net::redirect_error(net::use_awaitable, ec));
    if (ec) markGone();
    co_return !gone_;
  }

  net::awaitable<void> endStream() override {
    if (!streaming_ || finished_) co_return;
    finished_ = true;
    if (gone_) co_return;
    error_code ec;
    co_await net::async_write(socket_, bhttp::make_chunk_last(), net::redirect_error(net::use_awaitable, ec));
    if (ec) markGone();
  }

  bool clientGone() const override { return gone_; }
  bool started() const override { return started_; }

  net::awaitable<void> waitUntilClosed() override {
    if (gone_) co_return;
    error_code ec;
    co_await closedSignal_.async_wait(net::redirect_error(net::use_awaitable, ec));
  }

 private:
  // Reads one request, runs the handler, writes the response. Returns false to close.
  net::awaitable<bool> readOne(const PeerCredentials& peer, bool authorized) {
    auto& opts = server_->options;
    error_code ec;
    if (buffer_.size() == 0) {
      // Idle between requests: wait for the first byte under the (long) idle timeout.
      armDeadline(opts.idleTimeout);
      co_await socket_.async_wait(Socket::wait_read, net::redirect_error(net::use_awaitable, ec));
      if (ec || !socket_.is_open()) co_return false;
    }
    // A request has begun: the whole of it must arrive within the read timeout.
    armDeadline(opts.readTimeout);
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opts.maxHeaderBytes));
    parser.body_limit(opts.maxBodyBytes);
    co_await bhttp::async_read_header(socket_, buffer_, parser, net::redirect_error(net::use_awaitable, ec));
    resetPerRequest();
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof) co_return false;
    const std::string tooLarge = "request body exceeds " + std::to_string(opts.maxBodyBytes) + " bytes";
    if (ec == bhttp::error::body_limit) {  // Content-Length alone already exceeds the limit
      co_await sendError(413, "body_too_large", tooLarge);
      co_return false;
    }
    if (ec == bhttp::error::header_limit) {
      std::string why = "request header exceeds " + std::to_string(opts.maxHeaderBytes) + " bytes";
      co_await sendError(431, "header_too_large", why);
      co_return false;
    }
    if (ec) {
      std::string why = "malformed HTTP request: " + ec.message();
      if (ec != net::error::operation_aborted && socket_.is_open()) co_await sendError(400, "bad_request", why);
      co_return false;
    }
    auto contentLength = parser.content_length();
    if (contentLength && *contentLength > opts.maxBodyBytes) {
      co_await sendError(413, "body_too_large", tooLarge);
      co_return false;
    }
    co_await bhttp::async_read(socket_, buffer_, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec == bhttp::error::body_limit) {
      co_await sendError(413, "body_too_large", tooLarge);
      co_return false;
    }
    if (ec) {
      std::string why = "malformed HTTP request: " + ec.message();
      if (ec != net::error::operation_aborted && ec != bhttp::error::end_of_stream && socket_.is_open())
        co_await sendError(400, "bad_request", why);
      co_return false;
    }
    // The handler may run for as long as it likes (streams, long waits); it is bounded by its
    // own logic, not by the read timeout.
    deadline_.expires_at(net::steady_timer::time_point::max());

    auto msg = parser.release();
    ServerRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    auto q = req.target.find('?');
    req.path = urlDecode(std::string_view(req.target).substr(0, q));
    if (q != std::string::npos) req.query = parseQuery(std::string_view(req.target).substr(q + 1));
    for (auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(f.value());
    }
    req.body = std::move(msg.body());
    req.peer = peer;
    req.keepAlive = msg.keep_alive();
    keepAlive_ = req.keepAlive;
    method_ = req.method;

    if (!authorized) {
      std::string why = "peer uid " + std::to_string(peer.uid) + " may not use this socket";
      co_await sendError(403, "forbidden", why);
      co_return false;
    }

    startWatcher();
    std::string failure;
    try {
      co_await server_->handler(req, *this);
    } catch (const std::exception& e) {
      spdlog::error("http handler for {} {} threw: {}", req.method, req.path, e.what());
      failure = std::string("internal error: ") + e.what();
    }
    stopWatcher();
    if (failure.empty()) failure = "handler produced no response";
    // A handler that stops because its client went away (a compat call, ?wait) answers nothing
    // on purpose: close instead of inventing a 500 (found by tests/fuzz/fuzz_http_request,
    // whose client half-closes after its request, as a cancelling client does).
    if (!started_ && !(gone_ && failure == "handler produced no response")) co_await sendError(500, "internal", failure);
    if (streaming_ && !finished_) co_await endStream();
    co_return keepAlive_ && !gone_ && !server_->stopped;
  }

  net::awaitable<void> sendError(int status, const std::string& code, const std::string& message) {
    keepAlive_ = false;
    std::string body = errorBody(code, message);
    co_await send(status, std::move(body), "application/json", {});
  }

  void resetPerRequest() {
    started_ = streaming_ = finished_ = false;
    keepAlive_ = true;
  }

  void armDeadline(std::chrono::milliseconds d) {
    deadline_.expires_after(d);
  }

  // One long-lived timer per connection: whenever it expires (and was not pushed forward), the
  // socket is closed, which aborts whatever read is pending.
  void watchdogStart() {
    deadline_.expires_at(net::steady_timer::time_point::max());
    watchdogWait();
  }
  void watchdogWait() {
    auto self = this->shared_from_this();
    deadline_.async_wait([self](error_code) {
      if (!self->socket_.is_open()) return;
      if (self->deadline_.expiry() <= net::steady_timer::clock_type::now()) {
        self->closeNow();
        return;
      }
      self->watchdogWait();
    });
  }

  // While the handler runs, wait for the socket to become readable. Readable with 0 bytes to
  // peek (or an error) means the peer closed: mark the connection gone. Readable with data
  // means a pipelined request: leave it for the parser and stop watching.
  void startWatcher() {
    if (watching_ || gone_) return;
    watching_ = true;
    auto self = this->shared_from_this();
    socket_.async_wait(Socket::wait_read,
                       net::bind_cancellation_slot(watchCancel_.slot(), [self](error_code ec) {
                         self->watching_ = false;
                         if (ec == net::error::operation_aborted) return;
                         if (ec) {
                           self->markGone();
                           return;
                         }
                         char b;
                         ssize_t n = ::recv(self->socket_.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
                         if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                           self->markGone();
                         else if (n < 0)
                           self->startWatcher();  // spurious wakeup
                       }));
  }
  void stopWatcher() {
    if (watching_) watchCancel_.emit(net::cancellation_type::all);
  }

  void markGone() {
    if (gone_) return;
    gone_ = true;
    closedSignal_.cancel();
  }

  Socket socket_;
  std::shared_ptr<HttpServer::Impl> server_;
  bool isUnix_;
  beast::flat_buffer buffer_;
  net::steady_timer deadline_;
  net::steady_timer closedSignal_;
  net::cancellation_signal watchCancel_;
  std::string method_;
  bool started_ = false, streaming_ = false, finished_ = false, keepAlive_ = true;
  bool gone_ = false, watching_ = false;
};

}  // namespace

template <typename Acceptor>
net::awaitable<void> HttpServer::Impl::acceptLoop(Acceptor* acceptor, bool isUnix) {
  auto self = shared_from_this();
  while (!stopped && acceptor->is_open()) {
    error_code ec;
    auto socket = co_await acceptor->async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      if (ec == net::error::operation_aborted || stopped) break;
      // EMFILE and friends: log and keep serving the connections we have.
      spdlog::warn("accept failed: {}", ec.message());
      net::steady_timer backoff(exec, std::chrono::milliseconds(50));
      co_await backoff.async_wait(net::redirect_error(net::use_awaitable, ec));
      continue;
    }
    connections.remove_if([](const std::weak_ptr<ConnectionBase>& w) { return w.expired(); });
    if (connections.size() >= options.maxConnections) {
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    using Sock = typename Acceptor::protocol_type::socket;
    if constexpr (std::is_same_v<Sock, tcp::socket>) {
      // Like Go's net/http (so Ollama itself): a response written in several small pieces
      // (NDJSON chunks) must not wait on Nagle for the client's delayed ACK, ~40 ms a piece
      // once a kept-alive connection leaves TCP's quick-ACK start.
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
    }
    auto conn = std::make_shared<Connection<Sock>>(std::move(socket), self, isUnix);
    connections.push_back(conn);
    net::co_spawn(exec, conn->run(), [](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("http connection failed: {}", ex.what());
        }
      }
    });
  }
}

HttpServer::HttpServer(net::any_io_executor exec, Handler handler, ServerOptions options)
    : impl_(std::make_shared<Impl>()) {
  impl_->exec = std::move(exec);
  impl_->handler = std::move(handler);
  impl_->options = std::move(options);
}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::listen(const Endpoint& endpoint) {
  error_code ec;
  if (endpoint.kind == Endpoint::Kind::Tcp) {
    auto addr = net::ip::make_address(endpoint.host, ec);
    if (ec) return Error("bad listen address '" + endpoint.host + "': " + ec.message());
    auto acc = std::make_unique<tcp::acceptor>(impl_->exec);
    tcp::endpoint ep(addr, endpoint.port);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Error("listen on " + endpoint.toString() + ": " + ec.message(), ec.value());
    impl_->port = acc->local_endpoint().port();
    impl_->tcpAcceptors.push_back(std::move(acc));
    return {};
  }

  const std::string& path = endpoint.path;
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return Error("socket path too long (" + std::to_string(path.size()) + " bytes): " + path);
  // The directory is created 0700 so that no other user can reach the socket even for a moment.
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) {
      // create parents as needed
      for (size_t i = 1; i <= dir.size(); ++i) {
        if (i == dir.size() || dir[i] == '/') {
          std::string part = dir.substr(0, i);
          if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
            return Error("cannot create socket directory " + part + ": " + std::strerror(errno));
        }
      }
      // The allowed group must be able to reach the socket: only the directory we just made
      // is opened to it (0710, group-owned: traverse, not list). An existing directory is the
      // owner's business; it is left as it is.
      if (impl_->options.socketGroup) {
        if (::chown(dir.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*impl_->options.socketGroup)) != 0 ||
            ::chmod(dir.c_str(), 0710) != 0)
          return Error("cannot open socket directory " + dir + " to group " +
                       std::to_string(*impl_->options.socketGroup) + ": " + std::strerror(errno));
      }
    }
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error("refusing to replace non-socket file at " + path);
    // A live daemon answers a connect; a stale socket from a crash refuses it.
    unix_stream::socket probe(impl_->exec);
    probe.connect(unix_stream::endpoint(path), ec);
    if (!ec) return Error("another process is already listening on " + path, EADDRINUSE);
    ::unlink(path.c_str());
  }
  auto acc = std::make_unique<unix_stream::acceptor>(impl_->exec);
  acc->open(unix_stream(), ec);
  if (ec) return Error("socket(): " + ec.message());
  // umask makes bind() create the socket file 0600 at once (no window where it is wider).
  mode_t old = ::umask(0177);
  acc->bind(unix_stream::endpoint(path), ec);
  ::umask(old);
  if (ec) return Error("bind " + path + ": " + ec.message(), ec.value());
  if (impl_->options.socketGroup &&
      ::chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(*impl_->options.socketGroup)) != 0) {
    std::string why = std::strerror(errno);
    ::unlink(path.c_str());
    return Error("cannot give socket " + path + " to group " + std::to_string(*impl_->options.socketGroup) + ": " + why);
  }
  ::chmod(path.c_str(), impl_->options.socketMode);
  acc->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Error("listen " + path + ": " + ec.message(), ec.value());
  impl_->unixAcceptors.push_back(std::move(acc));
  impl_->unixPaths.push_back(path);
  return {};
}

uint16_t HttpServer::boundPort() const { return impl_->port; }

void HttpServer::start() {
  auto logErr = [](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("accept loop failed: {}", ex.what());
      }
    }
  };
  for (auto& a : impl_->tcpAcceptors) net::co_spawn(impl_->exec, impl_->acceptLoop(a.get(), false), logErr);
  for (auto& a : impl_->unixAcceptors) net::co_spawn(impl_->exec, impl_->acceptLoop(a.get(), true), logErr);
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  error_code ignored;
  for (auto& a : impl_->tcpAcceptors) a->close(ignored);
  for (auto& a : impl_->unixAcceptors) a->close(ignored);
  for (auto& p : impl_->unixPaths) ::unlink(p.c_str());
  for (auto& w : impl_->connections)
    if (auto c = w.lock()) c->closeNow();
  impl_->connections.clear();
}

std::size_t HttpServer::openConnections() const {
  std::size_t n = 0;
  for (auto& w : impl_->connections)
    if (!w.expired()) ++n;
  return n;
}

}  // namespace oasis::http
