// Hostile clients and who may talk to oasisd (issue #7): a battery of broken, oversized, slow,
// numerous, half-closed and pipelined connections against a real oasisd, then the trust
// boundary: another uid gets 403, the group allowance lets a member in, a client cannot make
// oasisd signal a process of its choosing, the TCP listener stays on loopback without control
// endpoints, and prompt text never reaches the log at info level.
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <regex>
#include <set>

#include "catch.h"
#include "support/fake_ollama.h"
#include "support/oasisd.h"
#include "support/raw_socket.h"

using namespace oasis;
using namespace oasis::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// ------------------------------------------------------------------ a raw socket client
// The library's client only sends well-formed requests; these helpers (and support/raw_socket.h)
// send any bytes.

int statusOf(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.substr(9, 3).c_str());
}

std::string bodyOf(const std::string& response) {
  auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

// Sends bytes on a fresh connection and returns whatever comes back before the daemon closes.
std::string roundTrip(const std::string& socket, std::string_view bytes, std::chrono::milliseconds timeout = 10s) {
  int fd = connectUnix(socket);
  if (fd < 0) return "connect failed";
  writeAll(fd, bytes);
  std::string out = readUntilClosed(fd, timeout);
  ::close(fd);
  return out;
}

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: oasisd\r\n" + extra + "\r\n";
}
std::string post(const std::string& target, const std::string& body, const std::string& extra = "Connection: close\r\n") {
  return "POST " + target + " HTTP/1.1\r\nHost: oasisd\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

// Everything a client can see of the stored trials: the list (with attempts, one by one).
json storedTrials(const Oasisd& d) {
  json all = json::array();
  auto page = d.get("/v1/trials?limit=10000");
  for (auto& t : page["trials"]) all.push_back(d.get("/v1/trials/" + std::to_string(t["id"].get<long long>())));
  return all;
}

void raiseFdLimit(rlim_t want) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= want) return;
  rl.rlim_cur = std::min(want, rl.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &rl);
}

bool isRoot() { return ::geteuid() == 0; }

// ------------------------------------------------------------------ other users

const char* kOtherUser = "oasis-sec-other";
const char* kAllowedGroup = "oasis-sec-group";

// Creates (once) a system user and a group it belongs to as a supplementary member.
bool ensureOtherUser(std::string& why) {
  if (::getgrnam(kAllowedGroup) == nullptr) {
    auto [c, out] = runShell(std::string("groupadd -f ") + kAllowedGroup);
    if (c != 0) {
      why = "groupadd failed: " + out;
      return false;
    }
  }
  if (::getpwnam(kOtherUser) == nullptr) {
    auto [c, out] = runShell(std::string("useradd -r -M -s /usr/sbin/nologin -G ") + kAllowedGroup + " " + kOtherUser);
    if (c != 0 && ::getpwnam(kOtherUser) == nullptr) {
      why = "useradd failed: " + out;
      return false;
    }
  }
  runShell(std::string("usermod -a -G ") + kAllowedGroup + " " + kOtherUser);
  return true;
}

// curl as another user through setpriv; returns the HTTP status, or 0 when it could not even
// connect (the file permissions stopped it).
int curlAs(const std::string& setprivArgs, const std::string& socket, const std::string& target) {
  auto [code, out] = runShell("setpriv " + setprivArgs + " curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket '" +
                              socket + "' 'http://oasisd" + target + "'");
  (void)code;
  return std::atoi(out.c_str());
}

json fastTrials(json extra = json::object()) {
  json c = {{"stall_timeout_s", 2}, {"first_token_timeout_s", 5}, {"request_timeout_s", 20}};
  c.merge_patch(extra);
  return c;
}

}  // namespace

