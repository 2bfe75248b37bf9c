// oasisctl's pure parts: argument parsing, formatting of the control API's JSON, durations,
// bytes, the progress bar, submit-line parsing.
#include <nlohmann/json.hpp>
#include <sstream>

#include "catch.h"
#include "daemon/cli/args.h"
#include "daemon/cli/commands.h"
#include "daemon/cli/format.h"
#include "daemon/cli/service_install.h"

using namespace oasis::cli;
using nlohmann::json;

namespace {
bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

const char* kStatusFixture = R"({
  "version": "0.3.0", "pid": 4242, "uptime_s": 3725.0,
  "run": {"state": "paused", "pause_reasons": ["manual", "memory_pressure"], "model_pauses": {}},
  "server": {"mode": "managed", "url": "http://127.0.0.1:11434", "pid": 777, "up": true, "state": "up",
             "version": "0.12.3", "restarts": 2, "flash_attention": "off"},
  "models": [{"name": "gemma4:e4b", "size": 9000000000, "size_vram": 9000000000, "processor": "100% GPU",
              "expires_at": "2026-12-04T21:30:00.000000Z", "stopping": false, "stopping_for_s": 0,
              "runner": {"pid": 31337, "cpu_pct": 97.5, "rss_bytes": 5368709120, "flash_attention": false}},
             {"name": "qwen3:8b", "size": 1, "size_vram": 0, "processor": "100% CPU",
              "expires_at": "2026-12-04T21:00:00Z", "stopping": true, "stopping_for_s": 330.0, "runner": null}],
  "memory": {"source": "file", "total_bytes": 17179869184, "available_bytes": 1610612736, "free_bytes": 1,
             "swapouts_per_s": 12.0, "pressure": "critical", "reasons": ["available below 2 GiB"], "trend": "falling"},
  "trials": {"queued": 12, "running": 1, "succeeded": 340, "failed": 3, "cancelled": 0},
  "last_events": [{"id": 17, "at": "2026-12-04T21:20:00.000000Z", "kind": "runner_killed", "model": "qwen3:8b",
                   "detail": {"pid": 999, "reason": "stopping"}}]
})";
}  // namespace

TEST_CASE("cli args: commands, options and globals", "[cli]") {
  auto p = parseArgs({"--socket", "/tmp/s.sock", "submit", "f.jsonl", "--run=r1", "--wait", "--json"});
  REQUIRE(p.ok());
  CHECK(p.args.command == "submit");
  CHECK(p.args.socket == std::optional<std::string>("/tmp/s.sock"));
  CHECK(p.args.positionals == std::vector<std::string>{"f.jsonl"});
  CHECK(p.args.option("--run") == std::optional<std::string>("r1"));
  CHECK(p.args.has("--wait"));
  CHECK(p.args.json);

  auto e = parseArgs({"events", "--follow"});
  REQUIRE(e.ok());
  CHECK(e.args.has("-f"));

  auto h = parseArgs({"help", "timeline"});
  REQUIRE(h.ok());
  CHECK(h.args.help);
  CHECK(h.args.command == "timeline");
  CHECK(parseArgs({"pause", "--help"}).args.help);
}

TEST_CASE("cli args: usage errors", "[cli]") {
  CHECK_FALSE(parseArgs({}).ok());
  CHECK_FALSE(parseArgs({"frobnicate"}).ok());
  CHECK_FALSE(parseArgs({"status", "--bogus"}).ok());
  CHECK_FALSE(parseArgs({"submit"}).ok());                 // missing FILE
  CHECK_FALSE(parseArgs({"trial", "1", "2"}).ok());        // too many
  CHECK_FALSE(parseArgs({"trials", "--run"}).ok());        // missing value
  CHECK_FALSE(parseArgs({"pause", "--now=yes"}).ok());     // flag with a value
  CHECK_FALSE(parseArgs({"help", "nope"}).ok());
  CHECK(contains(parseArgs({"frobnicate"}).error, "frobnicate"));
}

