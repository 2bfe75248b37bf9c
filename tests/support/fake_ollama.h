#pragma once
// Test helper: runs `fake-ollama serve` as a real child process on a temporary port, and a few
// /proc readers for the runner processes it starts. Header-only but for HeldStream's coroutines
// (fake_ollama.cpp, linked into integration_tests).
//
//   oasis::test::FakeOllama fo({{"OLLAMA_NUM_PARALLEL", "2"}});
//   auto r = fo.post("/api/generate", R"({"model":"tiny","prompt":"hi","stream":false})");
//
// serve is started as the leader of a new process group. Its runners inherit that group (as
// Ollama's do), so the destructor's kill(-pgid, SIGKILL) also removes runners, even ones that
// were orphaned by a SIGKILL of serve. Runners get FAKE_OLLAMA_ORPHAN_EXIT_S=60 as a last
// resort should a test binary itself die.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "catch.h"
#include "common/http.h"
#include "test_support.h"

extern char** environ;

namespace oasis::test {

namespace net = boost::asio;

// ---------------------------------------------------------------- /proc

struct ProcStat {
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
  unsigned long long cpuTicks = 0;  // utime + stime, in clock ticks
};

inline std::optional<ProcStat> readProcStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = all.rfind(')');  // comm may contain spaces and parentheses
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(all.substr(close + 2));
  ProcStat st;
  std::string field;
  rest >> st.state >> st.ppid >> st.pgrp;
  // fields 6..13 (session tty_nr tpgid flags minflt cminflt majflt cmajflt), then utime stime
  for (int i = 0; i < 8; ++i) rest >> field;
  unsigned long long utime = 0, stime = 0;
  rest >> utime >> stime;
  st.cpuTicks = utime + stime;
  return st;
}

// Alive = present in the process table and not a zombie (a reaped or zombie runner is gone).
inline bool processAlive(pid_t pid) {
  auto st = readProcStat(pid);
  return st && st->state != 'Z' && st->state != 'X';
}

inline std::vector<std::string> processArgs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  std::string cur;
  for (char c : all) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

inline std::vector<pid_t> allPids() {
  std::vector<pid_t> out;
  if (DIR* d = ::opendir("/proc")) {
    while (auto* e = ::readdir(d)) {
      char* end = nullptr;
      long v = std::strtol(e->d_name, &end, 10);
      if (end && *end == '\0' && v > 0) out.push_back(static_cast<pid_t>(v));
    }
    ::closedir(d);
  }
  return out;
}

// Live model runners whose parent is `parent` (a runner is identified by `--model`, as the
// design says oasisd must do).
inline std::vector<pid_t> runnerChildren(pid_t parent) {
  std::vector<pid_t> out;
  for (pid_t p : allPids()) {
    auto st = readProcStat(p);
    if (!st || st->ppid != parent || !processAlive(p)) continue;
    auto args = processArgs(p);
    bool isRunner = false;
    for (auto& a : args)
      if (a == "--model") isRunner = true;
    if (isRunner) out.push_back(p);
  }
  return out;
}

inline std::string argAfter(const std::vector<std::string>& args, const std::string& flag) {
  for (std::size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag) return args[i + 1];
  return {};
}

// Holds `cond` true for the whole `duration` (a negative check: "stays in ps for 1 s").
inline bool holdsFor(const std::function<bool()>& cond, std::chrono::milliseconds duration,
                     std::chrono::milliseconds step = std::chrono::milliseconds(20)) {
  auto end = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < end) {
    if (!cond()) return false;
    std::this_thread::sleep_for(step);
  }
  return cond();
}

// ---------------------------------------------------------------- held streams

// An NDJSON response the test reads at its own pace on a private io_context. While it exists
// and is not closed, the TCP connection stays open: this is the "client holding a request".
class HeldStream {
 public:
  // Defined in fake_ollama.cpp: the coroutines are instantiated once for the test binary, not
  // in every test file that includes this header.
  static std::unique_ptr<HeldStream> open(const http::Endpoint& ep, const std::string& target, const std::string& body,
                                          std::chrono::milliseconds headTimeout = std::chrono::seconds(30));
  ~HeldStream();

  int status() const;
  // The next line, or nullopt at the end of the body, on error or after `timeout`.
  std::optional<std::string> nextLine(std::chrono::milliseconds timeout);
  void close();

 private:
  HeldStream();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- fake-ollama serve

class FakeOllama {
 public:
  using Env = std::vector<std::pair<std::string, std::string>>;

