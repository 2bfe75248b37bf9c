#include <cstdio>
#include <fstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "catch.h"
#include "common/config.h"

using namespace oasis;

namespace {

bool hasProblem(const ConfigLoad& load, const std::string& key, const std::string& fragment = "") {
  for (const auto& p : load.problems) {
    if (p.key == key && p.message.find(fragment) != std::string::npos) return true;
  }
  return false;
}

std::string dump(const ConfigLoad& load) { return formatConfigProblems(load.problems); }

}  // namespace

TEST_CASE("config: empty text is the documented defaults", "[config]") {
  for (const char* text : {"", "  \n", "{}", "// nothing here\n{}\n"}) {
    auto load = parseConfig(text);
    INFO(dump(load));
    REQUIRE(load.ok());
    const Config& c = load.config;
    CHECK(c == Config{});
    // The contract's defaults (contracts/config.md), verbatim.
    CHECK_FALSE(c.maxConcurrency.isAuto);
    CHECK(c.maxConcurrency.value == 4);
    CHECK(c.requestTimeoutS == 60);
    CHECK(c.ollamaEvictThreshold == 3);
    CHECK(c.firstTokenTimeoutS == 30);
    CHECK(c.stallTimeoutS == 15);
    CHECK(c.maxAttempts == 3);
    CHECK(c.stoppingGraceS == 10);
    CHECK(c.psIntervalS == 2);
    CHECK(c.memory.intervalS == 1);
    CHECK(c.ollama.mode == OllamaConfig::Mode::Managed);
    CHECK(c.ollama.url == "http://127.0.0.1:11434");
    CHECK(c.ollama.command == std::vector<std::string>{"ollama", "serve"});
    CHECK(c.ollama.flashAttention == OllamaConfig::FlashAttention::Auto);
    CHECK_FALSE(c.ollama.flashAttentionFixedIn);
    CHECK(c.memory.source.kind == MemorySourceConfig::Kind::Auto);
    CHECK(c.memory.freeDropFactor == 10);
    CHECK(c.memory.windowS == 900);
    CHECK(c.memory.onCritical == MemoryConfig::OnCritical::Pause);
    CHECK(c.preflight.minFreeGbFor("gemma4:e4b") == 8);
    CHECK(c.preflight.minFreeGbFor("llama3:8b") == 4);
    CHECK(c.preflight.mode == PreflightConfig::Mode::Block);
    // Supervisor extras.
    CHECK(c.maxBodyBytes == 8u << 20);
    CHECK(c.queueLimit == 100000);
    CHECK(c.log.level == "info");
    CHECK_FALSE(c.tcpListener.enabled);
    CHECK(c.tcpListener.address == "127.0.0.1");
    CHECK_FALSE(c.security.allowGroup);
    CHECK_FALSE(c.socketPath);
  }
}

