// The HTTP server and client against each other, over TCP and a Unix socket, in one process:
// the server runs on its own io_context thread, the blocking client on the test thread.
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