TEST_CASE("cli help: every command has a synopsis and an example", "[cli]") {
  for (auto& s : commandSpecs()) {
    auto text = helpText(s.name);
    CHECK(contains(text, "Usage: oasisctl " + s.synopsis));
    CHECK(contains(text, "Example:"));
    CHECK(contains(text, "oasisctl " + s.name));
    CHECK(contains(helpText(""), s.name));
  }
}

TEST_CASE("cli durations", "[cli]") {
  CHECK(parseDuration("5m") == std::optional<double>(300));
  CHECK(parseDuration("30s") == std::optional<double>(30));
  CHECK(parseDuration("2h") == std::optional<double>(7200));
  CHECK(parseDuration("1d") == std::optional<double>(86400));
  CHECK(parseDuration("1h30m") == std::optional<double>(5400));
  CHECK(parseDuration("90") == std::optional<double>(90));
  CHECK(parseDuration("0.5s") == std::optional<double>(0.5));
  CHECK_FALSE(parseDuration(""));
  CHECK_FALSE(parseDuration("5x"));
  CHECK_FALSE(parseDuration("-5m"));
  CHECK_FALSE(parseDuration("m"));
  CHECK_FALSE(parseDuration("1.2.3s"));

  CHECK(formatDuration(0.25) == "250ms");
  CHECK(formatDuration(42) == "42s");
  CHECK(formatDuration(300) == "5m");
  CHECK(formatDuration(330) == "5m30s");
  CHECK(formatDuration(7260) == "2h1m");
  CHECK(formatDuration(90000) == "1d1h");
  CHECK(formatLatencyMs(850) == "850ms");
  CHECK(formatLatencyMs(1234) == "1.23s");
}

TEST_CASE("cli bytes", "[cli]") {
  CHECK(formatBytes(0) == "0 B");
  CHECK(formatBytes(512) == "512 B");
  CHECK(formatBytes(1536) == "1.5 KiB");
  CHECK(formatBytes(5368709120.0) == "5.0 GiB");
  CHECK(formatBytes(1610612736.0) == "1.5 GiB");
  CHECK(formatBytes(300.0 * 1024 * 1024) == "300 MiB");
}

TEST_CASE("cli progress bar", "[cli]") {
  CHECK(progressBar(5, 1, 10, 10, 12.0) == "[#####.....] 5/10 done (50%)  1 failed  ETA 12s");
  CHECK(progressBar(0, 0, 4, 4, std::nullopt) == "[....] 0/4 done (0%)  0 failed  ETA ?");
  CHECK(progressBar(4, 0, 4, 4, 0.0) == "[####] 4/4 done (100%)  0 failed");
}

TEST_CASE("cli status: table with the key fields, colour only when asked", "[cli]") {
  json st = json::parse(kStatusFixture);
  std::string text = formatStatus(st, Style{false});
  INFO(text);
  CHECK_FALSE(contains(text, "\x1b["));
  CHECK(contains(text, "paused (manual, memory_pressure)"));
  CHECK(contains(text, "managed"));
  CHECK(contains(text, "pid 777"));
  CHECK(contains(text, "version 0.12.3"));
  CHECK(contains(text, "restarts 2"));
  CHECK(contains(text, "flash attention off"));
  for (const char* h : {"NAME", "PROCESSOR", "UNTIL/STOPPING", "RUNNER-PID", "CPU%", "RSS"}) CHECK(contains(text, h));
  CHECK(contains(text, "gemma4:e4b"));
  CHECK(contains(text, "100% GPU"));
  CHECK(contains(text, "21:30:00"));
  CHECK(contains(text, "31337"));
  CHECK(contains(text, "97.5"));
  CHECK(contains(text, "5.0 GiB"));
  CHECK(contains(text, "STOPPING 5m30s"));
  CHECK(contains(text, "critical"));
  CHECK(contains(text, "1.5 GiB available"));
  CHECK(contains(text, "trend falling"));
  CHECK(contains(text, "available below 2 GiB"));
  CHECK(contains(text, "12 queued, 1 running, 340 succeeded, 3 failed, 0 cancelled"));
  CHECK(contains(text, "runner_killed"));
  CHECK_FALSE(statusHealthy(st));
  st["run"]["state"] = "running";
  CHECK(statusHealthy(st));
  st["server"]["state"] = "down";
  CHECK_FALSE(statusHealthy(st));
  CHECK(contains(formatStatus(st, Style{true}), "\x1b[31m"));
}