TEST_CASE("config: a full file with comments parses", "[config]") {
  const char* text = R"(// oasisd config
{
  "socket_path": "/tmp/oasisd-test/oasisd.sock",  // trailing comment
  /* block comment */
  "max_concurrency": 2,
  "request_timeout_s": 120,
  "first_token_timeout_s": 45.5,
  "stall_timeout_s": 0.25,
  "ps_interval_s": 0.1,
  "ollama": {
    "mode": "attach",
    "url": "http://127.0.0.1:11500",
    "command": ["/opt/homebrew/bin/ollama", "serve"],
    "env": {"OLLAMA_KEEP_ALIVE": "10m", "OLLAMA_NUM_PARALLEL": "1"},
    "flash_attention": "off",
    "flash_attention_fixed_in": "0.40.0",
    "restart": {"initial_backoff_s": 0.5, "max_backoff_s": 8, "max_fast_failures": 3}
  },
  "memory": {
    "source": {"kind": "file", "path": "/tmp/vm.txt", "format": "vm_stat"},
    "interval_s": 0.05,
    "pause_below_available_gb": 1.5,
    "resume_above_available_gb": 3,
    "swapout_rate_pause": null,
    "on_critical": "pause_and_evict",
    "resume_hold_s": 0.5
  },
  "preflight": {"min_free_gb": {"llama3:70b": 48}, "mode": "warn"},
  "tcp_listener": {"enabled": true, "port": 0, "control": false},
  "security": {"allow_group": "staff"},
  "log": {"level": "debug", "file": "/tmp/oasisd.log"}
})";
  auto load = parseConfig(text);
  INFO(dump(load));
  REQUIRE(load.ok());
  const Config& c = load.config;
  CHECK(c.socketPath == "/tmp/oasisd-test/oasisd.sock");
  CHECK(c.maxConcurrency.value == 2);
  CHECK(c.firstTokenTimeoutS == 45.5);
  CHECK(c.stallTimeoutS == 0.25);
  CHECK(c.psIntervalS == Approx(0.1));
  CHECK(c.ollama.mode == OllamaConfig::Mode::Attach);
  CHECK(c.ollama.command.front() == "/opt/homebrew/bin/ollama");
  CHECK(c.ollama.env.at("OLLAMA_KEEP_ALIVE") == "10m");
  CHECK(c.ollama.flashAttention == OllamaConfig::FlashAttention::Off);
  CHECK(c.ollama.flashAttentionFixedIn == "0.40.0");
  CHECK(c.ollama.restart.initialBackoffS == 0.5);
  CHECK(c.ollama.restart.maxFastFailures == 3);
  CHECK(c.ollama.restart.healthyResetS == RestartConfig{}.healthyResetS);  // untouched key keeps its default
  CHECK(c.memory.source.kind == MemorySourceConfig::Kind::File);
  CHECK(c.memory.source.path == "/tmp/vm.txt");
  CHECK(c.memory.intervalS == Approx(0.05));
  CHECK_FALSE(c.memory.swapoutRatePause);
  CHECK(c.memory.onCritical == MemoryConfig::OnCritical::PauseAndEvict);
  CHECK(c.memory.pauseBelowAvailableBytes() == static_cast<uint64_t>(1.5 * (1ull << 30)));
  // The preflight table overlays the defaults.
  CHECK(c.preflight.minFreeGbFor("llama3:70b") == 48);
  CHECK(c.preflight.minFreeGbFor("gemma4:e4b") == 8);
  CHECK(c.preflight.minFreeGbFor("other") == 4);
  CHECK(c.preflight.mode == PreflightConfig::Mode::Warn);
  CHECK(c.tcpListener.enabled);
  CHECK(c.tcpListener.port == 0);
  CHECK(c.security.allowGroup == "staff");
  CHECK(c.log.level == "debug");
}

TEST_CASE("config: max_concurrency accepts a positive int or \"auto\"", "[config]") {
  auto autoLoad = parseConfig(R"({"max_concurrency": "auto"})");
  REQUIRE(autoLoad.ok());
  CHECK(autoLoad.config.maxConcurrency.isAuto);
  CHECK(autoLoad.config.maxConcurrency.resolve(/*isAppleSilicon=*/true) == 1);
  CHECK(autoLoad.config.maxConcurrency.resolve(/*isAppleSilicon=*/false) == 4);

  auto fixed = parseConfig(R"({"max_concurrency": 8})");
  REQUIRE(fixed.ok());
  CHECK(fixed.config.maxConcurrency.resolve(true) == 8);
  CHECK(parseConfig(R"({"max_concurrency": 8.0})").ok());

  for (const char* bad : {R"({"max_concurrency": 0})", R"({"max_concurrency": -2})", R"({"max_concurrency": 2.5})",
                          R"({"max_concurrency": "AUTO"})", R"({"max_concurrency": "4"})",
                          R"({"max_concurrency": true})", R"({"max_concurrency": 99999999999})"}) {
    auto load = parseConfig(bad);
    INFO(bad);
    CHECK_FALSE(load.ok());
    CHECK(load.problems.size() == 1);
    CHECK(load.problems.at(0).key == "max_concurrency");
  }
}

