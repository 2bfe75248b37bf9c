// Trials through a real oasisd: submit, liveness timeouts, retries, recovery, crash safety, and
// the Ollama-compatible surface, against fake-ollama with faults from its switchboard.
#include <signal.h>

#include <map>
#include <random>
#include <set>

#include "catch.h"
#include "support/fake_ollama.h"
#include "support/oasisd.h"

using namespace oasis;
using namespace oasis::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

json fastConfig(json extra = json::object()) {
  json c = {{"stall_timeout_s", 1},
            {"first_token_timeout_s", 3},
            {"request_timeout_s", 20},
            {"ollama_evict_threshold", 2},
            {"stopping_grace_s", 1},
            {"retry", {{"initial_backoff_s", 0.05}, {"max_backoff_s", 0.2}}}};
  c.merge_patch(extra);
  return c;
}

void faults(const Oasisd& d, const json& f) {
  auto r = http::fetch(d.ollama(), {"POST", "/_fake/faults", f.dump(), "application/json", {}}, 5s);
  REQUIRE(r.ok());
  REQUIRE(r->status == 200);
}

bool allEnded(const Oasisd& d, std::size_t total) {
  auto s = d.get("/v1/status")["trials"];
  return s["succeeded"].get<std::size_t>() + s["failed"].get<std::size_t>() + s["cancelled"].get<std::size_t>() == total;
}

}  // namespace

TEST_CASE("A trial submitted with ?wait returns its full record", "[oasisd][trials]") {
  Oasisd d(fastConfig());
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  auto t = submitWait(d, {{"model", "tiny:latest"}, {"request", {{"prompt", "hello"}}}, {"run", "r1"}});
  CHECK(t["state"] == "succeeded");
  CHECK(t["run"] == "r1");
  CHECK(t["response"]["done"] == true);
  CHECK(t["response"]["response"].get<std::string>().size() > 0);
  REQUIRE(t["attempts"].size() == 1);
  auto a = t["attempts"][0];
  CHECK(a["outcome"] == "ok");
  CHECK(a["eval_count"].get<int>() == 16);
  CHECK(a["first_token_ms"].get<double>() > 0);
  CHECK(a["latency_ms"].get<double>() >= a["first_token_ms"].get<double>());
  // GET and list agree.
  CHECK(d.get("/v1/trials/" + std::to_string(t["id"].get<int>()))["state"] == "succeeded");
  auto list = d.get("/v1/trials?run=r1&state=succeeded");
  CHECK(list["trials"].size() == 1);
}

TEST_CASE("A stall is detected within stall_timeout_s + 1 s, then the trial is retried and succeeds",
          "[oasisd][trials][liveness]") {
  Oasisd d(fastConfig({{"request_timeout_s", 60}, {"ollama_evict_threshold", 1}}));
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  REQUIRE(submitWait(d, {{"model", "tiny:latest"}, {"request", {{"prompt", "warm"}}}})["state"] == "succeeded");
  faults(d, {{"hang_after_tokens", 3}, {"hang_count", 1}});
  auto t = submitWait(d, {{"model", "tiny:latest"}, {"request", {{"prompt", "hang"}}}});
  CHECK(t["state"] == "succeeded");
  REQUIRE(t["attempts"].size() >= 2);
  auto first = t["attempts"][0];
  CHECK(first["outcome"] == "stalled");
  // stall_timeout_s = 1: detected well before request_timeout_s (60 s).
  CHECK(first["latency_ms"].get<double>() < (1.0 + 1.0) * 1000 + first["first_token_ms"].get<double>());
  CHECK_FALSE(d.eventsOfKind("stall_detected").empty());
}

