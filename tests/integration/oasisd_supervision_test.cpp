// oasisd against real processes: oasisd launches fake-ollama (managed mode), fake-ollama forks
// its runners, and the tests inject the incident's faults through the switchboard and the
// memory file, then check what oasisd did in its events, its status and the process table.
#include <signal.h>

#include "catch.h"
#include "daemon/platform/platform.h"
#include "support/fake_ollama.h"
#include "support/notify_listener.h"
#include "support/oasisd.h"

using namespace oasis;
using namespace oasis::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

http::Response ollamaPost(const Oasisd& d, const std::string& target, const json& body,
                          std::chrono::milliseconds timeout = 30s) {
  auto r = http::fetch(d.ollama(), {"POST", target, body.dump(), "application/json", {}}, timeout);
  if (!r) throw std::runtime_error("POST " + target + ": " + r.error().message);
  return *r;
}

json setFaults(const Oasisd& d, const json& faults) {
  auto r = ollamaPost(d, "/_fake/faults", faults);
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

int servePid(const Oasisd& d) {
  auto s = d.get("/v1/status");
  return s["server"]["pid"].is_number() ? s["server"]["pid"].get<int>() : -1;
}

bool modelListed(const json& status, const std::string& model) {
  for (auto& m : status["models"])
    if (m["name"] == model) return true;
  return false;
}

// Serve up and tiny:latest loaded by one generation: the serve's and the runner's pids.
std::pair<int, int> loadedPids(const Oasisd& d) {
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));
  auto r = ollamaPost(d, "/api/generate", {{"model", "tiny:latest"}, {"prompt", "hi"}, {"stream", false}});
  REQUIRE(r.status == 200);
  REQUIRE(d.waitForStatus([](const json& s) { return modelListed(s, "tiny:latest") && s["models"][0]["runner"].is_object(); }, 10s));
  auto status = d.get("/v1/status");
  return {status["server"]["pid"].get<int>(), status["models"][0]["runner"]["pid"].get<int>()};
}

}  // namespace

TEST_CASE("oasisd launches serve, reports it, and stops it with its runners", "[oasisd][supervision]") {
  Oasisd d;
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));
  auto s = d.get("/v1/status");
  CHECK(s["server"]["mode"] == "managed");
  CHECK(s["run"]["state"] == "running");
  CHECK(s["server"]["version"] == "0.33.0-fake");
  int serve = s["server"]["pid"].get<int>();
  REQUIRE(readProcStat(serve));
  CHECK(readProcStat(serve)->ppid == d.pid());

  // Load a model so that there is a runner to clean up.
  auto r = ollamaPost(d, "/api/generate", {{"model", "tiny:latest"}, {"prompt", "hi"}, {"stream", false}});
  REQUIRE(r.status == 200);
  REQUIRE(d.waitForStatus([](const json& st) { return modelListed(st, "tiny:latest") && st["models"][0]["runner"].is_object(); }, 10s));
  auto st = d.get("/v1/status");
  int runner = st["models"][0]["runner"]["pid"].get<int>();
  CHECK(readProcStat(runner)->ppid == serve);

  CHECK(d.stop() == 0);
  CHECK(waitFor([&] { return !processAlive(serve) && !processAlive(runner); }, 10s));
}

TEST_CASE("Stopping deadlock: a hung generation plus eviction gets its runner killed", "[oasisd][supervision][deadlock]") {
  Oasisd d(json{{"stopping_grace_s", 1.0}});
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));
  setFaults(d, {{"hang_after_tokens", 2}, {"hang_count", 1}});
  // The client holds its request open: Ollama keeps the runner's reference while it does.
  auto held = HeldStream::open(d.ollama(), "/api/generate", json({{"model", "tiny:latest"}, {"prompt", "hang"}}).dump());
  REQUIRE(held);
  REQUIRE(held->nextLine(5s));
  REQUIRE(d.waitForStatus([](const json& s) { return modelListed(s, "tiny:latest") && s["models"][0]["runner"].is_object(); }, 10s));
  int runner = d.get("/v1/status")["models"][0]["runner"]["pid"].get<int>();

  auto evict = d.post("/v1/evict", {{"model", "tiny:latest"}});
  REQUIRE(evict["actions"].is_array());
  auto t0 = std::chrono::steady_clock::now();
  // expires_at is now in the past and no token flows: after stopping_grace_s (1 s) plus a ps
  // interval, oasisd kills the runner (bounded here with generous slack for sanitizers).
  REQUIRE(d.waitForEvent("runner_killed", 15s));
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < 10s);
  CHECK(waitFor([&] { return !processAlive(runner); }, 5s));
  CHECK(d.waitForStatus([](const json& s) { return !modelListed(s, "tiny:latest"); }, 10s));
  CHECK_FALSE(d.eventsOfKind("stopping_detected").empty());
  held->close();

  // The next request reloads the model and succeeds.
  auto r = ollamaPost(d, "/api/generate", {{"model", "tiny:latest"}, {"prompt", "again"}, {"stream", false}});
  CHECK(r.status == 200);
}

