// Faults around oasisd (issue #7): an Ollama that misbehaves on the wire, oasisd itself killed
// -9 again and again during a long run, SIGTERM under load, SIGHUP with a broken config, and a
// database on a full disk. Every trial must end exactly once and no slot or process may leak.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "catch.h"
#include "support/fake_ollama.h"
#include "support/oasisd.h"
#include "support/raw_socket.h"

using namespace oasis;
using namespace oasis::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// ------------------------------------------------------------------ a scripted Ollama
// A tiny TCP server standing in for Ollama: HEAD /, /api/version and /api/ps answer like a
// healthy server, and each generate request gets the next scripted misbehaviour.
class ScriptedOllama {
 public:
  enum class Reply { Ok, Truncated, HugeLine, NotJson, ResetMidStream, Silent };

  ScriptedOllama() {
    listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listenFd_, 64) != 0)
      throw std::runtime_error("scripted ollama: bind/listen failed");
    socklen_t len = sizeof addr;
    ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~ScriptedOllama() {
    stopping_ = true;
    ::shutdown(listenFd_, SHUT_RDWR);
    acceptor_.join();
    ::close(listenFd_);
    std::vector<std::thread> conns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
      conns.swap(conns_);
    }
    for (auto& t : conns) t.join();
  }

  uint16_t port() const { return port_; }
  void push(Reply r) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back(r);
  }
  int generates() const { return generates_.load(); }

 private:
  void acceptLoop() {
    for (;;) {
      int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping_) return;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      open_.insert(fd);
      conns_.emplace_back([this, fd] {
        serve(fd);
        std::lock_guard<std::mutex> l(mu_);
        open_.erase(fd);
        ::close(fd);
      });
    }
  }

  static std::string chunk(std::string_view s) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", s.size());
    return std::string(size) + std::string(s) + "\r\n";
  }
  static std::string token(const std::string& t) {
    return json{{"model", "scripted:latest"}, {"created_at", "2026-01-01T00:00:00Z"}, {"response", t}, {"done", false}}.dump() + "\n";
  }
  static std::string finalLine() {
    return json{{"model", "scripted:latest"}, {"created_at", "2026-01-01T00:00:00Z"}, {"response", ""}, {"done", true},
                {"done_reason", "stop"}, {"total_duration", 3000000}, {"load_duration", 1000}, {"prompt_eval_count", 1},
                {"eval_count", 3}, {"eval_duration", 2000000}}
               .dump() + "\n";
  }
  static constexpr const char* kStreamHead =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

  // One request per connection (Connection: close), like a client that never reuses. oasisd
  // writes a request as soon as it connects: the bound only keeps a broken one from hanging here.
  void serve(int fd) {
    std::string carry;
    auto request = readOneMessage(fd, carry, 60s);
    if (!request) return;
    std::size_t headEnd = request->find("\r\n\r\n");
    std::string head = request->substr(0, headEnd);
    std::string body = request->substr(headEnd + 4);
    auto reply = [&](const std::string& type, const std::string& text) {
      writeAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(text.size()) +
                       "\r\nConnection: close\r\n\r\n" + (head.rfind("HEAD", 0) == 0 ? std::string() : text));
    };
    if (head.rfind("HEAD / ", 0) == 0 || head.rfind("GET / ", 0) == 0) return reply("text/plain", "Ollama is running");
    if (head.rfind("GET /api/version", 0) == 0) return reply("application/json", R"({"version":"0.12.0"})");
    if (head.rfind("GET /api/ps", 0) == 0) return reply("application/json", R"({"models":[]})");
    auto j = json::parse(body, nullptr, false);
    bool generation = j.is_object() && (j.contains("prompt") || j.contains("messages"));
    if (!generation) return reply("application/json", R"({"model":"scripted:latest","done":true,"done_reason":"unload"})");

    ++generates_;
    Reply r = Reply::Ok;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!script_.empty()) {
        r = script_.front();
        script_.pop_front();
      }
    }
    switch (r) {
      case Reply::Ok:
        writeAll(fd, std::string(kStreamHead) + chunk(token("a")) + chunk(token("b")) + chunk(token("c")) +
                         chunk(finalLine()) + "0\r\n\r\n");
        return;
      case Reply::Truncated:
        // Two tokens, then half a line, then the connection just ends mid-chunk.
        writeAll(fd, std::string(kStreamHead) + chunk(token("a")) + chunk(token("b")) + "40\r\n{\"model\":\"scri");
        return;
      case Reply::HugeLine: {
        // One token, then a 12 MiB line (inside a JSON string) that never ends in time.
        writeAll(fd, std::string(kStreamHead) + chunk(token("a")) + chunk("{\"model\":\"scripted:latest\",\"response\":\""));
        std::string block(1 << 20, 'x');
        std::string c = chunk(block);
        for (int i = 0; i < 12; ++i)
          if (!writeAll(fd, c)) return;  // oasisd gave up on the line: it closed the connection
        writeAll(fd, chunk("\",\"done\":false}\n") + chunk(finalLine()) + "0\r\n\r\n");
        return;
      }
      case Reply::NotJson: {
        std::string html = "<html><body>502 Bad Gateway</body></html>\n";
        writeAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: " + std::to_string(html.size()) +
                         "\r\nConnection: close\r\n\r\n" + html);
        return;
      }
      case Reply::ResetMidStream: {
        writeAll(fd, std::string(kStreamHead) + chunk(token("a")) + chunk(token("b")));
        linger l{1, 0};  // close with RST, not FIN
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        return;
      }
      case Reply::Silent:
        // Accepted, request read, never a byte back: wait until oasisd hangs up (or we stop).
        while (!stopping_) {
          pollfd p{fd, POLLIN, 0};
          char buf[65536];
          if (::poll(&p, 1, 200) > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0) return;
        }
        return;
    }
  }

  int listenFd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> generates_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::deque<Reply> script_;
  std::set<int> open_;
  std::vector<std::thread> conns_;
};

