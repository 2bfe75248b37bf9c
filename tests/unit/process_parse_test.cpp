#include <cstring>

#include "catch.h"
#include "common/process_parse.h"
#include "common/runner_classify.h"

using namespace oasis;
using namespace std::chrono_literals;

TEST_CASE("/proc/<pid>/stat: comm with spaces and parentheses", "[process_parse]") {
  // 52 fields as on a 6.x kernel; comm "(weird) name)" exercises the last-')' rule.
  const std::string text =
      "4242 ((weird) name)) S 4000 4242 4000 0 -1 4194560 60574 0 0 0 150 50 0 0 20 0 8 0 987654 "
      "1234567890 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
  auto st = parseProcStat(text);
  REQUIRE(st.ok());
  CHECK(st->pid == 4242);
  CHECK(st->comm == "(weird) name)");
  CHECK(st->state == 'S');
  CHECK(st->ppid == 4000);
  CHECK(st->pgrp == 4242);
  CHECK(st->session == 4000);
  CHECK(st->utimeTicks == 150);
  CHECK(st->stimeTicks == 50);
  CHECK(st->startTimeTicks == 987654);
  CHECK(st->vsizeBytes == 1234567890);
  CHECK(st->rssPages == 2048);

  auto captured = parseProcStat("1 (process_api) S 0 0 0 0 -1 4194560 60574 0 0 0 1 2 0 0 20 0 1 0 5 100 10 0 0 0");
  REQUIRE(captured.ok());
  CHECK(captured->comm == "process_api");
  CHECK(captured->startTimeTicks == 5);

  CHECK_FALSE(parseProcStat("").ok());
  CHECK_FALSE(parseProcStat("12 (x) S 1 2 3").ok());
  CHECK_FALSE(parseProcStat("abc (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 100 10 0").ok());
  auto bad = parseProcStat("12 (x) S one 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 100 10 0");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("non-numeric"));
}

TEST_CASE("NUL-separated lists and environ", "[process_parse]") {
  using namespace std::string_literals;
  CHECK(splitNulSeparated("ollama\0runner\0--model\0/blob\0"s) ==
        std::vector<std::string>{"ollama", "runner", "--model", "/blob"});
  CHECK(splitNulSeparated("").empty());
  CHECK(splitNulSeparated("a"s) == std::vector<std::string>{"a"});
  CHECK(splitNulSeparated("a\0\0b\0"s) == std::vector<std::string>{"a", "", "b"});

  auto env = parseEnvironEntries(splitNulSeparated("PATH=/bin\0OLLAMA_FLASH_ATTENTION=0\0junk\0=x\0A=1=2\0PATH=/usr/bin\0"s));
  CHECK(env.size() == 3);
  CHECK(env.at("PATH") == "/bin");  // first wins, as Go's os.Getenv sees it
  CHECK(env.at("OLLAMA_FLASH_ATTENTION") == "0");
  CHECK(env.at("A") == "1=2");
}

TEST_CASE("/proc/net/tcp and tcp6", "[process_parse]") {
  const std::string tcp =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 "
      "0000000000000000 100 0 0 10 0\n"
      "   1: 0100007F:A1B2 0100007F:2CAA 01 00000000:00000000 00:00000000 00000000  1000        0 654321 1 "
      "0000000000000000 20 4 30 10 -1\n";
  auto entries = parseProcNetTcp(tcp);
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 2);
  CHECK((*entries)[0].localPort == 11434);
  CHECK((*entries)[0].state == kTcpStateListen);
  CHECK((*entries)[0].inode == 123456);
  CHECK((*entries)[1].state == 1);

  const std::string tcp6 =
      "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
      "tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000001000000:2CAA 00000000000000000000000000000000:0000 0A 00000000:00000000 "
      "00:00000000 00000000  1000        0 777 1 0000000000000000 100 0 0 10 0\n";
  auto six = parseProcNetTcp(tcp6);
  REQUIRE(six.ok());
  REQUIRE(six->size() == 1);
  CHECK((*six)[0].localPort == 11434);
  CHECK((*six)[0].inode == 777);

  auto bad = parseProcNetTcp("  sl  local_address rem_address st\n   0: 0100007F:ZZZZ 00000000:0000 0A 0 0 0 1000 0 5\n");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("line 2"));
}

namespace {
std::string procargs(int argc, const std::string& path, std::size_t pad, const std::vector<std::string>& strings) {
  std::string buf(sizeof(int), '\0');
  std::memcpy(buf.data(), &argc, sizeof argc);
  buf += path;
  buf += std::string(1 + pad, '\0');
  for (const auto& s : strings) {
    buf += s;
    buf += '\0';
  }
  return buf;
}
}  // namespace

