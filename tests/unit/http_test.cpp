// The HTTP server and client against each other, over TCP and a Unix socket, in one process:
// the server runs on its own io_context thread, the blocking client on the test thread.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <future>
#include <thread>

#include "catch.h"
#include "common/http.h"
#include "test_support.h"

using namespace oasis;
using namespace oasis::http;
using namespace std::chrono_literals;

namespace {

struct ServerFixture {
  net::io_context ioc;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
  std::atomic<int> closedSeen{0};
  std::atomic<bool> holding{false};

  explicit ServerFixture(ServerOptions opts = {}) {
    server = std::make_unique<HttpServer>(ioc.get_executor(),
                                          [this](ServerRequest& req, ResponseWriter& w) { return handle(req, w); }, opts);
  }
  void start() {
    server->start();
    thread = std::thread([this] { ioc.run(); });
  }
  // Listens on a free loopback port, starts, and returns where to connect.
  Endpoint startTcp() {
    REQUIRE(server->listen(Endpoint::tcp("127.0.0.1", 0)).ok());
    start();
    return Endpoint::tcp("127.0.0.1", server->boundPort());
  }
  ~ServerFixture() {
    net::post(ioc, [this] { server->stop(); });
    ioc.stop();
    if (thread.joinable()) thread.join();
  }

  net::awaitable<void> handle(ServerRequest& req, ResponseWriter& w) {
    if (req.path == "/echo") {
      nlohmann::json j;
      j["method"] = req.method;
      j["body"] = req.body;
      j["query"] = req.query;
      j["uid"] = req.peer.uid;
      j["known"] = req.peer.known;
      co_await w.send(200, j.dump());
    } else if (req.path == "/stream") {
      int n = std::stoi(req.query.count("n") ? req.query["n"] : "3");
      co_await w.beginStream(200, "application/x-ndjson");
      for (int i = 0; i < n; ++i) {
        nlohmann::json line;
        line["i"] = i;
        std::string text = line.dump() + "\n";
        co_await w.writeChunk(text);
      }
      co_await w.endStream();
    } else if (req.path == "/hold") {
      // Holds the request open without writing until the client disconnects.
      holding = true;
      co_await w.waitUntilClosed();
      ++closedSeen;
    } else {
      std::string body = errorBody("not_found", "no route " + req.path);
      co_await w.send(404, body);
    }
  }
};

}  // namespace

TEST_CASE("HTTP over TCP: request, query, keep-alive and 404", "[http]") {
  ServerFixture f;
  REQUIRE(f.server->listen(Endpoint::tcp("127.0.0.1", 0)).ok());
  REQUIRE(f.server->boundPort() != 0);
  f.start();
  auto ep = Endpoint::tcp("127.0.0.1", f.server->boundPort());
  auto r = fetch(ep, {"POST", "/echo?a=1&b=x%20y", "hello", "text/plain", {}});
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  auto j = nlohmann::json::parse(r->body);
  CHECK(j["method"] == "POST");
  CHECK(j["body"] == "hello");
  CHECK(j["query"]["b"] == "x y");
  auto nf = fetch(ep, {"GET", "/nope", "", "", {}});
  REQUIRE(nf.ok());
  CHECK(nf->status == 404);
  CHECK(nlohmann::json::parse(nf->body)["error"]["code"] == "not_found");
}

TEST_CASE("HTTP streaming: lines arrive one by one", "[http]") {
  ServerFixture f;
  REQUIRE(f.server->listen(Endpoint::tcp("127.0.0.1", 0)).ok());
  f.start();
  std::vector<std::string> lines;
  int status = 0;
  auto r = fetchLines(Endpoint::tcp("127.0.0.1", f.server->boundPort()), {"GET", "/stream?n=5", "", "", {}},
                      [&](std::string_view l) { lines.emplace_back(l); return true; }, 5s, 0ms,
                      [&](const Response& head) { status = head.status; });
  REQUIRE(r.ok());
  CHECK(status == 200);
  REQUIRE(lines.size() == 5);
  CHECK(nlohmann::json::parse(lines[4])["i"] == 4);
}

