// The process-table parsers (common/process_parse.cpp, common/runner_classify.cpp): what oasisd
// reads from /proc/<pid>/stat, /proc/<pid>/cmdline and environ, /proc/net/tcp (attach mode
// finds serve's pid from its port) and the macOS KERN_PROCARGS2 buffer, then the runner rule
// (direct child with --model) and the flash-attention reading of argv and environment. These
// decide which process may receive kill -9, so a parse must never invent a value: the checks
// below hold the parsed fields to the bytes they came from.
#include <cstdint>
#include <string_view>

#include "common/process_parse.h"
#include "common/runner_classify.h"
#include "fuzz_check.h"

using namespace oasis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto st = parseProcStat(text)) {
    // comm sits between the first '(' and the last ')'.
    FUZZ_CHECK(st->comm.size() + 2 <= size);
    FUZZ_CHECK(text.find('(') != std::string_view::npos && text.rfind(')') != std::string_view::npos);
  }

  auto parts = splitNulSeparated(text);
  std::size_t total = 0;
  for (auto& p : parts) {
    FUZZ_CHECK(p.find('\0') == std::string::npos);
    total += p.size() + 1;
  }
  FUZZ_CHECK(total <= size + 1);
  auto env = parseEnvironEntries(parts);
  for (auto& [k, v] : env) FUZZ_CHECK(k.find('=') == std::string::npos);
  (void)flashAttentionFromEnv(env);

  if (auto cls = classifyRunner(parts)) {
    // A runner always names its model in argv.
    bool named = false;
    for (auto& a : parts)
      if (a.find("--model") != std::string::npos || a == cls->model) named = true;
    FUZZ_CHECK(named);
  }
  (void)flashAttentionFromArgv(parts);
  if (!parts.empty()) (void)goParseBool(parts[0]);

  if (auto rows = parseProcNetTcp(text)) {
    for (auto& r : *rows) FUZZ_CHECK(r.state >= 0);
  }

  if (auto args = parseProcArgs2(text)) {
    FUZZ_CHECK(args->execPath.size() <= size);
    for (auto& e : args->env) FUZZ_CHECK(e.find('=') != std::string::npos);
  }
  return 0;
}