TEST_CASE("macOS KERN_PROCARGS2 layout", "[process_parse]") {
  auto buf = procargs(2, "/Applications/Ollama.app/Contents/Resources/ollama", 5,
                      {"/Applications/Ollama.app/Contents/Resources/ollama", "serve", "HOME=/Users/me",
                       "OLLAMA_FLASH_ATTENTION=false", "", "ptr_munge=", "main_stack="});
  auto args = parseProcArgs2(buf);
  REQUIRE(args.ok());
  CHECK(args->execPath == "/Applications/Ollama.app/Contents/Resources/ollama");
  CHECK(args->argv == std::vector<std::string>{"/Applications/Ollama.app/Contents/Resources/ollama", "serve"});
  CHECK(args->env == std::vector<std::string>{"HOME=/Users/me", "OLLAMA_FLASH_ATTENTION=false"});

  SECTION("environment withheld by the kernel") {
    auto noEnv = parseProcArgs2(procargs(1, "/bin/sleep", 0, {"sleep"}));
    REQUIRE(noEnv.ok());
    CHECK(noEnv->argv == std::vector<std::string>{"sleep"});
    CHECK(noEnv->env.empty());
  }
  SECTION("truncated or corrupt buffers") {
    CHECK_FALSE(parseProcArgs2("ab").ok());
    CHECK_FALSE(parseProcArgs2(procargs(3, "/bin/x", 0, {"x"})).ok());
    CHECK_FALSE(parseProcArgs2(procargs(-1, "/bin/x", 0, {"x"})).ok());
    std::string noNul(sizeof(int), '\0');
    int one = 1;
    std::memcpy(noNul.data(), &one, sizeof one);
    noNul += "/bin/x-without-terminator";
    CHECK_FALSE(parseProcArgs2(noNul).ok());
  }
}

TEST_CASE("runner classification: the three Ollama eras and fake-ollama", "[runner]") {
  auto era = [](std::vector<std::string> argv) { return classifyRunner(argv); };

  auto b = era({"/usr/local/bin/ollama", "runner", "--ollama-engine", "--model", "/blobs/sha256-5ff0", "--port", "35375"});
  REQUIRE(b);
  CHECK(b->kind == RunnerKind::OllamaRunner);
  CHECK(b->model == "/blobs/sha256-5ff0");

  auto mlx = era({"ollama", "runner", "--mlx-engine", "--model", "gemma4:e4b", "--port", "1"});
  REQUIRE(mlx);
  CHECK(mlx->kind == RunnerKind::OllamaRunner);
  CHECK(mlx->model == "gemma4:e4b");

  auto c = era({"/usr/lib/ollama/llama-server", "--model", "/b/sha256-1", "--port", "4", "--flash-attn", "on"});
  REQUIRE(c);
  CHECK(c->kind == RunnerKind::LlamaServer);

  auto a = era({"/tmp/ollama123/runners/metal/ollama_llama_server", "--model", "/b/x", "--ctx-size", "2048"});
  REQUIRE(a);
  CHECK(a->kind == RunnerKind::OllamaLlamaServer);

  auto fake = era({"/build/tests/fake-ollama", "runner", "--model=llama3:8b", "--port", "5", "--flash-attn", "off"});
  REQUIRE(fake);
  CHECK(fake->kind == RunnerKind::FakeOllamaRunner);
  CHECK(fake->model == "llama3:8b");

  auto other = era({"/opt/custom-runner", "--model", "m"});
  REQUIRE(other);
  CHECK(other->kind == RunnerKind::Other);

  // Not model runners: discovery processes and serve itself.
  CHECK_FALSE(era({"ollama", "runner", "--ollama-engine", "--port", "5"}));
  CHECK_FALSE(era({"llama-server", "--list-devices"}));
  CHECK_FALSE(era({"llama-server", "--port", "1", "--host", "127.0.0.1", "--no-webui", "--offline", "--verbose"}));
  CHECK_FALSE(era({"ollama", "serve"}));
  CHECK_FALSE(era({}));
  // argv[0] is never an option.
  CHECK_FALSE(era({"--model"}));

  CHECK(isRunnerOf(100, 100, {"ollama", "runner", "--model", "x"}));
  CHECK_FALSE(isRunnerOf(1, 100, {"ollama", "runner", "--model", "x"}));  // orphan: not serve's child
  CHECK_FALSE(isRunnerOf(100, 100, {"ollama", "serve"}));
  CHECK(toString(RunnerKind::LlamaServer) == "llama-server");
}