void faults(const Oasisd& d, const json& f) {
  auto r = http::fetch(d.ollama(), {"POST", "/_fake/faults", f.dump(), "application/json", {}}, 5s);
  CHECK((r.ok() && r->status == 200));
}

bool allEnded(const Oasisd& d, std::int64_t total) {
  auto s = d.get("/v1/status")["trials"];
  return s["succeeded"].get<std::int64_t>() + s["failed"].get<std::int64_t>() + s["cancelled"].get<std::int64_t>() == total;
}

// A read-only look at oasisd's database (WAL: readers never block the writer).
class Db {
 public:
  explicit Db(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~Db() { sqlite3_close(db_); }
  std::int64_t scalar(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("prepare: ") + sqlite3_errmsg(db_) + ": " + sql);
    std::int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Processes whose command line mentions `needle` (a model name unique to one test).
std::vector<pid_t> processesMentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (pid_t p : allPids()) {
    if (p == ::getpid() || !processAlive(p)) continue;
    for (auto& a : processArgs(p))
      if (a.find(needle) != std::string::npos) {
        out.push_back(p);
        break;
      }
  }
  return out;
}

}  // namespace

TEST_CASE("Ollama misbehaving on the wire: each fault is a recorded attempt outcome, and the slot frees",
          "[oasisd][faults][wire]") {
  ScriptedOllama so;
  Oasisd d({{"ollama", {{"mode", "attach"}, {"url", "http://127.0.0.1:" + std::to_string(so.port())}}},
            {"max_concurrency", 1},
            {"first_token_timeout_s", 1},
            {"stall_timeout_s", 5},  // the 12 MiB line must be refused for its size, not for time
            {"request_timeout_s", 10},
            {"ollama_evict_threshold", 50},
            {"retry", {{"initial_backoff_s", 0.05}, {"max_backoff_s", 0.1}}}});
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));

  struct Case {
    ScriptedOllama::Reply reply;
    std::string outcome;
    std::string errorHas;
  };
  std::vector<Case> cases = {
      {ScriptedOllama::Reply::Truncated, "connection_error", ""},
      {ScriptedOllama::Reply::HugeLine, "connection_error", "longer than"},
      {ScriptedOllama::Reply::NotJson, "http_error", "not a JSON object"},
      {ScriptedOllama::Reply::ResetMidStream, "connection_error", ""},
      {ScriptedOllama::Reply::Silent, "timeout", "first_token_timeout_s"},
  };
  for (auto& c : cases) {
    INFO("expected " << c.outcome);
    so.push(c.reply);
    auto t = submitWait(d, {{"model", "scripted:latest"}, {"request", {{"prompt", "x"}}}, {"max_attempts", 1}}, 30);
    CHECK(t["state"] == "failed");
    REQUIRE(t["attempts"].size() == 1);
    CHECK(t["attempts"][0]["outcome"] == c.outcome);
    CHECK(t["attempts"][0]["ended_at"].is_string());
    if (!c.errorHas.empty()) CHECK(t["attempts"][0]["error"].get<std::string>().find(c.errorHas) != std::string::npos);
    // The one slot is free again: nothing is left running.
    CHECK(d.get("/v1/status")["trials"]["running"] == 0);
  }
  // With retries, each fault is followed by a success on the next attempt.
  for (auto& c : cases) so.push(c.reply), so.push(ScriptedOllama::Reply::Ok);
  for (auto& c : cases) {
    INFO("retried after " << c.outcome);
    auto t = submitWait(d, {{"model", "scripted:latest"}, {"request", {{"prompt", "y"}}}, {"max_attempts", 2}}, 30);
    CHECK(t["state"] == "succeeded");
    REQUIRE(t["attempts"].size() == 2);
    CHECK(t["attempts"][0]["outcome"] == c.outcome);
    CHECK(t["attempts"][1]["outcome"] == "ok");
    CHECK(t["response"]["response"] == "abc");
  }
  auto ok = submitWait(d, {{"model", "scripted:latest"}, {"request", {{"prompt", "z"}}}}, 30);
  CHECK(ok["state"] == "succeeded");
  CHECK(so.generates() == 2 * static_cast<int>(cases.size()) * 1 + static_cast<int>(cases.size()) + 1);
  auto s = d.get("/v1/status");
  CHECK(s["trials"]["running"] == 0);
  CHECK(s["trials"]["queued"] == 0);
  CHECK(d.log().find("attempt failed unexpectedly") == std::string::npos);
}

