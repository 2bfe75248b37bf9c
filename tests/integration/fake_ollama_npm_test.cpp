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

using oasis::test::runShell;

TEST_CASE("fake-ollama: the official ollama npm client works against it", "[fake_ollama][npm]") {
  std::string why;
  if (oasis::test::runShell("command -v node").first != 0) {
    WARN("node/npm not installed: skipping the ollama-js conformance test");
    return;
  }
  INFO(why);
  REQUIRE(oasis::test::ensureOllamaJs(why));
  const std::string dir = std::string(OASIS_SOURCE_DIR) + "/tests/npm";
  oasis::test::FakeOllama fo;
  auto [code, out] = runShell("cd '" + dir + "' && OLLAMA_HOST=http://127.0.0.1:" + std::to_string(fo.port()) +
                         " node conformance.mjs");
  INFO(out);
  INFO("fake-ollama log:\n" << fo.log());
  CHECK(code == 0);
  CHECK(out.find("steps passed") != std::string::npos);
}