TEST_CASE("False-positive guard: a slow but progressing generation past expires_at is never killed",
          "[oasisd][supervision][deadlock]") {
  Oasisd d(json{{"stopping_grace_s", 0.5}});
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));
  // A first request with keep_alive 1s: after it, expires_at = idle time + 1 s.
  auto warm = ollamaPost(d, "/api/generate", {{"model", "tiny:latest"}, {"prompt", "warm"}, {"stream", false}, {"keep_alive", "1s"}});
  REQUIRE(warm.status == 200);
  // A slow generation that keeps streaming for ~4 s: ps says "Stopping..." for most of it.
  setFaults(d, {{"slow_factor", 40.0}, {"slow_only_with_flash_attention", false}});
  auto held = HeldStream::open(d.ollama(), "/api/generate",
                               json({{"model", "tiny:latest"}, {"prompt", "slow"}}).dump());
  REQUIRE(held);
  int lines = 0;
  bool sawStopping = false;
  std::string last;
  while (auto line = held->nextLine(5s)) {
    ++lines;
    last = *line;
    auto s = d.get("/v1/status");
    if (!s["models"].empty() && s["models"][0]["stopping"] == true) sawStopping = true;
    if (json::parse(*line).value("done", false)) break;
  }
  INFO("last line: " << last);
  CHECK(lines >= 16);  // tiny:latest stops on its own after 16 tokens
  CHECK(sawStopping);
  CHECK(d.eventsOfKind("runner_killed").empty());
}

TEST_CASE("Wedged scheduler: ps_hang gets serve restarted and its runners reaped", "[oasisd][supervision][wedge]") {
  Oasisd d(json{{"ollama", {{"ps_timeout_s", 0.5}, {"wedge_after_ps_failures", 2}, {"stop_timeout_s", 2}}}});
  auto [oldServe, oldRunner] = loadedPids(d);
  setFaults(d, {{"ps_hang", true}});
  REQUIRE(d.waitForStatus([&](const json& s) { return s["server"]["pid"].is_number() && s["server"]["pid"] != oldServe && s["server"]["up"] == true; }, 30s));
  CHECK(waitFor([&] { return !processAlive(oldServe) && !processAlive(oldRunner); }, 10s));
  CHECK(d.get("/v1/status")["server"]["restarts"].get<int>() >= 1);
}

TEST_CASE("serve crash: the runners it orphaned are killed before the relaunch", "[oasisd][supervision][crash]") {
  Oasisd d(json{{"ollama", {{"restart", {{"initial_backoff_s", 0.1}, {"max_backoff_s", 0.2}}}}}});
  auto [oldServe, oldRunner] = loadedPids(d);
  setFaults(d, {{"serve_exit", 1}});  // serve exits on its own; its runner is orphaned, still running
  REQUIRE(d.waitForStatus([&](const json& s) { return s["server"]["pid"].is_number() && s["server"]["pid"] != oldServe && s["server"]["up"] == true; }, 20s));
  // Well before the emulator's own 60 s orphan watchdog would end it.
  CHECK(waitFor([&] { return !processAlive(oldRunner); }, 10s));
}

TEST_CASE("serve crash is restarted / repeated fast crashes end in the failed state", "[oasisd][supervision][crash]") {
  Oasisd d(json{{"ollama", {{"restart", {{"initial_backoff_s", 0.1}, {"max_backoff_s", 0.2}, {"max_fast_failures", 3}}}}}});
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));
  int first = servePid(d);
  setFaults(d, {{"serve_exit", 3}});
  REQUIRE(d.waitForStatus([&](const json& s) { return s["server"]["pid"].is_number() && s["server"]["pid"] != first && s["server"]["up"] == true; }, 20s));
  CHECK_FALSE(d.eventsOfKind("server_exited").empty());
  // Now make every start die at once: failures pile up to the terminal state.
  for (int i = 0; i < 5 && !d.get("/v1/status")["server"]["failed"].get<bool>(); ++i) {
    auto pid = servePid(d);
    if (pid > 0) {
      auto fr = http::fetch(d.ollama(), {"POST", "/_fake/faults", R"({"serve_exit": 3})", "application/json", {}}, 2s);
      (void)fr;
      waitFor([&] { return servePid(d) != pid; }, 10s);
    }
    waitFor([&] { return servePid(d) > 0 || d.get("/v1/status")["server"]["failed"].get<bool>(); }, 10s);
  }
  auto s = d.get("/v1/status");
  CHECK(s["server"]["failed"] == true);
  CHECK(s["server"]["state"] == "failed");
  CHECK(s["run"]["state"] == "paused");
  // The API itself stays up and answers.
  CHECK(d.request("GET", "/v1/status").status == 200);
}