TEST_CASE("kill -9 oasisd 20 times during a 2,000-trial run: every trial ends exactly once, no runner is orphaned",
          "[oasisd][faults][crash][long]") {
  TempDir keep;
  const std::string db = keep.file("kill9.db");
  // A model only this test uses, so leftover runners are found by name and nobody else's are.
  const std::string model = "kill9-" + std::to_string(::getpid()) + ":latest";
  std::ofstream(keep.file("models.json"))
      << json{{"models", {{{"name", model}, {"load_ms", 20}, {"tokens_per_s", 4000}, {"num_predict", 4}, {"size", 1000000}}}}}.dump();
  json cfg = {{"max_concurrency", 8},
              {"max_attempts", 100},
              {"stall_timeout_s", 1},
              {"first_token_timeout_s", 3},
              {"request_timeout_s", 20},
              {"ollama_evict_threshold", 2},
              {"stopping_grace_s", 1},
              {"log", {{"level", "info"}}},
              {"retry", {{"initial_backoff_s", 0.02}, {"max_backoff_s", 0.1}}},
              {"ollama", {{"env", {{"FAKE_OLLAMA_MODELS", keep.file("models.json")}, {"OLLAMA_NUM_PARALLEL", "8"}}}}}};
  const std::int64_t n = 2000;
  const int kills = 20;
  std::mt19937 rng(20261204);
  int killedMidAttempt = 0;
  for (int round = 0; round < kills; ++round) {
    Oasisd d(cfg, {"--db", db});
    if (round == 0) {
      REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
      json batch = {{"trials", json::array()}};
      for (std::int64_t i = 0; i < n; ++i)
        batch["trials"].push_back({{"model", model}, {"request", {{"prompt", "p" + std::to_string(i)}}}, {"run", "kill9"}});
      auto ids = d.post("/v1/trials/batch", batch)["ids"];
      REQUIRE(ids.size() == static_cast<std::size_t>(n));
    }
    // Faults from the switchboard now and then: crashes mid-stream and a hang.
    if (round % 5 == 2 || round == 7)
      REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
    if (round % 5 == 2) faults(d, {{"runner_crash_after_tokens", 2}});
    if (round == 7) faults(d, {{"hang_after_tokens", 1}, {"hang_count", 1}});
    // A random moment: right after start-up, or after a random amount of progress.
    auto start = d.get("/v1/status")["trials"]["succeeded"].get<std::int64_t>();
    if (round % 4 == 3) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 300)(rng)));
    } else {
      auto want = std::uniform_int_distribution<std::int64_t>(1, n / kills)(rng);
      waitFor([&] { return d.get("/v1/status")["trials"]["succeeded"].get<std::int64_t>() >= std::min(n, start + want); }, 20s, 50ms);
    }
    auto status = d.get("/v1/status");
    if (status["trials"]["running"].get<int>() > 0) ++killedMidAttempt;
    int serve = status["server"]["pid"].is_number() ? status["server"]["pid"].get<int>() : -1;
    ::kill(d.pid(), SIGKILL);
    // serve has a parent-death signal: it stops and unloads its runners by itself.
    if (serve > 0) CHECK(waitFor([&] { return !processAlive(serve); }, 15s));
  }
  {
    Oasisd d(cfg, {"--db", db});
    REQUIRE(waitFor([&] { return allEnded(d, n); }, 180s, 250ms));
    CHECK(d.stop() == 0);
  }
  // No runner of this test's model is left anywhere.
  CHECK(waitFor([&] { return processesMentioning(model).empty(); }, 10s));

  Db store(db);
  CHECK(store.scalar("SELECT count(*) FROM trials") == n);  // none lost, none duplicated
  CHECK(store.scalar("SELECT count(*) FROM trials WHERE state='succeeded' AND finished_at IS NOT NULL AND response IS NOT NULL") == n);
  // Exactly one successful attempt per trial.
  CHECK(store.scalar("SELECT count(*) FROM (SELECT trial_id FROM attempts WHERE outcome='ok' GROUP BY trial_id HAVING count(*) = 1)") == n);
  CHECK(store.scalar("SELECT count(*) FROM attempts WHERE outcome='ok'") == n);
  CHECK(store.scalar("SELECT count(*) FROM attempts WHERE outcome='running' OR ended_at IS NULL") == 0);
  // Attempts cut by a kill were recorded as interrupted on the next start, and did not count.
  auto interrupted = store.scalar("SELECT count(*) FROM attempts WHERE outcome='interrupted'");
  CHECK(interrupted >= 1);
  CHECK(store.scalar("SELECT count(*) FROM attempts WHERE outcome='interrupted' AND counts=1") == 0);
  CHECK(killedMidAttempt >= kills / 2);
  WARN("kill -9 rounds: " << kills << ", with attempts in flight: " << killedMidAttempt << ", interrupted attempts: "
                          << interrupted << ", attempts in all: " << store.scalar("SELECT count(*) FROM attempts"));
}