TEST_CASE("cli status: a minimal status does not throw", "[cli]") {
  CHECK_NOTHROW(formatStatus(json::object(), Style{}));
  CHECK_NOTHROW(formatStatus(json::parse(R"({"models":[{"runner":null}],"memory":{},"server":{"pid":null}})"), Style{}));
}

TEST_CASE("cli timeline table", "[cli]") {
  json tl = json::parse(R"({"rows":[
    {"start":"2026-12-04T20:00:00.000000Z","trials":120,"succeeded":119,"failed":1,"failure_rate":0.008333,
     "p50_ms":850,"p95_ms":2400,"actions":[]},
    {"start":"2026-12-04T20:01:00.000000Z","trials":40,"succeeded":30,"failed":10,"failure_rate":0.25,
     "p50_ms":15000,"p95_ms":61000,"actions":["paused: memory_pressure","runner_killed gemma4:e4b"]},
    {"start":"2026-12-04T20:02:00.000000Z","trials":0,"succeeded":0,"failed":0,"failure_rate":0,
     "p50_ms":null,"p95_ms":null,"actions":["resumed"]}]})");
  std::string text = formatTimeline(tl, 60);
  INFO(text);
  for (const char* h : {"Time", "Trials", "p50", "p95", "Failure rate", "Actions"}) CHECK(contains(text, h));
  CHECK(contains(text, "20:00 "));
  CHECK(contains(text, "850ms"));
  CHECK(contains(text, "2.40s"));
  CHECK(contains(text, "0.8%"));
  CHECK(contains(text, "25.0%"));
  CHECK(contains(text, "1m1s"));
  CHECK(contains(text, "paused: memory_pressure, runner_killed gemma4:e4b"));
  CHECK(contains(text, "resumed"));
  CHECK(contains(formatTimeline(tl, 30), "20:00:00"));
  CHECK(contains(formatTimeline(json::parse(R"({"rows":[]})"), 60), "No trials"));
}

TEST_CASE("cli events and trials formatting", "[cli]") {
  json e = json::parse(R"({"id":3,"at":"2026-12-04T20:00:00Z","kind":"paused","model":"m1","detail":{"reason":"manual"}})");
  CHECK(formatEventLine(e, Style{}) == "2026-12-04T20:00:00Z  paused  m1  reason=manual");
  json list = json::parse(R"({"trials":[{"id":7,"run":"r","model":"m","kind":"generate","state":"failed",
      "submitted_at":"t","error":"boom","attempts":[{"n":1,"outcome":"timeout","latency_ms":1500}]}],"next":null})");
  std::string text = formatTrials(list, Style{});
  CHECK(contains(text, "ID"));
  CHECK(contains(text, "failed"));
  CHECK(contains(text, "boom"));
  std::string one = formatTrial(list["trials"][0], Style{});
  CHECK(contains(one, "Trial 7"));
  CHECK(contains(one, "timeout"));
  CHECK(contains(one, "1.50s"));
}