TEST_CASE("Memory replay: the incident's gradient pauses dispatch, recovery resumes with hysteresis",
          "[oasisd][supervision][memory]") {
  Oasisd d(json{{"memory", {{"window_s", 6}, {"resume_hold_s", 1.5}, {"pause_below_available_gb", 1}, {"resume_above_available_gb", 2}}}});
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true && s["run"]["state"] == "running"; }, 20s));
  // Free pages fall 100x and swap-outs climb towards 500k: the incident's 15 minutes, in ~3 s.
  std::uint64_t freePages = 400000, swapouts = 0;
  bool paused = false;
  for (int step = 0; step < 40 && !paused; ++step) {
    freePages = std::max<std::uint64_t>(4000, freePages * 80 / 100);
    swapouts += 15000;
    d.writeMemoryFile(Oasisd::vmStat(freePages, swapouts, 20000));
    paused = waitFor([&] { return d.get("/v1/status")["run"]["state"] == "paused"; }, 300ms, 50ms);
  }
  REQUIRE(paused);
  auto s = d.get("/v1/status");
  CHECK(s["memory"]["pressure"] == "critical");
  auto reasons = s["run"]["pause_reasons"];
  CHECK(std::find(reasons.begin(), reasons.end(), "memory_pressure") != reasons.end());
  CHECK_FALSE(d.eventsOfKind("memory_pressure").empty());
  // Pressure goes away: resume only after resume_hold_s of OK samples, not at the first one.
  d.writeMemoryFile(Oasisd::vmStat(400000, swapouts, 300000));
  auto okAt = std::chrono::steady_clock::now();
  REQUIRE(d.waitForStatus([](const json& st) { return st["run"]["state"] == "running"; }, 20s));
  CHECK(std::chrono::steady_clock::now() - okAt >= 1400ms);
  CHECK_FALSE(d.eventsOfKind("memory_recovered").empty());
}

TEST_CASE("Flash attention: a simulated Apple Silicon host launches serve with it off", "[oasisd][supervision][fa]") {
  Oasisd d(json::object(), {"--simulate-apple-silicon"});
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));
  CHECK(d.get("/v1/status")["server"]["flash_attention"] == "off");
  auto r = ollamaPost(d, "/api/generate", {{"model", "tiny:latest"}, {"prompt", "hi"}, {"stream", false}});
  REQUIRE(r.status == 200);
  REQUIRE(d.waitForStatus([](const json& s) { return modelListed(s, "tiny:latest") && s["models"][0]["runner"].is_object(); }, 10s));
  auto runner = d.get("/v1/status")["models"][0]["runner"];
  CHECK(runner["flash_attention"] == "off");
  CHECK(argAfter(processArgs(runner["pid"].get<int>()), "--flash-attn") == "off");
}

TEST_CASE("Control API: bad requests get the contract's error shapes and change nothing", "[oasisd][api]") {
  Oasisd d;
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  auto before = d.events().size();
  struct Case {
    std::string method, target, body;
    int status;
    std::string code;
  };
  std::vector<Case> cases = {
      {"GET", "/v1/nope", "", 404, "not_found"},
      {"GET", "/v1/pause", "", 405, "method_not_allowed"},
      {"POST", "/v1/pause", "{not json", 400, "invalid_body"},
      {"POST", "/v1/pause", "[1,2]", 400, "invalid_body"},
      {"POST", "/v1/pause", R"({"reason": "coffee"})", 400, "invalid_body"},
      {"POST", "/v1/pause", R"({"reason": 7})", 400, "invalid_body"},
      {"POST", "/v1/pause", R"({"drain": "yes"})", 400, "invalid_body"},
      {"POST", "/v1/evict", R"({"model": ""})", 400, "invalid_body"},
      {"GET", "/v1/preflight", "", 400, "invalid_query"},
      {"GET", "/v1/events?since=-4", "", 400, "invalid_query"},
      {"GET", "/v1/timeline?bucket_s=0", "", 400, "invalid_query"},
  };
  for (auto& c : cases) {
    INFO(c.method << " " << c.target << " " << c.body);
    auto r = d.request(c.method, c.target, c.body);
    CHECK(r.status == c.status);
    auto j = json::parse(r.body, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["error"]["code"] == c.code);
    CHECK(j["error"]["message"].is_string());
  }
  CHECK(d.get("/v1/status")["run"]["state"] == "running");
  // Only the server's own start-up events may have been added meanwhile, no pause/resume.
  for (auto& e : d.events()) {
    if (e["id"].get<std::size_t>() > before) CHECK(e["kind"] != "paused");
  }
  // Pause and resume do what they say.
  CHECK(d.post("/v1/pause", {{"reason", "manual"}})["run"]["state"] == "paused");
  CHECK(d.post("/v1/resume")["run"]["state"] == "running");
}