TEST_CASE("SIGTERM under load: in-flight attempts are requeued within the shutdown timeout, and after restart every trial ends once",
          "[oasisd][faults][sigterm]") {
  TempDir keep;
  const std::string db = keep.file("term.db");
  json cfg = {{"max_concurrency", 4},
              {"stall_timeout_s", 2},
              {"shutdown_timeout_s", 5},
              {"retry", {{"initial_backoff_s", 0.05}, {"max_backoff_s", 0.2}}},
              {"ollama", {{"env", {{"OLLAMA_NUM_PARALLEL", "4"}}}}}};
  const int n = 40;
  {
    Oasisd d(cfg, {"--db", db});
    REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
    // Slow generation (about 1.6 s a trial) so that SIGTERM lands on attempts mid-stream.
    faults(d, {{"slow_factor", 20.0}, {"slow_only_with_flash_attention", false}});
    json batch = {{"trials", json::array()}};
    for (int i = 0; i < n; ++i) batch["trials"].push_back({{"model", "tiny:latest"}, {"request", {{"prompt", "x"}}}});
    REQUIRE(d.post("/v1/trials/batch", batch)["ids"].size() == static_cast<std::size_t>(n));
    REQUIRE(d.waitForStatus([](const json& s) { return s["trials"]["running"].get<int>() == 4; }, 30s));
    int serve = d.get("/v1/status")["server"]["pid"].get<int>();
    auto t0 = std::chrono::steady_clock::now();
    CHECK(d.stop(10s) == 0);  // exit 0, without the helper's SIGKILL fallback
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took < 5s);  // shutdown_timeout_s
    CHECK_FALSE(processAlive(serve));
    CHECK(runnerChildren(serve).empty());
    Db store(db);
    // Nothing was left `running`: the in-flight attempts were recorded as interrupted (not
    // counted) and their trials queued again, before the process exited.
    CHECK(store.scalar("SELECT count(*) FROM attempts WHERE outcome='running'") == 0);
    CHECK(store.scalar("SELECT count(*) FROM trials WHERE state='running'") == 0);
    CHECK(store.scalar("SELECT count(*) FROM attempts WHERE outcome='interrupted' AND counts=0") >= 4);
    auto log = d.log();
    CHECK(log.find("oasisd stopped") != std::string::npos);
  }
  Oasisd d2(cfg, {"--db", db});
  REQUIRE(waitFor([&] { return allEnded(d2, n); }, 120s, 200ms));
  CHECK(d2.get("/v1/status")["trials"]["succeeded"] == n);
  d2.stop();
  Db store(db);
  CHECK(store.scalar("SELECT count(*) FROM attempts WHERE outcome='ok'") == n);
  CHECK(store.scalar("SELECT count(*) FROM (SELECT trial_id FROM attempts WHERE outcome='ok' GROUP BY trial_id HAVING count(*) = 1)") == n);
}