TEST_CASE("config: unknown keys at every level are errors, with a suggestion", "[config]") {
  auto load = parseConfig(R"({
    "memory": {"windw_s": 60, "source": {"kind": "auto", "path": "/x"}},
    "ollama": {"restart": {"max_backof_s": 3}, "colour": "blue"},
    "tcp_listener": {"adress": "127.0.0.1"},
    "stall_timout_s": 5,
    "zzz": 1
  })");
  INFO(dump(load));
  REQUIRE_FALSE(load.ok());
  CHECK(hasProblem(load, "memory.windw_s", "unknown key 'memory.windw_s'"));
  CHECK(hasProblem(load, "memory.windw_s", "did you mean 'memory.window_s'"));
  CHECK(hasProblem(load, "memory.source.path", "not valid for kind \"auto\""));
  CHECK(hasProblem(load, "ollama.restart.max_backof_s", "did you mean 'ollama.restart.max_backoff_s'"));
  CHECK(hasProblem(load, "ollama.colour", "unknown key"));
  CHECK(hasProblem(load, "tcp_listener.adress", "did you mean 'tcp_listener.address'"));
  CHECK(hasProblem(load, "stall_timout_s", "did you mean 'stall_timeout_s'"));
  CHECK(hasProblem(load, "zzz", "unknown key 'zzz'"));
  CHECK(load.problems.size() == 7);
  CHECK_THAT(dump(load), Catch::Contains("unknown key 'memory.windw_s' (did you mean 'memory.window_s'?)"));
}

TEST_CASE("config: type errors name the key", "[config]") {
  auto load = parseConfig(R"({
    "request_timeout_s": "60",
    "max_attempts": 2.5,
    "socket_path": 7,
    "ollama": {"command": "ollama serve", "env": {"A": 1, "B": "ok"}, "mode": "supervise",
               "flash_attention": false},
    "memory": {"source": {"kind": "vm_stat_command", "argv": ["vm_stat", 3]}, "on_critical": "evict"},
    "tcp_listener": {"enabled": "yes"},
    "preflight": {"min_free_gb": {"gemma4:e4b": "8"}},
    "cpu_spill": []
  })");
  INFO(dump(load));
  CHECK(hasProblem(load, "request_timeout_s", "expected a number (got string \"60\")"));
  CHECK(hasProblem(load, "max_attempts", "expected an integer"));
  CHECK(hasProblem(load, "socket_path", "expected a string or null"));
  CHECK(hasProblem(load, "ollama.command", "expected an array of strings"));
  CHECK(hasProblem(load, "ollama.env.A", "expected a string"));
  CHECK(hasProblem(load, "ollama.mode", "must be one of \"managed\", \"attach\""));
  CHECK(hasProblem(load, "ollama.flash_attention", "must be one of"));
  CHECK(hasProblem(load, "memory.source.argv[1]", "expected a string"));
  CHECK(hasProblem(load, "memory.on_critical", "\"pause\", \"pause_and_evict\""));
  CHECK(hasProblem(load, "tcp_listener.enabled", "true or false"));
  CHECK(hasProblem(load, "preflight.min_free_gb.gemma4:e4b", "expected a number"));
  CHECK(hasProblem(load, "cpu_spill", "expected an object"));
}