TEST_CASE("Bad trial specs get 400 naming the field, and the store is unchanged", "[oasisd][trials][api]") {
  Oasisd d(fastConfig());
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  struct Case {
    std::string body;
    std::string mentions;
    int status;
  };
  std::vector<Case> cases = {
      {R"({"request":{"prompt":"x"}})", "model", 400},
      {R"({"model":"tiny:latest","kind":"embed","request":{}})", "kind", 400},
      {R"({"model":"tiny:latest","kind":7,"request":{}})", "kind", 400},
      {R"({"model":"tiny:latest"})", "request", 400},
      {R"({"model":"tiny:latest","kind":"chat","request":{"prompt":"x"}})", "messages", 400},
      {R"({"model":"tiny:latest","request":{},"max_attempts":-1})", "max_attempts", 400},
      {R"({"model":"tiny:latest","request":{},"max_attempts":"3"})", "max_attempts", 400},
      {R"({"model":"tiny:latest","request":{},"colour":"red"})", "colour", 400},
      {"{broken", "JSON", 400},
      {"\"just a string\"", "object", 400},
      {std::string("{\"model\":\"tiny\xff\xfe\",\"request\":{}}"), "UTF-8", 400},
      {std::string(9 * 1024 * 1024, ' '), "exceeds", 413},
  };
  for (auto& c : cases) {
    INFO(c.body.substr(0, 80));
    auto r = d.request("POST", "/v1/trials", c.body);
    CHECK(r.status == c.status);
    auto j = json::parse(r.body, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["error"]["message"].get<std::string>().find(c.mentions) != std::string::npos);
  }
  auto bad = d.request("POST", "/v1/trials/batch", R"({"trials":[{"model":"tiny:latest","request":{}},{"request":{}}]})");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("trials[1]") != std::string::npos);
  auto t = d.get("/v1/status")["trials"];
  CHECK(t["queued"] == 0);
  CHECK(t["succeeded"] == 0);
  CHECK(d.get("/v1/trials")["trials"].empty());
  CHECK(d.request("GET", "/v1/trials/abc").status == 404);
  CHECK(d.request("GET", "/v1/trials/../../etc/passwd").status == 404);
}

TEST_CASE("Idempotency keys: the same body returns the same trial, a different body is 409", "[oasisd][trials][api]") {
  Oasisd d(fastConfig());
  json spec = {{"model", "tiny:latest"}, {"request", {{"prompt", "x"}}}, {"key", "k-1"}};
  auto a = d.post("/v1/trials", spec);
  auto b = d.post("/v1/trials", spec);
  CHECK(a["id"] == b["id"]);
  spec["request"]["prompt"] = "y";
  auto r = d.request("POST", "/v1/trials", spec.dump());
  CHECK(r.status == 409);
  CHECK(json::parse(r.body)["error"]["code"] == "key_conflict");
}

TEST_CASE("Unknown model fails at once with Ollama's message, not retried", "[oasisd][trials]") {
  Oasisd d(fastConfig());
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  auto t = submitWait(d, {{"model", "nope:latest"}, {"request", {{"prompt", "x"}}}});
  CHECK(t["state"] == "failed");
  CHECK(t["attempts"].size() == 1);
  CHECK(t["error"].get<std::string>().find("not found") != std::string::npos);
}