TEST_CASE("SIGHUP with an invalid config keeps the running one and says why, and a valid one applies", "[oasisd][faults][sighup]") {
  Oasisd d(json{{"max_attempts", 3}});
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  const std::string path = d.dir().file("oasisd.json");
  std::string good;
  {
    std::ifstream in(path);
    good.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // Broken in two ways: a typo'd key and a negative timeout.
  auto broken = json::parse(good);
  broken["stall_timout_s"] = 1;
  broken["request_timeout_s"] = -1;
  std::ofstream(path) << broken.dump(2);
  ::kill(d.pid(), SIGHUP);
  REQUIRE(d.waitForEvent("config_rejected", 10s));
  auto ev = d.eventsOfKind("config_rejected").back();
  auto problems = ev["detail"]["problems"].get<std::string>();
  CHECK(problems.find("stall_timout_s") != std::string::npos);
  CHECK(problems.find("request_timeout_s") != std::string::npos);
  CHECK(d.log().find("keeping the running config") != std::string::npos);
  CHECK(d.get("/v1/status")["run"]["state"] == "running");
  // The old config is still in force: trials run with it.
  auto r = d.request("POST", "/v1/trials?wait=30", json{{"model", "tiny:latest"}, {"request", {{"prompt", "x"}}}}.dump());
  CHECK(json::parse(r.body)["state"] == "succeeded");
  // Not JSON at all: same.
  std::ofstream(path) << "{ this is not json";
  ::kill(d.pid(), SIGHUP);
  REQUIRE(waitFor([&] { return d.eventsOfKind("config_rejected").size() == 2; }, 10s));
  // A valid file is applied.
  std::ofstream(path) << good;
  ::kill(d.pid(), SIGHUP);
  REQUIRE(d.waitForEvent("config_reloaded", 10s));
  CHECK(d.stop() == 0);
}

TEST_CASE("Database on a full disk: new trials get 503, supervision goes on, data intact, recovery when space returns",
          "[oasisd][faults][disk]") {
  if (::geteuid() != 0) {
    WARN("SKIPPED: needs root to mount a small tmpfs for the database");
    return;
  }
  TempDir mnt;
  auto [code, out] = runShell("mount -t tmpfs -o size=4m oasis-sec-full '" + mnt.path() + "'");
  if (code != 0) {
    WARN("SKIPPED: cannot mount a tmpfs here: " << out);
    return;
  }
  struct Unmount {
    std::string path;
    ~Unmount() { runShell("umount -l '" + path + "'"); }
  } unmount{mnt.path()};
  const std::string db = mnt.file("oasisd.db");
  Oasisd d(json{{"memory", {{"interval_s", 5}}}}, {"--db", db});
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  auto first = d.request("POST", "/v1/trials?wait=30", json{{"model", "tiny:latest"}, {"request", {{"prompt", "kept"}}}}.dump());
  REQUIRE(json::parse(first.body)["state"] == "succeeded");
  const auto firstRecord = d.get("/v1/trials/1");

  // An attempt in flight when the disk fills up (slow: 16 tokens at 4 tokens/s).
  faults(d, {{"slow_factor", 50.0}, {"slow_only_with_flash_attention", false}});
  auto inflight = d.post("/v1/trials", {{"model", "tiny:latest"}, {"request", {{"prompt", "in flight"}}}});
  const auto inflightId = inflight["id"].get<long long>();
  REQUIRE(d.waitForStatus([](const json& st) { return st["trials"]["running"] == 1; }, 10s));

  // Fill the file system to the last block.
  const std::string filler = mnt.file("filler");
  runShell("dd if=/dev/zero of='" + filler + "' bs=64k 2>/dev/null; sync");
  struct statvfs vfs {};
  REQUIRE(::statvfs(mnt.path().c_str(), &vfs) == 0);
  REQUIRE(vfs.f_bavail == 0);

  // New trials are refused with a clear 503; a big batch cannot squeeze into WAL slack.
  json batch = {{"trials", json::array()}};
  for (int i = 0; i < 400; ++i)
    batch["trials"].push_back({{"model", "tiny:latest"}, {"request", {{"prompt", std::string(512, 'p') + std::to_string(i)}}}});
  auto refused = d.request("POST", "/v1/trials/batch", batch.dump());
  CHECK(refused.status == 503);
  auto err = json::parse(refused.body, nullptr, false);
  CHECK(err["error"]["code"] == "storage_unavailable");
  CHECK(err["error"]["message"].get<std::string>().find("full") != std::string::npos);
  // Still supervising: status answers, the server is up, the old trial reads back unchanged.
  auto s = d.get("/v1/status");
  CHECK(s["server"]["up"] == true);
  CHECK(d.get("/v1/trials/1") == firstRecord);
  CHECK(d.get("/v1/status")["trials"]["succeeded"] == 1);

  // The attempt in flight ends, and its end cannot be written.
  REQUIRE(waitFor([&] { return d.log().find("could not record attempt") != std::string::npos; }, 20s));
  CHECK(d.get("/v1/status")["server"]["up"] == true);
  faults(d, {{"slow_factor", 1.0}});

  // Space returns: the unrecorded attempt is marked interrupted and its trial runs again, once;
  // the same submission as before goes through and runs.
  ::unlink(filler.c_str());
  REQUIRE(waitFor([&] { return d.get("/v1/trials/" + std::to_string(inflightId))["state"] == "succeeded"; }, 30s));
  auto repaired = d.get("/v1/trials/" + std::to_string(inflightId));
  int oks = 0, storageErrors = 0;
  for (auto& a : repaired["attempts"]) {
    if (a["outcome"] == "ok") ++oks;
    if (a["outcome"] == "interrupted" && a["error"].get<std::string>().find("storage error") != std::string::npos) ++storageErrors;
  }
  CHECK(oks == 1);
  CHECK(storageErrors == 1);
  auto back = d.request("POST", "/v1/trials?wait=30", json{{"model", "tiny:latest"}, {"request", {{"prompt", "after"}}}}.dump());
  CHECK(back.status == 200);
  CHECK(json::parse(back.body)["state"] == "succeeded");
  CHECK(d.stop() == 0);
}