TEST_CASE("config: ranges and cross-field rules", "[config]") {
  auto load = parseConfig(R"({
    "stall_timeout_s": 0,
    "request_timeout_s": -1,
    "ps_interval_s": 5000,
    "max_attempts": 0,
    "queue_limit": 0,
    "max_body_bytes": 10,
    "socket_path": "/Users/someone/Library/Application Support/oasisd/a/very/long/path/that/goes/on/and/on/and/on/oasisd.sock",
    "ollama": {"url": "https://127.0.0.1:11434", "command": [], "flash_attention_fixed_in": "soon",
               "restart": {"initial_backoff_s": 10, "max_backoff_s": 5, "max_fast_failures": 0}},
    "memory": {"pause_below_available_gb": 4, "resume_above_available_gb": 2, "free_drop_factor": 1,
               "window_s": 0.5, "interval_s": 1, "swapout_rate_pause": 0, "resume_hold_s": -1,
               "source": {"kind": "file", "path": "", "format": "json"}},
    "cpu_spill": {"factor": 0.5, "min_samples": 0},
    "log": {"level": "verbose"},
    "tcp_listener": {"address": "0.0.0.0", "port": 70000},
    "retry": {"initial_backoff_s": 2, "max_backoff_s": 1}
  })");
  INFO(dump(load));
  REQUIRE_FALSE(load.ok());
  CHECK(hasProblem(load, "stall_timeout_s", "must be > 0 (got 0)"));
  CHECK(hasProblem(load, "request_timeout_s", "must be > 0"));
  CHECK(hasProblem(load, "ps_interval_s", "milliseconds"));
  CHECK(hasProblem(load, "max_attempts", "must be >= 1"));
  CHECK(hasProblem(load, "queue_limit", "must be >= 1"));
  CHECK(hasProblem(load, "max_body_bytes", "between"));
  CHECK(hasProblem(load, "socket_path", "sun_path"));
  CHECK(hasProblem(load, "ollama.url", "http://"));
  CHECK(hasProblem(load, "ollama.command", "non-empty"));
  CHECK(hasProblem(load, "ollama.flash_attention_fixed_in", "version"));
  CHECK(hasProblem(load, "ollama.restart.max_backoff_s", ">= ollama.restart.initial_backoff_s"));
  CHECK(hasProblem(load, "ollama.restart.max_fast_failures", ">= 1"));
  CHECK(hasProblem(load, "memory.resume_above_available_gb", ">= memory.pause_below_available_gb"));
  CHECK(hasProblem(load, "memory.free_drop_factor", "> 1"));
  CHECK(hasProblem(load, "memory.window_s", ">= memory.interval_s"));
  CHECK(hasProblem(load, "memory.swapout_rate_pause", "> 0"));
  CHECK(hasProblem(load, "memory.resume_hold_s", ">= 0"));
  CHECK(hasProblem(load, "memory.source.path", "empty"));
  CHECK(hasProblem(load, "memory.source.format", "vm_stat"));
  CHECK(hasProblem(load, "cpu_spill.factor", "> 1"));
  CHECK(hasProblem(load, "cpu_spill.min_samples", ">= 1"));
  CHECK(hasProblem(load, "log.level", "debug"));
  CHECK(hasProblem(load, "tcp_listener.address", "loopback"));
  CHECK(hasProblem(load, "tcp_listener.port", "<= 65535"));
  CHECK(hasProblem(load, "retry.max_backoff_s", ">= retry.initial_backoff_s"));
  // Every problem is reported at once.
  CHECK(load.problems.size() == 25);
}

TEST_CASE("config: security slowloris bounds default to 30/120 s and must be positive", "[config]") {
  auto defaults = parseConfig("");
  REQUIRE(defaults.ok());
  CHECK(defaults.config.security.readTimeoutS == 30);
  CHECK(defaults.config.security.idleTimeoutS == 120);
  auto fast = parseConfig(R"({"security": {"allow_group": "1234", "read_timeout_s": 0.5, "idle_timeout_s": 2}})");
  REQUIRE(fast.ok());
  CHECK(fast.config.security.readTimeoutS == 0.5);
  CHECK(fast.config.security.idleTimeoutS == 2);
  auto bad = parseConfig(R"({"security": {"read_timeout_s": 0, "idle_timeout_s": -1}})");
  CHECK(hasProblem(bad, "security.read_timeout_s"));
  CHECK(hasProblem(bad, "security.idle_timeout_s"));
}

TEST_CASE("config: JSON syntax errors, non-objects and duplicates", "[config]") {
  auto syntax = parseConfig("{\n  \"stall_timeout_s\": 5,\n}\n");
  REQUIRE(syntax.problems.size() == 1);
  CHECK(syntax.problems[0].key.empty());
  CHECK_THAT(syntax.problems[0].message, Catch::Contains("invalid JSON"));
  CHECK_THAT(syntax.problems[0].message, Catch::Contains("line 3"));

  auto array = parseConfig("[1, 2]");
  REQUIRE_FALSE(array.ok());
  CHECK_THAT(array.problems[0].message, Catch::Contains("must be a JSON object"));

  auto dup = parseConfig(R"({"memory": {"window_s": 60, "window_s": 600}, "ollama": {"command": ["a"]},
                             "ollama": {"mode": "attach"}})");
  INFO(dump(dup));
  CHECK(hasProblem(dup, "memory.window_s", "duplicate key 'memory.window_s'"));
  CHECK(hasProblem(dup, "ollama", "duplicate key 'ollama'"));
}