TEST_CASE("Attach mode: finds the server's pid from its port, kills a wedged runner, never restarts serve",
          "[oasisd][supervision][attach]") {
  FakeOllama fo;  // something else runs serve (Ollama.app, brew services, systemd)
  Oasisd d(json{{"ollama", {{"mode", "attach"}, {"url", "http://127.0.0.1:" + std::to_string(fo.port())}}},
                {"stopping_grace_s", 1.0}});
  REQUIRE(d.waitForStatus([&](const json& s) { return s["server"]["up"] == true && s["server"]["pid"] == fo.pid(); }, 20s));
  CHECK(d.get("/v1/status")["server"]["mode"] == "attached");
  // The deadlock recovery works on a server oasisd did not launch.
  auto faults = http::fetch(fo.endpoint(), {"POST", "/_fake/faults", R"({"hang_after_tokens":2})", "application/json", {}}, 5s);
  REQUIRE(faults.ok());
  auto held = HeldStream::open(fo.endpoint(), "/api/generate", json({{"model", "tiny:latest"}, {"prompt", "hang"}}).dump());
  REQUIRE(held);
  REQUIRE(held->nextLine(5s));
  REQUIRE(d.waitForStatus([](const json& s) { return modelListed(s, "tiny:latest") && s["models"][0]["runner"].is_object(); }, 10s));
  d.post("/v1/evict", {{"model", "tiny:latest"}});
  CHECK(d.waitForEvent("runner_killed", 15s));
  held->close();
  // serve goes away: oasisd reports it and pauses, but does not start one of its own.
  fo.signal(SIGTERM);
  REQUIRE(fo.waitExit(10s));
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == false && s["run"]["state"] == "paused"; }, 15s));
  CHECK(d.get("/v1/status")["server"]["restarts"] == 0);
  CHECK_FALSE(waitFor([&] {
    auto st = d.get("/v1/status");
    return st["server"]["up"] == true;
  }, 3s, 200ms));
  // Whoever runs serve starts it again on the same port: oasisd follows the new process (it
  // looks the pid up again once the server was down, not only the first time).
  FakeOllama again({{"OLLAMA_HOST", "127.0.0.1:" + std::to_string(fo.port())}});
  REQUIRE(again.port() == fo.port());
  CHECK(d.waitForStatus([&](const json& s) { return s["server"]["up"] == true && s["server"]["pid"] == again.pid(); }, 20s));
}

TEST_CASE("systemd Type=notify: READY once the API serves, RELOADING around SIGHUP, STOPPING at the end",
          "[oasisd][supervision][notify]") {
  TempDir dir;
  auto address = parseNotifySocket(dir.file("notify"));
  REQUIRE(address);
  NotifyListener systemd(*address);
  Oasisd d(json::object(), {}, {"NOTIFY_SOCKET=" + dir.file("notify")});
  auto ready = systemd.next(20s);
  CHECK(ready == "READY=1\nSTATUS=serving on " + d.socket());
  CHECK(d.get("/v1/status")["pid"] == d.pid());  // it serves, as READY said
  REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 20s));
  // The managed serve does not inherit the socket (it could otherwise speak for oasisd).
  auto serveEnv = platform::readEnvironment(servePid(d));
  REQUIRE(serveEnv);
  CHECK(serveEnv->count("NOTIFY_SOCKET") == 0);
  ::kill(d.pid(), SIGHUP);
  CHECK(systemd.next(10s) == "RELOADING=1");
  CHECK(systemd.next(10s) == "READY=1");
  CHECK(d.stop() == 0);
  CHECK(systemd.next() == "STOPPING=1");
}
