// Conformance with a client nobody here wrote: the official `ollama` npm package (pinned in
// tests/npm/package-lock.json) runs list, ps, show, version, generate and chat against
// fake-ollama. Installs the package with `npm ci` when node_modules is missing. Skips (with a
// warning) only when node is not installed.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "catch.h"
#include "support/fake_ollama.h"

namespace {

// Runs a shell command, returns (exit code, combined output).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

TEST_CASE("fake-ollama: the official ollama npm client works against it", "[fake_ollama][npm]") {
  if (run("command -v node").first != 0 || run("command -v npm").first != 0) {
    WARN("node/npm not installed: skipping the ollama-js conformance test");
    return;
  }
  const std::string dir = std::string(OASIS_SOURCE_DIR) + "/tests/npm";
  if (!std::filesystem::exists(dir + "/node_modules/ollama/package.json")) {
    auto [code, out] = run("cd '" + dir + "' && npm ci --no-audit --no-fund");
    INFO(out);
    REQUIRE(code == 0);
  }
  oasis::test::FakeOllama fo;
  auto [code, out] = run("cd '" + dir + "' && OLLAMA_HOST=http://127.0.0.1:" + std::to_string(fo.port()) +
                         " node conformance.mjs");
  INFO(out);
  INFO("fake-ollama log:\n" << fo.log());
  CHECK(code == 0);
  CHECK(out.find("steps passed") != std::string::npos);
}