TEST_CASE("config: memory.source kinds", "[config]") {
  auto cmd = parseConfig(R"({"memory": {"source": {"kind": "vm_stat_command", "argv": ["/usr/bin/vm_stat"], "timeout_s": 2}}})");
  REQUIRE(cmd.ok());
  CHECK(cmd.config.memory.source.kind == MemorySourceConfig::Kind::VmStatCommand);
  CHECK(cmd.config.memory.source.argv == std::vector<std::string>{"/usr/bin/vm_stat"});
  CHECK(cmd.config.memory.source.timeoutS == 2);

  auto noKind = parseConfig(R"({"memory": {"source": {"path": "/x"}}})");
  CHECK(hasProblem(noKind, "memory.source.kind", "required"));
  auto noPath = parseConfig(R"({"memory": {"source": {"kind": "file"}}})");
  CHECK(hasProblem(noPath, "memory.source.path", "required"));
  auto badKind = parseConfig(R"({"memory": {"source": {"kind": "sysctl", "argv": []}}})");
  INFO(dump(badKind));
  CHECK(badKind.problems.size() == 1);
  CHECK(hasProblem(badKind, "memory.source.kind", "must be one of"));
  auto fileArgv = parseConfig(R"({"memory": {"source": {"kind": "file", "path": "/x", "argv": ["vm_stat"]}}})");
  CHECK(hasProblem(fileArgv, "memory.source.argv", "not valid for kind \"file\""));
}

TEST_CASE("config: effective config JSON round-trips", "[config]") {
  auto load = parseConfig(R"({"max_concurrency": "auto", "memory": {"source": {"kind": "vm_stat_command"},
                              "swapout_rate_pause": null}, "ollama": {"env": {"X": "1"}},
                              "log": {"file": "/tmp/x.log"}})");
  REQUIRE(load.ok());
  nlohmann::json effective = configToJson(load.config);
  CHECK(effective["max_concurrency"] == "auto");
  CHECK(effective["memory"]["source"]["argv"] == nlohmann::json::array({"vm_stat"}));
  CHECK(effective["memory"]["swapout_rate_pause"].is_null());
  CHECK(effective["socket_path"].is_null());
  CHECK(effective["ollama"]["restart"]["max_fast_failures"] == 5);
  auto again = parseConfig(effective.dump(2));
  INFO(dump(again));
  REQUIRE(again.ok());
  CHECK(again.config == load.config);

  auto defaults = parseConfig(configToJson(Config{}).dump());
  REQUIRE(defaults.ok());
  CHECK(defaults.config == Config{});
}

TEST_CASE("config: loadConfigFile", "[config]") {
  auto missing = loadConfigFile("/nonexistent/oasisd.json");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.problems[0].message, Catch::Contains("cannot open"));

  char path[] = "/tmp/oasis-config-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "// test\n{\"stall_timeout_s\": 7}\n";
  }
  auto load = loadConfigFile(path);
  std::remove(path);
  REQUIRE(load.ok());
  CHECK(load.config.stallTimeoutS == 7);
}

TEST_CASE("config: parseHttpUrl", "[config]") {
  auto a = parseHttpUrl("http://127.0.0.1:11434");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 11434);
  auto b = parseHttpUrl("http://localhost/");
  REQUIRE(b.ok());
  CHECK(b->port == 80);
  auto c = parseHttpUrl("http://[::1]:8080");
  REQUIRE(c.ok());
  CHECK(c->host == "::1");
  CHECK(c->port == 8080);
  CHECK_FALSE(parseHttpUrl("http://host:0").ok());
  CHECK_FALSE(parseHttpUrl("http://host:99999").ok());
  CHECK_FALSE(parseHttpUrl("http://host:12ab").ok());
  CHECK_FALSE(parseHttpUrl("http://host:1/api").ok());
  CHECK_FALSE(parseHttpUrl("http://:1").ok());
  CHECK_FALSE(parseHttpUrl("127.0.0.1:11434").ok());
}