TEST_CASE("Go strconv.ParseBool and Ollama's OLLAMA_FLASH_ATTENTION", "[runner]") {
  for (const char* t : {"1", "t", "T", "TRUE", "true", "True"}) CHECK(goParseBool(t) == true);
  for (const char* f : {"0", "f", "F", "FALSE", "false", "False"}) CHECK(goParseBool(f) == false);
  for (const char* x : {"", "on", "off", "yes", "no", "tRUE", "2", " 1"}) CHECK_FALSE(goParseBool(x));

  CHECK(flashAttentionFromEnvValue(std::nullopt) == FlashAttention::Unset);
  CHECK(flashAttentionFromEnvValue(std::string("")) == FlashAttention::Unset);
  CHECK(flashAttentionFromEnvValue(std::string("  ")) == FlashAttention::Unset);
  CHECK(flashAttentionFromEnvValue(std::string("0")) == FlashAttention::Off);
  CHECK(flashAttentionFromEnvValue(std::string("false")) == FlashAttention::Off);
  CHECK(flashAttentionFromEnvValue(std::string("1")) == FlashAttention::On);
  CHECK(flashAttentionFromEnvValue(std::string("True")) == FlashAttention::On);
  // The trap: any non-boolean value means ON.
  CHECK(flashAttentionFromEnvValue(std::string("off")) == FlashAttention::On);
  CHECK(flashAttentionFromEnvValue(std::string("no")) == FlashAttention::On);
  CHECK(flashAttentionFromEnvValue(std::string("disabled")) == FlashAttention::On);
  // envconfig.Var trims spaces, then quotes.
  CHECK(flashAttentionFromEnvValue(std::string(" \"0\" ")) == FlashAttention::Off);
  CHECK(flashAttentionFromEnvValue(std::string("'false'")) == FlashAttention::Off);

  CHECK(flashAttentionFromEnv({{"OLLAMA_FLASH_ATTENTION", "0"}}) == FlashAttention::Off);
  CHECK(flashAttentionFromEnv({{"PATH", "/bin"}}) == FlashAttention::Unset);
  CHECK(toString(FlashAttention::Unset) == "unset");
  CHECK(toString(FlashAttention::On) == "on");
}

TEST_CASE("flash attention from a runner's argv", "[runner]") {
  using V = std::vector<std::string>;
  CHECK(flashAttentionFromArgv(V{"llama-server", "--model", "m", "--flash-attn", "on"}) == FlashAttention::On);
  CHECK(flashAttentionFromArgv(V{"llama-server", "--flash-attn", "off", "--model", "m"}) == FlashAttention::Off);
  CHECK(flashAttentionFromArgv(V{"llama-server", "--flash-attn", "auto"}) == FlashAttention::Auto);
  CHECK(flashAttentionFromArgv(V{"llama-server", "--flash-attn=off"}) == FlashAttention::Off);
  CHECK(flashAttentionFromArgv(V{"llama-server", "-fa", "on"}) == FlashAttention::On);
  CHECK(flashAttentionFromArgv(V{"ollama_llama_server", "--model", "m", "--flash-attn", "--port", "1"}) ==
        FlashAttention::On);
  CHECK(flashAttentionFromArgv(V{"ollama_llama_server", "--model", "m", "--flash-attn"}) == FlashAttention::On);
  CHECK(flashAttentionFromArgv(V{"llama-server", "--flash-attn", "maybe"}) == FlashAttention::Unknown);
  CHECK(flashAttentionFromArgv(V{"ollama", "runner", "--model", "m"}) == FlashAttention::Unset);
  CHECK(flashAttentionFromArgv(V{"--flash-attn", "on"}) == FlashAttention::Unset);  // argv[0] is the program
}

TEST_CASE("cpuPercent from two samples", "[runner]") {
  const SteadyTime t0 = SteadyTime{} + 10s;
  CHECK(cpuPercent(1.0, t0, 1.5, t0 + 1s) == Approx(50.0));
  CHECK(cpuPercent(1.0, t0, 9.0, t0 + 2s) == Approx(400.0));  // four busy cores
  CHECK(cpuPercent(1.0, t0, 1.0, t0 + 2s) == 0.0);
  CHECK(cpuPercent(1.0, t0, 2.0, t0) == 0.0);        // no time passed
  CHECK(cpuPercent(5.0, t0, 1.0, t0 + 1s) == 0.0);   // counter went backwards
  CHECK(cpuPercent(1.0, t0 + 1s, 2.0, t0) == 0.0);   // samples out of order
  CHECK(cpuPercent(0.0, t0, 0.25, t0 + 500ms) == Approx(50.0));
}
