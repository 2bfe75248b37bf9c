#pragma once
// Small helpers shared by every test: temporary directories and bounded waits on conditions
// (tests never sleep a fixed time to paper over a race; they poll a condition until a deadline).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

namespace oasis::test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "oasis-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `cond` every `step` until it holds or `timeout` passes; returns whether it held.
inline bool waitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
                    std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

// Runs a shell command; returns (exit code, combined stdout+stderr).
inline std::pair<int, std::string> runShell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// The official `ollama` npm client, installed from tests/npm's lock file when missing.
// Returns false (with the reason in `why`) when node/npm are absent or npm ci fails.
inline bool ensureOllamaJs(std::string& why) {
  if (runShell("command -v node").first != 0 || runShell("command -v npm").first != 0) {
    why = "node/npm not installed";
    return false;
  }
  const std::string dir = std::string(OASIS_SOURCE_DIR) + "/tests/npm";
  if (!std::filesystem::exists(dir + "/node_modules/ollama/package.json")) {
    auto [code, out] = runShell("cd '" + dir + "' && npm ci --no-audit --no-fund");
    if (code != 0) {
      why = "npm ci failed:\n" + out;
      return false;
    }
  }
  return true;
}

}  // namespace oasis::test