  FakeOllama(std::initializer_list<std::pair<std::string, std::string>> env) : FakeOllama(Env(env)) {}
  explicit FakeOllama(Env env = {}, std::chrono::milliseconds startTimeout = std::chrono::seconds(30)) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    std::map<std::string, std::string> vars;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      auto eq = kv.find('=');
      if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    // A predictable baseline; the test's env overrides it.
    for (const char* k : {"OLLAMA_HOST", "OLLAMA_KEEP_ALIVE", "OLLAMA_FLASH_ATTENTION", "OLLAMA_NUM_PARALLEL",
                          "FAKE_OLLAMA_MODELS", "FAKE_OLLAMA_FAULTS"})
      vars.erase(k);
    vars["OLLAMA_HOST"] = "127.0.0.1:0";
    vars["FAKE_OLLAMA_ORPHAN_EXIT_S"] = "60";
    for (auto& [k, v] : env) vars[k] = v;
    std::vector<std::string> envStrings;
    for (auto& [k, v] : vars) envStrings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : envStrings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string bin = OASIS_FAKE_OLLAMA_BIN;
    std::string serve = "serve";
    char* argv[] = {bin.data(), serve.data(), nullptr};

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    int rc = posix_spawn(&pid_, bin.c_str(), &fa, &attr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error(std::string("spawn fake-ollama: ") + std::strerror(rc));
    }
    readFd_ = fds[0];
    reader_ = std::thread([this] { readLoop(); });
    static const std::regex listening(R"(Listening on 127\.0\.0\.1:(\d+) \(version )");
    bool up = waitFor(
        [&] {
          std::smatch m;
          std::string text = log();
          if (std::regex_search(text, m, listening)) {
            port_ = static_cast<uint16_t>(std::stoi(m[1]));
            return true;
          }
          return exited();
        },
        startTimeout);
    if (!up || port_ == 0) {
      std::string text = log();
      shutdown();
      throw std::runtime_error("fake-ollama did not start; log:\n" + text);
    }
  }
  ~FakeOllama() { shutdown(); }
  FakeOllama(const FakeOllama&) = delete;
  FakeOllama& operator=(const FakeOllama&) = delete;

  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  http::Endpoint endpoint() const { return http::Endpoint::tcp("127.0.0.1", port_); }

  std::string log() const {
    std::lock_guard lock(mu_);
    return log_;
  }
  bool logContains(const std::string& s) const { return log().find(s) != std::string::npos; }
  bool waitForLog(const std::string& s, std::chrono::milliseconds timeout) const {
    return waitFor([&] { return logContains(s); }, timeout);
  }

  std::vector<pid_t> runnerPids() const { return runnerChildren(pid_); }

  http::Response request(const std::string& method, const std::string& target, const std::string& body = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    http::Request req;
    req.method = method;
    req.target = target;
    req.body = body;
    auto r = http::fetch(endpoint(), req, timeout);
    if (!r) throw std::runtime_error(method + " " + target + " failed: " + r.error().message);
    return *r;
  }
  http::Response get(const std::string& target) const { return request("GET", target); }
  http::Response post(const std::string& target, const std::string& body,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    return request("POST", target, body, timeout);
  }

  void signal(int sig) const { ::kill(pid_, sig); }

  // True once serve has exited (reaps it); exitStatus() then holds the wait status.
  bool exited() {
    if (reaped_) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = st;
    }
    return reaped_;
  }
  bool waitExit(std::chrono::milliseconds timeout) {
    return waitFor([&] { return exited(); }, timeout);
  }
  int exitStatus() const { return status_; }

  // A sanitizer finding in serve or a runner (their stderr is our log), or "".
  std::string sanitizerReport() const {
    std::string text = log();
    for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"}) {
      auto at = text.find(marker);
      if (at != std::string::npos) return text.substr(at > 200 ? at - 200 : 0, 4000);
    }
    return {};
  }

  // Kills serve's whole process group (serve, runners, orphaned runners) and reaps serve.
  void shutdown() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      if (!reaped_) {
        int st = 0;
        ::waitpid(pid_, &st, 0);
        reaped_ = true;
        status_ = st;
      }
    }
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (readFd_ >= 0) ::close(readFd_);
    if (readFd_ >= 0) {
      auto report = sanitizerReport();
      if (!report.empty()) FAIL_CHECK("sanitizer report in fake-ollama's log:\n" << report);
    }
    readFd_ = -1;
    pid_ = -1;
  }

 private:
  void readLoop() {
    char buf[4096];
    while (!stop_) {
      pollfd p{readFd_, POLLIN, 0};
      int n = ::poll(&p, 1, 50);
      if (n <= 0) continue;
      ssize_t got = ::read(readFd_, buf, sizeof buf);
      if (got <= 0) {
        if (got == 0) break;
        if (errno == EINTR) continue;
        break;
      }
      std::lock_guard lock(mu_);
      log_.append(buf, static_cast<std::size_t>(got));
      if (std::getenv("FAKE_OLLAMA_ECHO") && ::write(STDERR_FILENO, buf, static_cast<std::size_t>(got)) < 0) {
      }
    }
  }

  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int readFd_ = -1;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string log_;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace oasis::test
