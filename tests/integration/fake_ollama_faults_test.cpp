// The fault switchboard (contract table): every key does what it says, in the real processes.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "catch.h"
#include "support/fake_ollama.h"

using nlohmann::json;
using oasis::test::FakeOllama;
using oasis::test::HeldStream;
using oasis::test::holdsFor;
using oasis::test::processAlive;
using oasis::test::waitFor;
using namespace std::chrono_literals;

namespace {

json faults(const FakeOllama& fo) { return json::parse(fo.get("/_fake/faults").body); }

// CPU seconds a process uses over `window` (utime + stime from /proc/<pid>/stat).
double cpuSecondsOver(pid_t pid, std::chrono::milliseconds window) {
  auto before = oasis::test::readProcStat(pid);
  REQUIRE(before);
  std::this_thread::sleep_for(window);  // a measurement window, not a race guard
  auto after = oasis::test::readProcStat(pid);
  REQUIRE(after);
  return static_cast<double>(after->cpuTicks - before->cpuTicks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double evalRate(const json& final) {
  return final["eval_count"].get<double>() / (final["eval_duration"].get<double>() / 1e9);
}

}  // namespace

TEST_CASE("fake-ollama: the switchboard merges, reports and resets faults", "[fake_ollama]") {
  FakeOllama fo({{"FAKE_OLLAMA_FAULTS", R"({"load_ms":10})"}});
  CHECK(faults(fo) == json{{"load_ms", 10}});
  auto set = fo.post("/_fake/faults", R"({"hang_after_tokens":3,"hang_spin":true,"slow_factor":2.5})");
  CHECK(set.status == 200);
  auto f = faults(fo);
  CHECK(f["hang_after_tokens"] == 3);
  CHECK(f["hang_count"] == 1);
  CHECK(f["hang_spin"] == true);
  CHECK(f["slow_factor"] == 2.5);
  CHECK(f["slow_only_with_flash_attention"] == true);
  CHECK(f["load_ms"] == 10);
  CHECK(fo.post("/_fake/faults", R"({"hang_after_tokens":null})").status == 200);
  CHECK_FALSE(faults(fo).contains("hang_after_tokens"));
  // Bad patches are refused whole.
  CHECK(fo.post("/_fake/faults", R"({"no_such_fault":1})").status == 400);
  CHECK(fo.post("/_fake/faults", R"({"load_fail":"yes","ps_hang":true})").status == 400);
  CHECK_FALSE(faults(fo).contains("ps_hang"));
  CHECK(fo.post("/_fake/faults", "not json").status == 400);
  CHECK(fo.post("/_fake/reset", "").status == 200);
  CHECK(faults(fo) == json::object());
  CHECK(fo.logContains("fault switchboard reset"));
}

TEST_CASE("fake-ollama: a hung runner sleeps, or burns a core with hang_spin", "[fake_ollama]") {
  const bool spin = GENERATE(false, true);
  INFO("hang_spin=" << spin);
  FakeOllama fo;
  json patch{{"hang_after_tokens", 1}, {"hang_spin", spin}};
  REQUIRE(fo.post("/_fake/faults", patch.dump()).status == 200);
  auto held = HeldStream::open(fo.endpoint(), "/api/generate", R"({"model":"tiny","prompt":"x"})");
  REQUIRE(held);
  REQUIRE(held->nextLine(10s));
  REQUIRE(fo.waitForLog(spin ? "busy-looping" : "hung (sleeping)", 10s));
  auto runner = fo.runnerPids().at(0);
  double cpu = cpuSecondsOver(runner, 1000ms);
  if (spin)
    CHECK(cpu > 0.4);  // ~1 CPU-second per second on an idle core; margin for a shared 2-core box
  else
    CHECK(cpu < 0.2);
  // /health still answers while the generation is stuck (the spin is in another thread).
  auto port = std::stoi(oasis::test::argAfter(oasis::test::processArgs(runner), "--port"));
  oasis::http::Request health;
  health.target = "/health";
  auto h = oasis::http::fetch(oasis::http::Endpoint::tcp("127.0.0.1", static_cast<uint16_t>(port)), health, 5s);
  REQUIRE(h.ok());
  CHECK(h->status == 200);
  // The hang survives the client: closing it does not free the runner's slot.
  held->close();
  oasis::http::Request next;
  next.method = "POST";
  next.target = "/api/generate";
  next.body = R"({"model":"tiny","prompt":"y","stream":false})";
  CHECK_FALSE(oasis::http::fetch(fo.endpoint(), next, 1s).ok());
  CHECK(processAlive(runner));
}

TEST_CASE("fake-ollama: hang_count limits how many generations hang", "[fake_ollama]") {
  FakeOllama fo({{"OLLAMA_NUM_PARALLEL", "3"}});
  REQUIRE(fo.post("/_fake/faults", R"({"hang_after_tokens":1,"hang_count":2})").status == 200);
  auto h1 = HeldStream::open(fo.endpoint(), "/api/generate", R"({"model":"tiny","prompt":"1"})");
  auto h2 = HeldStream::open(fo.endpoint(), "/api/generate", R"({"model":"tiny","prompt":"2"})");
  REQUIRE(h1);
  REQUIRE(h2);
  REQUIRE(h1->nextLine(10s));
  REQUIRE(h2->nextLine(10s));
  CHECK_FALSE(faults(fo).contains("hang_after_tokens"));  // used up
  // The third generation runs normally in the third slot.
  auto r = fo.post("/api/generate", R"({"model":"tiny","prompt":"3","stream":false})", 10s);
  CHECK(r.status == 200);
  CHECK(json::parse(r.body)["done_reason"] == "stop");
}

TEST_CASE("fake-ollama: slow_factor slows generation only with flash attention on", "[fake_ollama]") {
  SECTION("flash attention on (OLLAMA_FLASH_ATTENTION unset)") {
    FakeOllama fo;
    REQUIRE(fo.post("/_fake/faults", R"({"slow_factor":4})").status == 200);
    auto j = json::parse(fo.post("/api/generate", R"({"model":"tiny","prompt":"x","stream":false})").body);
    CHECK(evalRate(j) < 80);  // 200 tokens/s / 4 = 50
    CHECK(evalRate(j) > 20);
    auto ps = json::parse(fo.get("/api/ps").body)["models"].at(0);
    CHECK(ps["size_vram"] == ps["size"]);  // still "100% GPU"
    CHECK(fo.logContains("fault slow_factor=4 active"));
  }
  SECTION("flash attention off (OLLAMA_FLASH_ATTENTION=0)") {
    FakeOllama fo({{"OLLAMA_FLASH_ATTENTION", "0"}});
    REQUIRE(fo.post("/_fake/faults", R"({"slow_factor":4})").status == 200);
    auto j = json::parse(fo.post("/api/generate", R"({"model":"tiny","prompt":"x","stream":false})").body);
    CHECK(evalRate(j) > 120);
    CHECK(oasis::test::argAfter(oasis::test::processArgs(fo.runnerPids().at(0)), "--flash-attn") == "off");
    // ... unless the fault says it does not depend on flash attention.
    REQUIRE(fo.post("/_fake/faults", R"({"slow_only_with_flash_attention":false})").status == 200);
    auto k = json::parse(fo.post("/api/generate", R"({"model":"tiny","prompt":"x","stream":false})").body);
    CHECK(evalRate(k) < 80);
  }
  SECTION("a non-boolean OLLAMA_FLASH_ATTENTION (\"off\") means on, as in Ollama") {
    FakeOllama fo({{"OLLAMA_FLASH_ATTENTION", "off"}});
    CHECK(fo.post("/api/generate", R"({"model":"tiny"})").status == 200);
    CHECK(oasis::test::argAfter(oasis::test::processArgs(fo.runnerPids().at(0)), "--flash-attn") == "on");
  }
}

TEST_CASE("fake-ollama: runner_crash_after_tokens kills the runner mid-stream", "[fake_ollama]") {
  FakeOllama fo;
  CHECK(fo.post("/api/generate", R"({"model":"tiny"})").status == 200);
  const pid_t first = fo.runnerPids().at(0);
  REQUIRE(fo.post("/_fake/faults", R"({"runner_crash_after_tokens":3})").status == 200);
  auto r = fo.post("/api/generate", R"({"model":"tiny","prompt":"x"})");
  CHECK(r.status == 200);  // tokens were sent: the error is the last line of the stream
  std::vector<json> lines;
  std::istringstream in(r.body);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(json::parse(l));
  REQUIRE(lines.size() == 4);
  CHECK(lines[2]["response"] == " brown");
  CHECK(lines[3].size() == 1);
  CHECK(lines[3]["error"].get<std::string>().find("model runner has unexpectedly stopped") == 0);
  CHECK(waitFor([&] { return !processAlive(first); }, 5s));
  CHECK(fo.waitForLog("runner_crash_after_tokens=3", 5s));

  // Before any token: a plain 500 with the same message. (The dead runner is replaced.)
  REQUIRE(fo.post("/_fake/faults", R"({"runner_crash_after_tokens":0})").status == 200);
  auto early = fo.post("/api/generate", R"({"model":"tiny","prompt":"x"})");
  CHECK(early.status == 500);
  CHECK(json::parse(early.body)["error"].get<std::string>().find("unexpectedly stopped") != std::string::npos);

  // With the fault used up, the model reloads in a fresh runner and works.
  auto ok = fo.post("/api/generate", R"({"model":"tiny","prompt":"x","stream":false})");
  CHECK(ok.status == 200);
  auto now = fo.runnerPids();
  REQUIRE(now.size() == 1);
  CHECK(now[0] != first);
}

TEST_CASE("fake-ollama: load_fail and load_ms change how loads go", "[fake_ollama]") {
  FakeOllama fo;
  REQUIRE(fo.post("/_fake/faults", R"({"load_fail":true})").status == 200);
  auto r = fo.post("/api/generate", R"({"model":"tiny","prompt":"x"})");
  CHECK(r.status == 500);
  CHECK(json::parse(r.body)["error"] == "llama-server process has terminated: exit status 1");
  CHECK(json::parse(fo.get("/api/ps").body)["models"].empty());
  CHECK(waitFor([&] { return fo.runnerPids().empty(); }, 5s));
  CHECK(fo.logContains("fault load_fail"));

  REQUIRE(fo.post("/_fake/faults", R"({"load_fail":null,"load_ms":1500})").status == 200);
  auto slow = json::parse(fo.post("/api/generate", R"({"model":"tiny","prompt":"x","stream":false})").body);
  CHECK(slow["load_duration"].get<int64_t>() >= 1'500'000'000);
  CHECK(fo.logContains("fault load_ms=1500"));
}

TEST_CASE("fake-ollama: ps_hang blocks /api/ps while HEAD / answers", "[fake_ollama]") {
  FakeOllama fo;
  REQUIRE(fo.post("/_fake/faults", R"({"ps_hang":true})").status == 200);
  oasis::http::Request ps;
  ps.target = "/api/ps";
  CHECK_FALSE(oasis::http::fetch(fo.endpoint(), ps, 700ms).ok());
  oasis::http::Request head;
  head.method = "HEAD";
  head.target = "/";
  auto h = oasis::http::fetch(fo.endpoint(), head, 2s);
  REQUIRE(h.ok());
  CHECK(h->status == 200);
  CHECK(fo.get("/api/version").status == 200);

  // A blocked ps completes once the fault is cleared.
  std::optional<oasis::Result<oasis::http::Response>> blocked;
  std::thread t([&] { blocked = oasis::http::fetch(fo.endpoint(), ps, 20s); });
  REQUIRE(fo.waitForLog("fault ps_hang: /api/ps request blocked", 5s));
  REQUIRE(fo.post("/_fake/faults", R"({"ps_hang":false})").status == 200);
  t.join();
  REQUIRE(blocked.has_value());
  REQUIRE(blocked->ok());
  CHECK((*blocked)->status == 200);
}

TEST_CASE("fake-ollama: serve_exit exits serve with the code and orphans its runners", "[fake_ollama]") {
  FakeOllama fo;
  CHECK(fo.post("/api/generate", R"({"model":"tiny"})").status == 200);
  const pid_t runner = fo.runnerPids().at(0);
  oasis::http::Request req;
  req.method = "POST";
  req.target = "/_fake/faults";
  req.body = R"({"serve_exit":3})";
  (void)oasis::http::fetch(fo.endpoint(), req, 5s);
  REQUIRE(fo.waitExit(10s));
  CHECK(WIFEXITED(fo.exitStatus()));
  CHECK(WEXITSTATUS(fo.exitStatus()) == 3);
  CHECK(fo.logContains("fault serve_exit=3"));
  CHECK(processAlive(runner));  // orphaned
  ::kill(runner, SIGKILL);
  CHECK(waitFor([&] { return !processAlive(runner); }, 5s));
}