TEST_CASE("1000 trials at concurrency 4 with hangs, crashes mid-stream and a serve crash: every trial succeeds exactly once",
          "[oasisd][trials][faults]") {
  Oasisd d(fastConfig({{"max_concurrency", 4}, {"max_attempts", 10}}),
           {}, {"OLLAMA_NUM_PARALLEL=4"});
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  json batch = {{"trials", json::array()}};
  const std::size_t n = 1000;
  for (std::size_t i = 0; i < n; ++i)
    batch["trials"].push_back({{"model", "tiny:latest"}, {"request", {{"prompt", "p" + std::to_string(i)}}}, {"run", "load"}});
  json ids = d.post("/v1/trials/batch", batch)["ids"];
  REQUIRE(ids.size() == n);
  auto succeeded = [&] { return d.get("/v1/status")["trials"]["succeeded"].get<std::size_t>(); };
  // Inject faults while the run goes on, each once some progress has been made since the last:
  // hangs, runner crashes mid-stream, and (in the middle) serve itself exiting.
  const json schedule[] = {{{"hang_after_tokens", 2}, {"hang_count", 1}},
                           {{"runner_crash_after_tokens", 3}},
                           {{"serve_exit", 1}},
                           {{"hang_after_tokens", 2}, {"hang_count", 2}},
                           {{"runner_crash_after_tokens", 3}}};
  int serveBefore = d.get("/v1/status")["server"]["pid"].get<int>();
  std::size_t step = 0;
  for (auto& f : schedule) {
    std::size_t target = (++step) * n / 7;
    REQUIRE(waitFor([&] { return succeeded() >= target; }, 120s, 100ms));
    if (f.contains("serve_exit")) {
      faults(d, f);
      REQUIRE(d.waitForEvent("server_restarted", 30s));
      REQUIRE(d.waitForStatus([](const json& s) { return s["server"]["up"] == true; }, 30s));
    } else {
      faults(d, f);
    }
  }
  REQUIRE(waitFor([&] { return allEnded(d, n); }, 300s, 250ms));
  CHECK(d.get("/v1/status")["server"]["pid"].get<int>() != serveBefore);
  auto t = d.get("/v1/status")["trials"];
  CHECK(t["succeeded"] == n);
  CHECK(t["failed"] == 0);
  std::set<int> seen;
  long long after = 0;
  for (;;) {
    auto page = d.get("/v1/trials?run=load&limit=100&after=" + std::to_string(after));
    for (auto& tr : page["trials"]) {
      CHECK(seen.insert(tr["id"].get<int>()).second);
      CHECK(tr["state"] == "succeeded");
    }
    if (page["next"].is_null()) break;
    after = page["next"].get<long long>();
  }
  CHECK(seen.size() == n);
  // Every attempt is recorded: exactly one ok per trial, and the faults show up as failed ones.
  std::size_t failedAttempts = 0, interrupted = 0;
  for (int id : seen) {
    auto tr = d.get("/v1/trials/" + std::to_string(id));
    int oks = 0;
    for (auto& a : tr["attempts"]) {
      if (a["outcome"] == "ok") ++oks;
      else if (a["outcome"] == "interrupted") ++interrupted;
      else ++failedAttempts;
    }
    CHECK(oks == 1);
  }
  CHECK(failedAttempts + interrupted >= 4);
}

TEST_CASE("kill -9 of oasisd mid-run: after restart every trial still ends exactly once", "[oasisd][trials][crash]") {
  TempDir keep;
  std::string db = keep.file("kept.db");
  const std::size_t n = 40;
  std::vector<int> ids;
  {
    Oasisd d(fastConfig({{"max_concurrency", 2}}), {"--db", db});
    REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
    faults(d, {{"slow_factor", 10.0}, {"slow_only_with_flash_attention", false}});
    json batch = {{"trials", json::array()}};
    for (std::size_t i = 0; i < n; ++i) batch["trials"].push_back({{"model", "tiny:latest"}, {"request", {{"prompt", "x"}}}});
    json submitted = d.post("/v1/trials/batch", batch);
    for (auto& id : submitted["ids"]) ids.push_back(id.get<int>());
    REQUIRE(d.waitForStatus([](const json& s) { return s["trials"]["running"].get<int>() > 0 && s["trials"]["succeeded"].get<int>() > 0; }, 30s));
    int serve = d.get("/v1/status")["server"]["pid"].get<int>();
    ::kill(d.pid(), SIGKILL);
#ifdef __linux__
    // serve was launched with a parent-death signal: it stops (and unloads its runners) by itself.
    CHECK(waitFor([&] { return !processAlive(serve); }, 15s));
#endif
    ::kill(-serve, SIGKILL);  // whatever is left of its process group
  }
  Oasisd d2(fastConfig({{"max_concurrency", 4}}), {"--db", db});
  REQUIRE(waitFor([&] { return allEnded(d2, n); }, 120s, 250ms));
  auto t = d2.get("/v1/status")["trials"];
  CHECK(t["succeeded"] == n);
  int interrupted = 0;
  for (int id : ids) {
    auto tr = d2.get("/v1/trials/" + std::to_string(id));
    CHECK(tr["state"] == "succeeded");
    int oks = 0;
    for (auto& a : tr["attempts"]) {
      if (a["outcome"] == "ok") ++oks;
      if (a["outcome"] == "interrupted") ++interrupted;
    }
    CHECK(oks == 1);
  }
  CHECK(interrupted >= 1);
}