TEST_CASE("cli submit lines", "[cli]") {
  auto spec = parseSubmitLine(R"({"model":"m","kind":"chat","request":{"messages":[]}})", "r1");
  REQUIRE(spec.ok());
  CHECK((*spec)["kind"] == "chat");
  CHECK((*spec)["run"] == "r1");

  auto body = parseSubmitLine(R"({"model":"m","prompt":"hi","options":{"seed":1},"key":"k1"})", "");
  REQUIRE(body.ok());
  CHECK((*body)["kind"] == "generate");
  CHECK((*body)["model"] == "m");
  CHECK((*body)["key"] == "k1");
  CHECK((*body)["request"] == json::parse(R"({"prompt":"hi","options":{"seed":1}})"));
  CHECK_FALSE(body->contains("run"));

  auto keepRun = parseSubmitLine(R"({"model":"m","kind":"generate","request":{},"run":"mine"})", "other");
  REQUIRE(keepRun.ok());
  CHECK((*keepRun)["run"] == "mine");

  CHECK_FALSE(parseSubmitLine("{not json", "").ok());
  CHECK_FALSE(parseSubmitLine("[1,2]", "").ok());
  CHECK_FALSE(parseSubmitLine(R"({"prompt":"no model"})", "").ok());
  CHECK_FALSE(parseSubmitLine(R"({"model":"m","kind":"embed","request":{}})", "").ok());
  CHECK_FALSE(parseSubmitLine(R"({"model":"m","kind":"generate","request":"x"})", "").ok());
}

TEST_CASE("cli since: durations become ISO times, ISO passes through", "[cli]") {
  auto iso = resolveSince("2026-12-04T20:00:00Z");
  REQUIRE(iso.ok());
  CHECK(*iso == "2026-12-04T20:00:00Z");
  auto rel = resolveSince("2h");
  REQUIRE(rel.ok());
  CHECK(contains(*rel, "T"));
  CHECK_FALSE(resolveSince("yesterday").ok());
}

TEST_CASE("cli run: usage errors exit 2 without contacting the daemon", "[cli]") {
  std::ostringstream out, err;
  CHECK(run({"frobnicate"}, out, err, Terminal{}) == kExitUsage);
  CHECK(contains(err.str(), "unknown command"));
  std::ostringstream out2, err2;
  CHECK(run({"help", "submit"}, out2, err2, Terminal{}) == kExitOk);
  CHECK(contains(out2.str(), "submit FILE.jsonl"));
}

TEST_CASE("service files: rendered paths are quoted for systemd and escaped for the plist", "[cli][install]") {
  ServiceContext ctx;
  ctx.home = "/Users/a&b";
  ctx.uid = 501;
  ctx.binDir = "/opt/my tools/bin";
  ctx.configPath = "/Users/a&b/Library/Application Support/oasisd/oasisd.json";
  std::string unit = renderSystemdUnit("[Service]\nExecStart=%h/.local/bin/oasisd --config x\nRestart=on-failure\n", ctx);
  CHECK(unit ==
        "[Service]\nExecStart=\"/opt/my tools/bin/oasisd\" --config \"/Users/a&b/Library/Application "
        "Support/oasisd/oasisd.json\"\nRestart=on-failure\n");
  std::string plist = renderLaunchdPlist(
      "<string>@BIN@/oasisd</string><string>@HOME@/Library/Application Support/oasisd/oasisd.json</string>", ctx);
  CHECK(plist ==
        "<string>/opt/my tools/bin/oasisd</string><string>/Users/a&amp;b/Library/Application "
        "Support/oasisd/oasisd.json</string>");
  // An explicit config elsewhere replaces the template's default path.
  ctx.configPath = "/etc/oasisd.json";
  CHECK(renderLaunchdPlist("<string>@HOME@/Library/Application Support/oasisd/oasisd.json</string>", ctx) ==
        "<string>/etc/oasisd.json</string>");
  ctx.manager = ServiceManager::Launchd;
  auto steps = installPlan(ctx);
  REQUIRE(steps.back().kind == ServiceStep::Kind::Run);
  CHECK(steps.back().argv == std::vector<std::string>{"launchctl", "kickstart", "-k", "gui/501/com.oasis.oasisd"});
  CHECK(uninstallPlan(ctx).front().mayFail);
}
