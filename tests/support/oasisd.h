#pragma once
// Test helper: runs a real oasisd as a child process with a generated config, a private
// socket and database, and talks to it over the socket. Header-only, like fake_ollama.h.
//
//   oasis::test::Oasisd d(config);      // config: nlohmann::json, merged over test defaults
//   auto status = d.get("/v1/status");  // parsed JSON
//   d.waitForEvent("runner_killed", 20s);
#include <netinet/in.h>
#include <signal.h>
#include <fcntl.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "catch.h"
#include "common/http.h"
#include "test_support.h"

extern char** environ;

namespace oasis::test {

// A TCP port that was free a moment ago (bind to :0, read it, close). Managed mode needs the
// port before serve starts; the race with another process taking it is accepted in tests.
inline uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class Oasisd {
 public:
  // `overrides` is merged over a fast test config: managed fake-ollama on a free port,
  // ps every 0.25 s, memory every 0.25 s from a file that says memory is plentiful.
  explicit Oasisd(const nlohmann::json& overrides = nlohmann::json::object(), std::vector<std::string> extraArgs = {},
                  std::vector<std::string> env = {}) {
    ollamaPort_ = freePort();
    socket_ = dir_.file("oasisd.sock");
    writeMemoryFile(plentifulVmStat());
    nlohmann::json cfg = {
        {"ollama",
         {{"command", {OASIS_FAKE_OLLAMA_BIN, "serve"}},
          {"url", "http://127.0.0.1:" + std::to_string(ollamaPort_)},
          {"restart", {{"initial_backoff_s", 0.2}, {"max_backoff_s", 1}}}}},
        {"ps_interval_s", 0.25},
        {"memory", {{"interval_s", 0.25}, {"source", {{"kind", "file"}, {"path", memoryFile()}, {"format", "vm_stat"}}}}},
        {"log", {{"level", "debug"}}}};
    cfg.merge_patch(overrides);
    config_ = cfg;
    std::ofstream(dir_.file("oasisd.json")) << cfg.dump(2);
    std::vector<std::string> args = {OASISD_BIN, "--config", dir_.file("oasisd.json"), "--socket", socket_, "--db",
                                     dir_.file("oasisd.db")};
    for (auto& a : extraArgs) args.push_back(a);
    start(args, env);
  }

  ~Oasisd() { stop(); }
  Oasisd(const Oasisd&) = delete;
  Oasisd& operator=(const Oasisd&) = delete;

  const std::string& socket() const { return socket_; }
  http::Endpoint endpoint() const { return http::Endpoint::unixSocket(socket_); }
  http::Endpoint ollama() const { return http::Endpoint::tcp("127.0.0.1", ollamaPort_); }
  uint16_t ollamaPort() const { return ollamaPort_; }
  pid_t pid() const { return pid_; }
  const TempDir& dir() const { return dir_; }
  std::string memoryFile() const { return dir_.file("vm_stat.txt"); }

  // Atomically replaces the memory file that the `file` source re-reads every tick.
  void writeMemoryFile(const std::string& text) const {
    std::string tmp = memoryFile() + ".tmp";
    std::ofstream(tmp) << text;
    std::rename(tmp.c_str(), memoryFile().c_str());
  }

  // A 16 GiB Apple Silicon vm_stat with lots free; `freePages` and `swapouts` vary it.
  static std::string vmStat(uint64_t freePages, uint64_t swapouts, uint64_t inactive = 300000) {
    auto line = [](const std::string& label, uint64_t v) {
      std::string l = label;
      std::string num = std::to_string(v) + ".";
      while (l.size() + num.size() < 48) l += ' ';
      return l + num + "\n";
    };
    std::string s = "Mach Virtual Memory Statistics: (page size of 16384 bytes)\n";
    s += line("Pages free:", freePages);
    s += line("Pages active:", 400000);
    s += line("Pages inactive:", inactive);
    s += line("Pages speculative:", 1000);
    s += line("Pages throttled:", 0);
    s += line("Pages wired down:", 100000);
    s += line("Pages purgeable:", 1000);
    s += line("\"Translation faults\":", 1000000);
    s += line("Pages copy-on-write:", 1000);
    s += line("Pages zero filled:", 1000);
    s += line("Pages reactivated:", 0);
    s += line("Pages purged:", 0);
    s += line("File-backed pages:", 300000);
    s += line("Anonymous pages:", 400000);
    s += line("Pages stored in compressor:", 0);
    s += line("Pages occupied by compressor:", 0);
    s += line("Decompressions:", 0);
    s += line("Compressions:", 0);
    s += line("Pageins:", 1000);
    s += line("Pageouts:", 0);
    s += line("Swapins:", 0);
    s += line("Swapouts:", swapouts);
    return s;
  }
  static std::string plentifulVmStat() { return vmStat(400000, 0); }

  nlohmann::json get(const std::string& target) const {
    auto r = http::fetch(endpoint(), {"GET", target, "", "", {}}, std::chrono::seconds(10));
    if (!r) throw std::runtime_error("GET " + target + ": " + r.error().message);
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded()) throw std::runtime_error("GET " + target + ": not JSON: " + r->body);
    return j;
  }
  http::Response request(const std::string& method, const std::string& target, const std::string& body = "") const {
    auto r = http::fetch(endpoint(), {method, target, body, "application/json", {}}, std::chrono::seconds(10));
    if (!r) throw std::runtime_error(method + " " + target + ": " + r.error().message);
    return *r;
  }
  nlohmann::json post(const std::string& target, const nlohmann::json& body = nlohmann::json::object()) const {
    auto r = request("POST", target, body.dump());
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded()) throw std::runtime_error("POST " + target + ": not JSON: " + r.body);
    return j;
  }

  std::vector<nlohmann::json> events() const {
    std::vector<nlohmann::json> out;
    auto r = http::fetchLines(
        endpoint(), {"GET", "/v1/events", "", "", {}},
        [&](std::string_view line) {
          out.push_back(nlohmann::json::parse(line));
          return true;
        },
        std::chrono::seconds(10));
    if (!r) throw std::runtime_error("GET /v1/events: " + r.error().message);
    return out;
  }
  std::vector<nlohmann::json> eventsOfKind(const std::string& kind) const {
    std::vector<nlohmann::json> out;
    for (auto& e : events())
      if (e["kind"] == kind) out.push_back(e);
    return out;
  }
  bool waitForEvent(const std::string& kind, std::chrono::milliseconds timeout) const {
    return waitFor([&] { return !eventsOfKind(kind).empty(); }, timeout, std::chrono::milliseconds(100));
  }
  bool waitForStatus(const std::function<bool(const nlohmann::json&)>& pred, std::chrono::milliseconds timeout) const {
    return waitFor([&] { return pred(get("/v1/status")); }, timeout, std::chrono::milliseconds(100));
  }

  std::string log() const {
    std::ifstream in(dir_.file("oasisd.log"));
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  // SIGTERM and wait; returns the exit status (or -1 after SIGKILL on timeout).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (pid_ <= 0) return exitStatus_;
    ::kill(pid_, SIGTERM);
    bool done = waitFor(
        [&] {
          int st = 0;
          if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            exitStatus_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return true;
          }
          return false;
        },
        timeout, std::chrono::milliseconds(20));
    if (!done) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      exitStatus_ = -1;
    }
    pid_ = -1;
    return exitStatus_;
  }

 private:
  void start(const std::vector<std::string>& args, const std::vector<std::string>& extraEnv) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) envs.emplace_back(*e);
    for (auto& e : extraEnv) envs.push_back(e);
    std::vector<char*> envp;
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string logPath = dir_.file("oasisd.log");
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork for oasisd failed");
    if (pid_ == 0) {
      int fd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::dup2(fd, STDERR_FILENO);
        ::dup2(fd, STDOUT_FILENO);
      }
#ifdef __linux__
      // If the test process dies (a failed REQUIRE that aborts, a sanitizer report), the daemon
      // gets SIGTERM and stops its serve instead of lingering.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
#endif
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    bool up = waitFor(
        [&] {
          auto r = http::fetch(endpoint(), {"GET", "/v1/status", "", "", {}}, std::chrono::milliseconds(500));
          return r.ok() && r->status == 200;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(50));
    if (!up) throw std::runtime_error("oasisd did not come up; log:\n" + log());
  }

  TempDir dir_;
  std::string socket_;
  uint16_t ollamaPort_ = 0;
  nlohmann::json config_;
  pid_t pid_ = -1;
  int exitStatus_ = -1;
};

// POST /v1/trials?wait=S: the trial's record (whatever state it reached within S seconds).
inline nlohmann::json submitWait(const Oasisd& d, const nlohmann::json& spec, int waitS = 60) {
  auto r = d.request("POST", "/v1/trials?wait=" + std::to_string(waitS), spec.dump());
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  INFO(r.body);
  REQUIRE(j.is_object());
  return j;
}

}  // namespace oasis::test