TEST_CASE("A replayed failure window: the timeline shows the spike and the recovery, the diagnosis names the deadlock",
          "[oasisd][trials][diagnosis]") {
  Oasisd d(fastConfig({{"max_concurrency", 1}, {"max_attempts", 10}}));
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  // The daemon's database is new: the endpoints' default window (the last hour) covers the run.
  auto submit = [&](std::size_t n, const std::string& run) {
    json batch = {{"trials", json::array()}};
    for (std::size_t i = 0; i < n; ++i)
      batch["trials"].push_back({{"model", "tiny:latest"}, {"request", {{"prompt", run}}}, {"run", run}});
    json ids = d.post("/v1/trials/batch", batch)["ids"];
    REQUIRE(ids.size() == n);
  };
  // Healthy phase.
  submit(6, "healthy");
  REQUIRE(waitFor([&] { return allEnded(d, 6); }, 60s, 100ms));

  // The incident: a generation hangs, and a client oasisd does not control keeps its request
  // open; oasisd's own trials then time out waiting for the runner's slot.
  faults(d, {{"hang_after_tokens", 2}, {"hang_count", 1}});
  auto held = HeldStream::open(d.ollama(), "/api/generate", json({{"model", "tiny:latest"}, {"prompt", "hang"}}).dump());
  REQUIRE(held);
  REQUIRE(held->nextLine(5s));
  submit(4, "incident");
  REQUIRE(d.waitForEvent("runner_killed", 60s));
  REQUIRE(waitFor([&] { return allEnded(d, 10); }, 90s, 100ms));
  held->close();

  // Recovery: trials flow again.
  submit(6, "after");
  REQUIRE(waitFor([&] { return allEnded(d, 16); }, 60s, 100ms));
  CHECK(d.get("/v1/status")["trials"]["succeeded"] == 16);

  auto rows = d.get("/v1/timeline?bucket_s=1")["rows"];
  INFO(rows.dump(1));
  // Buckets in time order: healthy (trials, no failures), the spike (failed attempts and the
  // kill among its actions), then recovered (trials, no failures) after the last failure.
  std::ptrdiff_t firstOk = -1, lastFail = -1, okAfter = -1, killAt = -1;
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(rows.size()); ++i) {
    auto& r = rows[static_cast<std::size_t>(i)];
    if (r["failed"].get<int>() > 0) lastFail = i;
    if (r["trials"].get<int>() > 0 && r["failed"] == 0 && firstOk < 0) firstOk = i;
    for (auto& a : r["actions"])
      if (a.get<std::string>().rfind("runner_killed", 0) == 0) killAt = i;
  }
  REQUIRE(lastFail >= 0);
  for (std::ptrdiff_t i = lastFail + 1; i < static_cast<std::ptrdiff_t>(rows.size()); ++i) {
    auto& r = rows[static_cast<std::size_t>(i)];
    if (r["trials"].get<int>() > 0 && r["failed"] == 0) okAfter = i;
  }
  CHECK(firstOk >= 0);
  CHECK(firstOk < lastFail);
  CHECK(okAfter > lastFail);
  CHECK(killAt >= 0);
  CHECK(rows[static_cast<std::size_t>(lastFail)]["failure_rate"].get<double>() > 0);

  auto diag = d.get("/v1/diagnosis");
  INFO(diag.dump(1));
  std::map<std::string, std::string> verdicts;
  for (auto& f : diag["findings"]) verdicts[f["kind"].get<std::string>()] = f["verdict"].get<std::string>();
  CHECK(verdicts["stopping_deadlock"] == "cause");
  CHECK(verdicts["memory_pressure"] != "cause");
  CHECK(verdicts["cpu_spill"] != "cause");
  CHECK(verdicts["cold_start"] != "cause");
}