TEST_CASE("HTTP over a Unix socket: mode 0600, peer credentials, stale and live sockets", "[http]") {
  test::TempDir dir;
  std::string path = dir.path() + "/sub/oasisd.sock";
  {
    ServerFixture f;
    REQUIRE(f.server->listen(Endpoint::unixSocket(path)).ok());
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(stat((dir.path() + "/sub").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    f.start();
    auto r = fetch(Endpoint::unixSocket(path), {"GET", "/echo", "", "", {}});
    REQUIRE(r.ok());
    auto j = nlohmann::json::parse(r->body);
    CHECK(j["known"] == true);
    CHECK(j["uid"] == getuid());

    // A second server on the same live socket must refuse to start.
    net::io_context other;
    HttpServer second(other.get_executor(), [](ServerRequest&, ResponseWriter& w) -> net::awaitable<void> {
      co_await w.send(200, "{}");
    });
    auto st2 = second.listen(Endpoint::unixSocket(path));
    CHECK_FALSE(st2.ok());
    CHECK(st2.error().message.find("already listening") != std::string::npos);
  }
  // A stale socket file (no listener) is replaced.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ::unlink(path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::close(fd);  // bound but never listening: a crashed daemon's leftover
    ServerFixture f;
    REQUIRE(f.server->listen(Endpoint::unixSocket(path)).ok());
  }
}

TEST_CASE("HTTP over a Unix socket: a socket group opens the file 0660 and a created directory 0710 to it", "[http]") {
  test::TempDir dir;
  std::string path = dir.path() + "/sub/oasisd.sock";
  ServerOptions opts;
  opts.socketMode = 0660;
  opts.socketGroup = static_cast<unsigned>(getgid());  // a group we may chown to without root
  ServerFixture f(opts);
  REQUIRE(f.server->listen(Endpoint::unixSocket(path)).ok());
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0660);
  CHECK(st.st_gid == getgid());
  REQUIRE(stat((dir.path() + "/sub").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0710);
  CHECK(st.st_gid == getgid());
  // A directory that already existed is left as its owner made it.
  REQUIRE(stat(dir.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
}

TEST_CASE("HTTP server: authorize callback refuses a peer with 403", "[http]") {
  test::TempDir dir;
  ServerOptions opts;
  opts.authorize = [](const PeerCredentials& p) { return p.known && p.uid == 4242u; };
  ServerFixture f(opts);
  std::string path = dir.path() + "/s.sock";
  REQUIRE(f.server->listen(Endpoint::unixSocket(path)).ok());
  f.start();
  auto r = fetch(Endpoint::unixSocket(path), {"GET", "/echo", "", "", {}});
  REQUIRE(r.ok());
  CHECK(r->status == 403);
}

TEST_CASE("HTTP server: bodies over the limit get 413", "[http]") {
  ServerOptions opts;
  opts.maxBodyBytes = 1024;
  ServerFixture f(opts);
  REQUIRE(f.server->listen(Endpoint::tcp("127.0.0.1", 0)).ok());
  f.start();
  auto r = fetch(Endpoint::tcp("127.0.0.1", f.server->boundPort()), {"POST", "/echo", std::string(4096, 'x'), "text/plain", {}});
  REQUIRE(r.ok());
  CHECK(r->status == 413);
  CHECK(nlohmann::json::parse(r->body)["error"]["code"] == "body_too_large");
}

TEST_CASE("HTTP server: a handler holding a request sees the client disconnect", "[http]") {
  ServerFixture f;
  REQUIRE(f.server->listen(Endpoint::tcp("127.0.0.1", 0)).ok());
  f.start();
  // The client gives up after 300 ms and closes its connection.
  auto r = fetch(Endpoint::tcp("127.0.0.1", f.server->boundPort()), {"GET", "/hold", "", "", {}}, 300ms);
  CHECK_FALSE(r.ok());
  CHECK(r.error().code == ETIMEDOUT);
  CHECK(test::waitFor([&] { return f.closedSeen.load() == 1; }, 5s));
}

TEST_CASE("HTTP client: a stalled stream times out per line", "[http]") {
  ServerFixture f;
  REQUIRE(f.server->listen(Endpoint::tcp("127.0.0.1", 0)).ok());
  f.start();
  net::io_context ioc;
  Result<std::optional<std::string>> got = Error("unset");
  bool opened = false;
  net::co_spawn(ioc, [&]() -> net::awaitable<void> {
    // Arguments are named locals: GCC 12 mishandles braced temporaries inside co_await.
    Request req{"GET", "/hold", "", "", {}};
    StreamOptions opts{1000ms, 200ms, 1024};
    auto ep = Endpoint::tcp("127.0.0.1", f.server->boundPort());
    auto s = co_await openLineStream(ioc.get_executor(), ep, req, opts);
    opened = s.ok();
    if (!s.ok()) got = s.error();
  }, net::detached);
  ioc.run_for(5s);
  // /hold never sends a status line: the head timeout fires.
  CHECK_FALSE(opened);
  CHECK_FALSE(got.ok());
  CHECK(got.error().code == ETIMEDOUT);
}

namespace {

// Runs `body` as a coroutine on `ioc` until it finishes (bounded). A ConnectionPool's sockets
// belong to the io_context they were opened on: each test's context is declared before its pool,
// so that it outlives the pool, as oasisd's outlives its TrialService.
void runCoroutine(net::io_context& ioc, const std::function<net::awaitable<void>(net::io_context&)>& body) {
  ioc.restart();
  bool done = false;
  net::co_spawn(ioc, body(ioc), [&](std::exception_ptr e) {
    done = true;
    if (e) std::rethrow_exception(e);
  });
  ioc.run_for(10s);
  REQUIRE(done);
}

// One streamed request on `pool`: reads up to and including the line {"i":last}, then finish().
net::awaitable<bool> streamOnce(net::io_context& ioc, const Endpoint& ep, ConnectionPool& pool, int last,
                                std::vector<std::string>& lines) {
  Request req{"GET", "/stream?n=" + std::to_string(last + 1), "", "", {}};
  StreamOptions opts;
  opts.pool = &pool;
  auto s = co_await openLineStream(ioc.get_executor(), ep, req, opts);
  REQUIRE(s.ok());
  auto& stream = *s;
  for (;;) {
    auto line = co_await stream->nextLine(2000ms);
    REQUIRE(line.ok());
    REQUIRE(line->has_value());
    lines.push_back(**line);
    if (**line == "{\"i\":" + std::to_string(last) + "}") break;  // the "final chunk": stop reading here
  }
  bool reused = stream->reusedConnection();
  co_await stream->finish(1000ms);
  co_return reused;
}

std::size_t connectionsOf(ServerFixture& f) {
  std::promise<std::size_t> p;
  net::post(f.ioc, [&] { p.set_value(f.server->openConnections()); });
  return p.get_future().get();
}

}  // namespace

TEST_CASE("HTTP client pool: a response read to its final line lends its connection to the next", "[http]") {
  ServerFixture f;
  auto ep = f.startTcp();
  net::io_context ioc;
  ConnectionPool pool;
  std::vector<bool> reused;
  std::vector<std::string> lines;
  runCoroutine(ioc, [&](net::io_context&) -> net::awaitable<void> {
    for (int i = 0; i < 3; ++i) reused.push_back(co_await streamOnce(ioc, ep, pool, 2, lines));
  });
  CHECK(reused == std::vector<bool>{false, true, true});
  CHECK(lines.size() == 9);
  auto c = pool.counters();
  CHECK(c.opened == 1);
  CHECK(c.reused == 2);
  CHECK(pool.idleCount() == 1);
  CHECK(connectionsOf(f) == 1);
}

TEST_CASE("HTTP client pool: a stream closed early is not pooled", "[http]") {
  ServerFixture f;
  auto ep = f.startTcp();
  net::io_context ioc;
  ConnectionPool pool;
  runCoroutine(ioc, [&](net::io_context&) -> net::awaitable<void> {
    Request req{"GET", "/stream?n=5", "", "", {}};
    StreamOptions opts;
    opts.pool = &pool;
    auto s = co_await openLineStream(ioc.get_executor(), ep, req, opts);
    REQUIRE(s.ok());
    auto line = co_await (*s)->nextLine(2000ms);
    REQUIRE(line.ok());
    (*s)->close();  // what the executor does on a failure or an interruption
    co_await (*s)->finish(1000ms);
    // A request that never gets its head (the server holds it) is not pooled either.
    Request hold{"GET", "/hold", "", "", {}};
    StreamOptions quick{1000ms, 100ms, 1024, &pool};
    auto h = co_await openLineStream(ioc.get_executor(), ep, hold, quick);
    CHECK_FALSE(h.ok());
  });
  CHECK(pool.idleCount() == 0);
  CHECK(pool.counters().reused == 0);
  CHECK(test::waitFor([&] { return connectionsOf(f) == 0; }, 5s));
}

TEST_CASE("HTTP client pool: an idle connection the server closed is dropped, not used", "[http]") {
  ServerOptions opts;
  opts.idleTimeout = 100ms;  // the server closes a kept-alive connection after 100 ms idle
  ServerFixture f(opts);
  auto ep = f.startTcp();
  net::io_context ioc;
  ConnectionPool pool;
  std::vector<std::string> lines;
  runCoroutine(ioc, [&](net::io_context&) -> net::awaitable<void> { co_await streamOnce(ioc, ep, pool, 1, lines); });
  REQUIRE(pool.idleCount() == 1);
  REQUIRE(test::waitFor([&] { return connectionsOf(f) == 0; }, 5s));  // the server's idle close
  bool reused = true;
  runCoroutine(ioc, [&](net::io_context&) -> net::awaitable<void> { reused = co_await streamOnce(ioc, ep, pool, 1, lines); });
  CHECK_FALSE(reused);
  auto c = pool.counters();
  CHECK(c.stale == 1);
  CHECK(c.opened == 2);
  CHECK(c.resent == 0);
  CHECK(lines.size() == 4);
}

TEST_CASE("HTTP client pool: a request the server drops unanswered on a reused connection goes out again", "[http]") {
  // A raw server: on its first connection it answers one request (kept alive), then reads the
  // second request and closes without a byte, as a server does when its idle timeout races the
  // request; its second connection answers normally.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(lfd, 4) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string answer =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
      "8\r\n{\"i\":0}\n\r\n8\r\n{\"i\":1}\n\r\n0\r\n\r\n";
  auto readRequest = [](int fd) {
    std::string got;
    char buf[4096];
    while (got.find("\r\n\r\n") == std::string::npos) {
      auto n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return false;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  };
  std::atomic<int> answered{0};
  std::thread server([&] {
    int a = ::accept(lfd, nullptr, nullptr);
    if (readRequest(a) && ::write(a, answer.data(), answer.size()) > 0) ++answered;
    readRequest(a);
    ::close(a);  // the second request on this connection: dropped unanswered
    int b = ::accept(lfd, nullptr, nullptr);
    if (readRequest(b) && ::write(b, answer.data(), answer.size()) > 0) ++answered;
    ::close(b);
  });
  auto ep = Endpoint::tcp("127.0.0.1", ntohs(addr.sin_port));
  net::io_context ioc;
  ConnectionPool pool;
  std::vector<std::string> lines;
  runCoroutine(ioc, [&](net::io_context&) -> net::awaitable<void> {
    co_await streamOnce(ioc, ep, pool, 1, lines);
    co_await streamOnce(ioc, ep, pool, 1, lines);
  });
  server.join();
  ::close(lfd);
  CHECK(answered == 2);
  CHECK(lines == std::vector<std::string>{"{\"i\":0}", "{\"i\":1}", "{\"i\":0}", "{\"i\":1}"});
  auto c = pool.counters();
  CHECK(c.reused == 1);
  CHECK(c.resent == 1);
  CHECK(c.opened == 2);
}