TEST_CASE("Socket battery: hostile requests never crash, hang or change the store", "[oasisd][security][battery]") {
  raiseFdLimit(4096);
  // Short slowloris bounds so the test waits seconds, not minutes; a small body limit so the
  // oversized bodies are cheap to send.
  Oasisd d(fastTrials({{"max_body_bytes", 65536}, {"security", {{"read_timeout_s", 1}, {"idle_timeout_s", 2}}}}));
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  const std::string& sock = d.socket();

  // Some stored data to compare against afterwards.
  auto first = d.request("POST", "/v1/trials?wait=30",
                         json{{"model", "tiny:latest"}, {"request", {{"prompt", "before the battery"}}}, {"key", "k1"}}.dump());
  REQUIRE(first.status == 200);
  const json before = storedTrials(d);
  REQUIRE(before.size() == 1);
  const auto firstId = before[0]["id"].get<long long>();
  const auto countsBefore = d.get("/v1/status")["trials"];

  SECTION("malformed request lines and headers get 400 (or a close), never a crash") {
    std::vector<std::string> garbage = {
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "GET /v1/status FTP/1.1\r\n\r\n",
        std::string("\x00\x01\x02\x03\xff\xfe\r\n\r\n", 10),
        "GET /v1/status HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET /v1/status HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "GET /v1/status HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n",
        "POST /v1/pause HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
        "GET /v1/status HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "G\tE\tT / HTTP/1.1\r\n\r\n",
        "\r\n\r\n\r\n\r\n",
    };
    for (auto& g : garbage) {
      INFO(json(g).dump(-1, ' ', true, json::error_handler_t::replace));
      auto r = roundTrip(sock, g, 5s);
      int st = statusOf(r);
      CHECK((st == 400 || st == 0));
      if (st == 400) CHECK(json::parse(bodyOf(r))["error"]["code"] == "bad_request");
    }
  }

  SECTION("oversized headers get 431, oversized bodies 413, before the body is read") {
    std::string big = get("/v1/status", "X-Big: " + std::string(20000, 'a') + "\r\n");
    auto r = roundTrip(sock, big);
    CHECK(statusOf(r) == 431);
    CHECK(json::parse(bodyOf(r))["error"]["code"] == "header_too_large");
    // Many small headers add up the same way.
    std::string many;
    for (int i = 0; i < 2000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
    CHECK(statusOf(roundTrip(sock, get("/v1/status", many))) == 431);
    // A Content-Length over the limit is refused from the header alone: nothing else is sent.
    r = roundTrip(sock, "POST /v1/trials HTTP/1.1\r\nHost: o\r\nContent-Length: 104857600\r\n\r\n");
    CHECK(statusOf(r) == 413);
    CHECK(json::parse(bodyOf(r))["error"]["code"] == "body_too_large");
    // A chunked body that grows past the limit.
    std::string chunked = "POST /v1/trials HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 20; ++i) chunked += "1000\r\n" + std::string(4096, 'x') + "\r\n";
    chunked += "0\r\n\r\n";
    CHECK(statusOf(roundTrip(sock, chunked)) == 413);
  }

  SECTION("slowloris: idle and trickling connections are closed after the timeouts") {
    // Idle: connected, never sends a byte -> closed after idle_timeout_s (2 s).
    int idle = connectUnix(sock);
    REQUIRE(idle >= 0);
    auto t0 = std::chrono::steady_clock::now();
    bool closed = false;
    readUntilClosed(idle, 10s, &closed);
    auto idleFor = std::chrono::steady_clock::now() - t0;
    ::close(idle);
    CHECK(closed);
    CHECK(idleFor >= 1500ms);
    CHECK(idleFor < 6s);

    // Trickling: a request begun and fed one header byte every 100 ms never completes; the
    // read timeout (1 s) counts from the first byte, so it is cut off after about a second.
    int trickle = connectUnix(sock);
    REQUIRE(trickle >= 0);
    REQUIRE(writeAll(trickle, "GET /v1/status HTTP/1.1\r\nX-Slow: "));
    t0 = std::chrono::steady_clock::now();
    bool cut = false;
    for (int i = 0; i < 100 && !cut; ++i) {
      pollfd p{trickle, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char b[256];
        if (::recv(trickle, b, sizeof b, 0) <= 0) cut = true;
      }
      if (!cut && !writeAll(trickle, "a")) cut = true;
    }
    auto trickledFor = std::chrono::steady_clock::now() - t0;
    ::close(trickle);
    CHECK(cut);
    CHECK(trickledFor < 5s);

    // A body that never finishes arriving: same bound.
    int slowBody = connectUnix(sock);
    REQUIRE(slowBody >= 0);
    REQUIRE(writeAll(slowBody, "POST /v1/pause HTTP/1.1\r\nHost: o\r\nContent-Length: 100\r\n\r\n{\"re"));
    t0 = std::chrono::steady_clock::now();
    readUntilClosed(slowBody, 10s, &closed);
    ::close(slowBody);
    CHECK(closed);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  }

  SECTION("1,000 concurrent connections are held and answered; a new client still gets status") {
    const int n = 1000;
    std::vector<int> fds;
    for (int i = 0; i < n; ++i) {
      int fd = connectUnix(sock);
      REQUIRE(fd >= 0);
      fds.push_back(fd);
    }
    // All open at once: a request on every one of them.
    std::string req = get("/v1/status");
    for (int fd : fds) REQUIRE(writeAll(fd, req));
    int ok = 0;
    for (int fd : fds) {
      std::string carry;
      auto r = readOneMessage(fd, carry, 30s);
      if (r && statusOf(*r) == 200) ++ok;
    }
    CHECK(ok == n);
    // While they are all still connected, a fresh client is served.
    auto s = d.get("/v1/status");
    CHECK(s["run"]["state"] == "running");
    for (int fd : fds) ::close(fd);
  }

  SECTION("half-closed sockets: a request followed by SHUT_WR is answered; a cut request is dropped") {
    int fd = connectUnix(sock);
    REQUIRE(fd >= 0);
    REQUIRE(writeAll(fd, get("/v1/status")));
    ::shutdown(fd, SHUT_WR);
    bool closed = false;
    auto r = readUntilClosed(fd, 10s, &closed);
    ::close(fd);
    CHECK(statusOf(r) == 200);
    CHECK(closed);

    fd = connectUnix(sock);
    REQUIRE(fd >= 0);
    REQUIRE(writeAll(fd, "POST /v1/pause HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"reason\""));
    ::shutdown(fd, SHUT_WR);
    auto t0 = std::chrono::steady_clock::now();
    r = readUntilClosed(fd, 10s, &closed);
    ::close(fd);
    CHECK(closed);
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);  // at EOF, not after a timeout
    CHECK(statusOf(r) != 200);

    // A client that half-closes while a ?wait submission is still being parsed: nothing stored.
    fd = connectUnix(sock);
    REQUIRE(fd >= 0);
    std::string partial = post("/v1/trials", R"({"model":"tiny:latest","request":{"prompt":"half"}})");
    partial.resize(partial.size() - 10);
    REQUIRE(writeAll(fd, partial));
    ::shutdown(fd, SHUT_WR);
    readUntilClosed(fd, 10s, &closed);
    ::close(fd);
    CHECK(closed);
  }

  SECTION("invalid UTF-8 and wrong JSON types get 400 naming the problem") {
    std::string badUtf8 = std::string(R"({"model":"tiny:latest","request":{"prompt":"a)") + "\xff\xfe\xc3" + R"("}})";
    std::vector<std::pair<std::string, std::string>> cases = {
        {"/v1/trials", badUtf8},
        {"/v1/trials/batch", R"({"trials":[)" + badUtf8 + "]}"},
        {"/v1/pause", "{\"reason\":\"\xc0\xaf\"}"},
        {"/v1/trials", R"({"model":5,"request":{"prompt":"x"}})"},
        {"/v1/trials", R"({"model":"tiny:latest","request":"prompt"})"},
        {"/v1/trials", R"({"model":"tiny:latest","request":{"prompt":["x"]}})"},
        {"/v1/trials", R"({"model":"tiny:latest","request":{"prompt":"x"},"max_attempts":"3"})"},
        {"/v1/trials", R"({"model":"tiny:latest","request":{"prompt":"x"},"max_attempts":1e300})"},
        {"/v1/trials", R"({"model":"tiny:latest","request":{"prompt":"x"},"run":{}})"},
        {"/v1/trials", R"({"model":"tiny:latest","request":{"prompt":"x"},"key":7})"},
        {"/v1/trials", R"({"model":"tiny:latest","kind":"chat","request":{"messages":"hi"}})"},
        {"/v1/trials", "[1,2,3]"},
        {"/v1/trials", "null"},
        {"/v1/trials", "\"just a string\""},
        {"/v1/trials", R"({"model":"tiny:latest","request":{"prompt":"x"})"},  // truncated
        {"/v1/trials/batch", R"({"trials":{}})"},
        {"/v1/trials/batch", R"({"trials":[1]})"},
        {"/v1/trials/batch", R"({"trials":[{"model":"tiny:latest","request":{"prompt":"ok"}},{"model":null}]})"},
        {"/v1/pause", R"({"drain":1})"},
        {"/v1/pause", R"({"reason":null})"},
        {"/v1/evict", R"({"model":[]})"},
        {"/v1/kill-runner", R"({"model":{}})"},
        {"/v1/kill-runner", R"({"pid":1})"},
    };
    for (auto& [target, body] : cases) {
      INFO(target << " " << json(body).dump(-1, ' ', true, json::error_handler_t::replace));
      auto r = roundTrip(sock, post(target, body));
      CHECK(statusOf(r) == 400);
      auto j = json::parse(bodyOf(r), nullptr, false);
      REQUIRE(j.is_object());
      CHECK(j["error"]["code"] == "invalid_body");
      CHECK(j["error"]["message"].get<std::string>().size() > 0);
    }
    // The Ollama-compatible surface answers in Ollama's shape.
    for (auto body : {badUtf8, std::string(R"({"model":7,"prompt":"x"})"), std::string("[]")}) {
      auto r = roundTrip(sock, post("/api/generate", body));
      CHECK(statusOf(r) == 400);
      CHECK(json::parse(bodyOf(r), nullptr, false).contains("error"));
    }
  }

  SECTION("path tricks in ids: ../, %2e, %2f, NUL and overlong ids are 404 and touch nothing") {
    std::string id = std::to_string(firstId);
    std::vector<std::string> targets = {
        "/v1/trials/../status",
        "/v1/trials/%2e%2e/status",
        "/v1/trials/%2e%2e%2f" + id,
        "/v1/trials/" + id + "%2f..",
        "/v1/trials/" + id + "/..",
        "/v1/trials/" + id + "%00",
        "/v1/trials/%00" + id,
        "/v1/trials/" + id + "%20",
        "/v1/trials/-" + id,
        "/v1/trials/+" + id,
        "/v1/trials/0x1",
        "/v1/trials/99999999999999999999999",
        "/v1/trials/%ff%fe",
        "/v1/trials/" + std::string(4000, '9'),
        "/v1/../v1/status",
        "/v1/./status",
        "/v1//status",
    };
    for (auto& t : targets) {
      for (std::string method : {"GET", "DELETE"}) {
        INFO(method << " " << t);
        auto r = roundTrip(sock, method + " " + t + " HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n");
        CHECK(statusOf(r) == 404);
        auto j = json::parse(bodyOf(r), nullptr, false);
        CHECK(j["error"]["code"] == "not_found");
      }
    }
  }

  SECTION("pipelined requests are answered in order on one connection") {
    int fd = connectUnix(sock);
    REQUIRE(fd >= 0);
    std::string batch = get("/v1/status") + get("/v1/trials/" + std::to_string(firstId)) + get("/v1/trials/424242") +
                        get("/v1/nope") + get("/v1/status", "Connection: close\r\n");
    REQUIRE(writeAll(fd, batch));
    std::string carry;
    std::vector<int> statuses;
    for (int i = 0; i < 5; ++i) {
      auto r = readOneMessage(fd, carry, 10s);
      if (!r) break;
      statuses.push_back(statusOf(*r));
      if (i == 1) CHECK(json::parse(bodyOf(*r))["id"] == firstId);
    }
    bool closed = false;
    readUntilClosed(fd, 5s, &closed);
    ::close(fd);
    CHECK(statuses == std::vector<int>{200, 200, 404, 404, 200});
    CHECK(closed);
    // A request after a malformed one on the same connection is never run: the connection is
    // closed at the first error.
    auto r = roundTrip(sock, "BROKEN\r\n\r\n" + post("/v1/pause", "{}"));
    CHECK(statusOf(r) == 400);
    CHECK(r.find("HTTP/1.1 200") == std::string::npos);
  }

  // Whatever the section did, the daemon still answers, is not paused, and the store holds
  // exactly what it held before.
  auto s = d.get("/v1/status");
  CHECK(s["run"]["state"] == "running");
  CHECK(s["trials"] == countsBefore);
  CHECK(storedTrials(d) == before);
  CHECK(d.log().find("threw") == std::string::npos);  // no handler died on an exception
}

TEST_CASE("Another uid gets 403, and the allowed group gets in", "[oasisd][security][uid]") {
  if (!isRoot()) {
    WARN("SKIPPED: needs root to create a user and run a client as it (setpriv)");
    return;
  }
  std::string why;
  if (!ensureOtherUser(why)) {
    WARN("SKIPPED: " << why);
    return;
  }
  if (runShell("command -v curl").first != 0) {
    WARN("SKIPPED: curl is not installed");
    return;
  }
  const std::string asOther = std::string("--reuid=") + kOtherUser + " --regid=" + kOtherUser + " --clear-groups";
  const std::string asMember = std::string("--reuid=") + kOtherUser + " --regid=" + kOtherUser + " --init-groups";
  const std::string asPrimary = std::string("--reuid=") + kOtherUser + " --regid=" + kAllowedGroup + " --clear-groups";

  SECTION("without allow_group: even with the file opened up, the peer check refuses another uid") {
    Oasisd d;
    // The directory and the socket file are 0700/0600: another user cannot even connect.
    struct stat st {};
    REQUIRE(::stat(d.socket().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(curlAs(asOther, d.socket(), "/v1/status") == 0);
    // Open the file system path wide to reach the second line of defence: SO_PEERCRED.
    REQUIRE(::chmod(d.dir().path().c_str(), 0711) == 0);
    REQUIRE(::chmod(d.socket().c_str(), 0666) == 0);
    CHECK(curlAs(asOther, d.socket(), "/v1/status") == 403);
    CHECK(curlAs(asMember, d.socket(), "/v1/status") == 403);
    CHECK(curlAs(asOther, d.socket(), "/api/version") == 403);
    // Root and the daemon's own uid (both root here) are let in.
    CHECK(d.request("GET", "/v1/status").status == 200);
  }

  SECTION("with allow_group (by name): members get in, others still do not") {
    Oasisd d(json{{"security", {{"allow_group", kAllowedGroup}}}});
    struct group* gr = ::getgrnam(kAllowedGroup);
    REQUIRE(gr != nullptr);
    gid_t gid = gr->gr_gid;
    // The daemon gave the socket to the group, 0660.
    struct stat st {};
    REQUIRE(::stat(d.socket().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0660);
    CHECK(st.st_gid == gid);
    // The directory already existed (the test's own, 0700): oasisd leaves it alone. An admin
    // opens it to the group the way the daemon does for a directory it creates: 0710.
    REQUIRE(::stat(d.dir().path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    const std::string sockDir = d.dir().path();
    REQUIRE(::chown(sockDir.c_str(), static_cast<uid_t>(-1), gid) == 0);
    REQUIRE(::chmod(sockDir.c_str(), 0710) == 0);
    CHECK(curlAs(asMember, d.socket(), "/v1/status") == 200);   // supplementary group
    CHECK(curlAs(asPrimary, d.socket(), "/v1/status") == 200);  // primary group
    CHECK(curlAs(asOther, d.socket(), "/v1/status") == 0);      // not a member: no access to the file
    // And with the file opened up, the peer check still refuses the non-member.
    REQUIRE(::chmod(d.socket().c_str(), 0666) == 0);
    REQUIRE(::chmod(sockDir.c_str(), 0711) == 0);
    CHECK(curlAs(asOther, d.socket(), "/v1/status") == 403);
  }

  SECTION("an unknown group is a start-up error, not an open socket") {
    TempDir tmp;
    std::ofstream(tmp.file("c.json")) << R"({"security": {"allow_group": "no-such-group-oasis"}})";
    auto [code, out] = runShell(std::string(OASISD_BIN) + " --config " + tmp.file("c.json") + " --socket " +
                                tmp.file("s.sock") + " --db " + tmp.file("d.db"));
    CHECK(code == 3);
    CHECK(out.find("no group named") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(tmp.file("s.sock")));
  }
}

TEST_CASE("Socket file: 0600 in 0700, a second daemon on a live socket refuses to start, a stale one is replaced",
          "[oasisd][security][socket]") {
  std::string path;
  TempDir tmp;
  {
    Oasisd d;
    path = d.socket();
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    // A second daemon on the same socket: refused before it launches anything.
    auto [code, out] = runShell(std::string(OASISD_BIN) + " --socket '" + path + "' --db '" + tmp.file("second.db") + "'");
    CHECK(code == 3);
    CHECK(out.find("already listening") != std::string::npos);
    CHECK(d.get("/v1/status")["pid"] == d.pid());  // the first one still answers
    // A crash leaves the socket file behind.
    int serve = d.get("/v1/status")["server"]["pid"].is_number() ? d.get("/v1/status")["server"]["pid"].get<int>() : -1;
    ::kill(d.pid(), SIGKILL);
    if (serve > 0) CHECK(waitFor([&] { return !processAlive(serve); }, 15s));
    // Moved out of the helper's directory, which is removed with it.
    path = tmp.file("left.sock");
    REQUIRE(::rename(d.socket().c_str(), path.c_str()) == 0);
  }
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  // The next daemon replaces the stale socket and serves on it (attach mode to a closed port:
  // nothing to launch).
  std::ofstream(tmp.file("c.json")) << json{{"ollama", {{"mode", "attach"}, {"url", "http://127.0.0.1:" + std::to_string(freePort())}}}}.dump();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDERR_FILENO);
    ::dup2(null, STDOUT_FILENO);
    std::string cfg = tmp.file("c.json"), db = tmp.file("third.db");
    ::execl(OASISD_BIN, OASISD_BIN, "--config", cfg.c_str(), "--socket", path.c_str(), "--db", db.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = waitFor([&] {
    auto r = http::fetch(http::Endpoint::unixSocket(path), {"GET", "/v1/status", "", "", {}}, 500ms);
    return r.ok() && r->status == 200 && json::parse(r->body, nullptr, false)["pid"] == pid;
  }, 30s, 50ms);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(up);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
}

TEST_CASE("A client cannot make oasisd signal a process of its choosing", "[oasisd][security][signal]") {
  Oasisd d(fastTrials());
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  // A decoy that looks like a runner of the loaded model (its argv has --model tiny:latest)
  // but is not a child of the supervised serve.
  pid_t decoy = ::fork();
  REQUIRE(decoy >= 0);
  if (decoy == 0) {
    ::execl("/bin/sh", "sh", "-c", "while :; do sleep 1; done", "runner", "--model", "tiny:latest", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{decoy};
  REQUIRE(waitFor([&] { return argAfter(processArgs(decoy), "--model") == "tiny:latest"; }, 5s));

  auto t = d.request("POST", "/v1/trials?wait=30", json{{"model", "tiny:latest"}, {"request", {{"prompt", "x"}}}}.dump());
  REQUIRE(t.status == 200);
  REQUIRE(d.waitForStatus([](const json& s) {
    return !s["models"].empty() && s["models"][0]["runner"].is_object();
  }, 10s));
  int runner = d.get("/v1/status")["models"][0]["runner"]["pid"].get<int>();
  REQUIRE(runner != decoy);

  // A pid in the body is refused outright, whatever else is there.
  for (auto body : {json{{"pid", decoy}}, json{{"model", "tiny:latest"}, {"pid", decoy}}, json{{"runner", {{"pid", decoy}}}}}) {
    auto r = d.request("POST", "/v1/kill-runner", body.dump());
    CHECK(r.status == 400);
    CHECK(r.body.find("unknown field") != std::string::npos);
    CHECK(d.request("POST", "/v1/evict", body.dump()).status == 400);
  }
  // A model name that is really a pid, or names nothing loaded, kills nothing.
  d.post("/v1/kill-runner", {{"model", std::to_string(decoy)}});
  d.post("/v1/kill-runner", {{"model", "sh"}});
  CHECK(processAlive(decoy));
  CHECK(processAlive(runner));

  // The real kill goes to the verified runner only: the decoy with the same --model survives.
  d.post("/v1/kill-runner", {{"model", "tiny:latest"}});
  REQUIRE(waitFor([&] { return !processAlive(runner); }, 10s));
  CHECK(holdsFor([&] { return processAlive(decoy); }, 500ms));
  // PID reuse (a recorded runner pid now naming another process) is refused by killVerified:
  // see "linux: PID reuse is caught, the new process survives" in the unit tests.
}

TEST_CASE("TCP listener: loopback only, no control endpoints unless enabled", "[oasisd][security][tcp]") {
  // Config refuses anything but loopback.
  TempDir tmp;
  for (std::string addr : {"0.0.0.0", "192.168.1.10", "::", "example.com"}) {
    std::ofstream(tmp.file("c.json")) << json{{"tcp_listener", {{"enabled", true}, {"address", addr}}}}.dump();
    auto [code, out] = runShell(std::string(OASISD_BIN) + " --check-config --config " + tmp.file("c.json"));
    INFO(addr << ": " << out);
    CHECK(code == 2);
    CHECK(out.find("tcp_listener.address") != std::string::npos);
  }

  auto tcpPort = [](const Oasisd& d) {
    std::smatch m;
    std::string log = d.log();
    static const std::regex re("TCP listener on 127\\.0\\.0\\.1:([0-9]+)");
    REQUIRE(std::regex_search(log, m, re));
    return static_cast<uint16_t>(std::stoi(m[1]));
  };
  // Where the kernel says the listener is bound: /proc/net/tcp, local address in hex.
  auto boundLoopbackOnly = [](uint16_t port) {
    std::ifstream in("/proc/net/tcp");
    std::string line;
    char want[8];
    std::snprintf(want, sizeof want, ":%04X", port);
    int listeners = 0, loopback = 0;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string slot, local, remote, state;
      ls >> slot >> local >> remote >> state;
      if (state != "0A" || local.size() < 13 || local.substr(8) != want) continue;
      ++listeners;
      if (local.substr(0, 8) == "0100007F") ++loopback;
    }
    return listeners == 1 && loopback == 1;
  };

  SECTION("control: false (the default)") {
    Oasisd d(json{{"tcp_listener", {{"enabled", true}, {"port", 0}}}});
    REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));
    auto port = tcpPort(d);
    CHECK(boundLoopbackOnly(port));
    auto ep = http::Endpoint::tcp("127.0.0.1", port);
    for (std::string target : {"/v1/status", "/v1/trials", "/v1/events", "/metrics", "/v1/trials/1"}) {
      auto r = http::fetch(ep, {"GET", target, "", "", {}}, 5s);
      REQUIRE(r.ok());
      INFO(target);
      CHECK(r->status == 403);
    }
    for (std::string target : {"/v1/pause", "/v1/kill-runner", "/v1/trials"}) {
      auto r = http::fetch(ep, {"POST", target, "{}", "application/json", {}}, 5s);
      REQUIRE(r.ok());
      CHECK(r->status == 403);
    }
    CHECK(d.get("/v1/status")["run"]["state"] == "running");  // the POST /v1/pause did nothing
    auto v = http::fetch(ep, {"GET", "/api/version", "", "", {}}, 5s);
    REQUIRE(v.ok());
    CHECK(v->status == 200);
    auto g = http::fetch(ep, {"POST", "/api/generate", R"({"model":"tiny:latest","prompt":"hi","stream":false})", "application/json", {}}, 30s);
    REQUIRE(g.ok());
    CHECK(g->status == 200);
  }

  SECTION("control: true") {
    Oasisd d(json{{"tcp_listener", {{"enabled", true}, {"port", 0}, {"control", true}}}});
    auto port = tcpPort(d);
    CHECK(boundLoopbackOnly(port));
    auto r = http::fetch(http::Endpoint::tcp("127.0.0.1", port), {"GET", "/v1/status", "", "", {}}, 5s);
    REQUIRE(r.ok());
    CHECK(r->status == 200);
  }
}

TEST_CASE("No prompt text reaches the log at info level", "[oasisd][security][log]") {
  std::mt19937_64 rng(std::random_device{}());
  const std::string secret = "OASIS-SECRET-" + std::to_string(rng());
  Oasisd d(fastTrials({{"log", {{"level", "info"}}}, {"stall_timeout_s", 1}, {"max_attempts", 2}}));
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  // A success, an unknown model (Ollama's error is logged), a chat, the compatible surface, a
  // rejected body, and last a stall (the warn path that logs each failed attempt).
  auto ok = d.request("POST", "/v1/trials?wait=30", json{{"model", "tiny:latest"}, {"request", {{"prompt", secret}}}}.dump());
  CHECK(ok.status == 200);
  auto missing = d.request("POST", "/v1/trials?wait=30", json{{"model", "nope:latest"}, {"request", {{"prompt", secret}}}}.dump());
  CHECK(json::parse(missing.body)["state"] == "failed");
  json messages = json::array();
  messages.push_back({{"role", "user"}, {"content", secret}});
  auto chat = d.request("POST", "/v1/trials?wait=30",
                        json{{"model", "tiny:latest"}, {"kind", "chat"}, {"request", {{"messages", messages}}}}.dump());
  CHECK(chat.status == 200);
  auto compat = d.request("POST", "/api/generate", json{{"model", "tiny:latest"}, {"prompt", secret}, {"stream", false}}.dump());
  CHECK(compat.status == 200);
  CHECK(d.request("POST", "/v1/trials", json{{"model", "tiny:latest"}, {"request", {{"prompt", secret}}}, {"bogus", secret}}.dump()).status == 400);
  auto r = http::fetch(d.ollama(), {"POST", "/_fake/faults", R"({"hang_after_tokens":1,"hang_count":1})", "application/json", {}}, 5s);
  REQUIRE(r.ok());
  auto stalled = d.request("POST", "/v1/trials?wait=30", json{{"model", "tiny:latest"}, {"request", {{"prompt", secret + "-stall"}}}}.dump());
  CHECK(json::parse(stalled.body)["attempts"].size() >= 1);
  REQUIRE(waitFor([&] { return d.log().find("stalled") != std::string::npos; }, 10s));  // the log did record the attempt...
  d.stop();
  CHECK(d.log().find(secret) == std::string::npos);  // ...but never what was asked
}