TEST_CASE("Ollama-compatible surface: generate and chat, stream and not, through the socket", "[oasisd][compat]") {
  Oasisd d(fastConfig());
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  auto r = d.request("POST", "/api/generate", R"({"model":"tiny:latest","prompt":"hi","stream":false})");
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  CHECK(j["done"] == true);
  CHECK(j["model"] == "tiny:latest");
  CHECK(j["response"].get<std::string>().size() > 3);
  CHECK(j["eval_count"] == 16);

  std::vector<json> lines;
  auto st = http::fetchLines(d.endpoint(), {"POST", "/api/chat", R"({"model":"tiny:latest","messages":[{"role":"user","content":"hi"}]})", "application/json", {}},
                             [&](std::string_view l) { lines.push_back(json::parse(l)); return true; }, 30s);
  REQUIRE(st.ok());
  REQUIRE(lines.size() == 17);
  CHECK(lines[0]["message"]["role"] == "assistant");
  CHECK(lines.back()["done"] == true);
  // Read-only endpoints pass through; unknown models keep Ollama's 404 shape.
  CHECK(json::parse(d.request("GET", "/api/version").body)["version"] == "0.33.0-fake");
  CHECK(d.request("GET", "/api/tags").status == 200);
  auto nf = d.request("POST", "/api/generate", R"({"model":"nope","prompt":"x","stream":false})");
  CHECK(nf.status == 404);
  CHECK(json::parse(nf.body)["error"].is_string());
  // The compat calls were recorded as trials of run ollama-compat.
  CHECK(d.get("/v1/trials?run=ollama-compat")["trials"].size() >= 2);
}

TEST_CASE("The official ollama npm client works unchanged over oasisd's Unix socket", "[oasisd][compat][npm]") {
  if (runShell("command -v node").first != 0) {
    WARN("node not installed: skipping the ollama-js check of the compatible surface");
    return;
  }
  std::string why;
  INFO(why);
  REQUIRE(ensureOllamaJs(why));
  Oasisd d(fastConfig());
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  auto [code, out] = runShell("cd '" + std::string(OASIS_SOURCE_DIR) + "/tests/npm' && OLLAMA_SOCKET='" + d.socket() +
                              "' node conformance.mjs");
  INFO(out);
  CHECK(code == 0);
  CHECK(out.find("steps passed") != std::string::npos);
  // Every generate/chat of the client became a recorded trial.
  CHECK(d.get("/v1/trials?run=ollama-compat")["trials"].size() >= 4);
}

TEST_CASE("Pause with drain false cuts in-flight attempts and they run again uncounted after the resume",
          "[oasisd][trials][pause]") {
  // A long stall limit: the held attempt can only end because oasisd cuts it. Two runner slots:
  // the hung generation keeps its slot after the cut (as a real hang does, in the GPU), and the
  // attempt after the resume takes the other.
  Oasisd d(fastConfig({{"stall_timeout_s", 60},
                       {"request_timeout_s", 120},
                       {"ollama", {{"env", {{"OLLAMA_NUM_PARALLEL", "2"}}}}}}));
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  faults(d, {{"hang_after_tokens", 2}, {"hang_count", 1}});
  auto r = d.request("POST", "/v1/trials", json({{"model", "tiny:latest"}, {"request", {{"prompt", "held"}}}}).dump());
  REQUIRE(r.status == 202);
  auto id = std::to_string(json::parse(r.body)["id"].get<int>());
  // Cut only once the generation hangs: earlier, the cut could also land while the model is
  // still loading, and whether the runner then reached its hang was a race.
  REQUIRE(waitFor([&] { return d.log().find("generation hung (sleeping)") != std::string::npos; }, 20s));
  REQUIRE(d.get("/v1/status")["trials"]["running"] == 1);

  auto paused = d.post("/v1/pause", {{"drain", false}});
  CHECK(paused["run"]["state"] == "paused");
  // Cut at once (not after stall_timeout_s), requeued, and not dispatched while paused.
  REQUIRE(waitFor([&] { return d.get("/v1/trials/" + id)["state"] == "queued"; }, 5s));
  auto t = d.get("/v1/trials/" + id);
  REQUIRE(t["attempts"].size() == 1);
  CHECK(t["attempts"][0]["outcome"] == "interrupted");
  CHECK(t["attempts"][0]["counted"] == false);
  CHECK(d.get("/v1/status")["trials"]["running"] == 0);

  d.post("/v1/resume");
  REQUIRE(waitFor([&] { return d.get("/v1/trials/" + id)["state"] == "succeeded"; }, 20s));
  t = d.get("/v1/trials/" + id);
  INFO(t.dump(1));
  REQUIRE(t["attempts"].size() == 2);
  CHECK(t["attempts"][1]["outcome"] == "ok");
  CHECK(t["attempts"][1]["counted"] == true);
}

TEST_CASE("A submit into an empty queue starts at once only when dispatch may: not while paused, not past max_concurrency",
          "[oasisd][trials][pause]") {
  // Two runner slots: the generation held below keeps its slot after it is cut (as a real hang
  // does), and the rest run in the other.
  Oasisd d(fastConfig({{"max_concurrency", 1},
                       {"stall_timeout_s", 60},
                       {"request_timeout_s", 120},
                       {"ollama", {{"env", {{"OLLAMA_NUM_PARALLEL", "2"}}}}}}));
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  auto submit = [&](const std::string& prompt) {
    auto r = d.request("POST", "/v1/trials", json({{"model", "tiny:latest"}, {"request", {{"prompt", prompt}}}}).dump());
    REQUIRE(r.status == 202);
    return std::to_string(json::parse(r.body)["id"].get<int>());
  };
  // Paused: written queued, with no attempt, and it stays so.
  d.post("/v1/pause", {{"reason", "manual"}});
  auto whilePaused = submit("paused");
  auto t = d.get("/v1/trials/" + whilePaused);
  CHECK(t["state"] == "queued");
  CHECK(t["attempts"].empty());
  CHECK_FALSE(waitFor([&] { return d.get("/v1/status")["trials"]["running"] != 0; }, 1s));
  d.post("/v1/resume");
  REQUIRE(waitFor([&] { return d.get("/v1/trials/" + whilePaused)["state"] == "succeeded"; }, 20s));

  // The one slot held by a hanging generation: the next submit queues behind it.
  faults(d, {{"hang_after_tokens", 2}, {"hang_count", 1}});
  auto held = submit("held");
  REQUIRE(waitFor([&] { return d.log().find("generation hung (sleeping)") != std::string::npos; }, 20s));
  REQUIRE(d.get("/v1/status")["trials"]["running"] == 1);
  auto behind = submit("behind");
  t = d.get("/v1/trials/" + behind);
  CHECK(t["state"] == "queued");
  CHECK(t["attempts"].empty());
  CHECK(d.get("/v1/status")["trials"]["running"] == 1);
  // Cutting the held attempt frees the slot; both then end, each once.
  d.post("/v1/pause", {{"drain", false}});
  d.post("/v1/resume");
  REQUIRE(waitFor([&] { return allEnded(d, 3); }, 30s));
  CHECK(d.get("/v1/trials/" + held)["state"] == "succeeded");
  CHECK(d.get("/v1/trials/" + behind)["state"] == "succeeded");
  CHECK(d.get("/v1/trials/" + behind)["attempts"].size() == 1);
}

TEST_CASE("?wait that runs out answers 202 with the trial's state, after the wait, and the trial goes on",
          "[oasisd][trials][api]") {
  Oasisd d(fastConfig());
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running"; }, 20s));
  d.post("/v1/pause", {{"reason", "manual"}});
  auto t0 = std::chrono::steady_clock::now();
  auto r = d.request("POST", "/v1/trials?wait=0.5", json({{"model", "tiny:latest"}, {"request", {{"prompt", "later"}}}}).dump());
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(r.status == 202);
  auto body = json::parse(r.body);
  CHECK(body["state"] == "queued");
  CHECK_FALSE(body.contains("attempts"));  // not the full record: it has not ended
  CHECK(waited >= 500ms);
  // Without ?wait: 202 at once, with the state as stored.
  auto now = d.request("POST", "/v1/trials", json({{"model", "tiny:latest"}, {"request", {{"prompt", "now"}}}}).dump());
  CHECK(now.status == 202);
  CHECK(json::parse(now.body)["state"] == "queued");
  d.post("/v1/resume");
  auto id = std::to_string(body["id"].get<int>());
  CHECK(waitFor([&] { return d.get("/v1/trials/" + id)["state"] == "succeeded"; }, 20s));
}
