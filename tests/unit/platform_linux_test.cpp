// The Linux platform layer against real, short-lived child processes. Every wait is on a
// condition with a deadline; nothing sleeps a fixed time.
#if defined(__linux__)

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catch.h"
#include "common/runner_classify.h"
#include "daemon/platform/platform.h"

extern char** environ;

using namespace oasis;
using namespace oasis::platform;
using namespace std::chrono_literals;

namespace {

// Polls `condition` until it holds or `timeout` passes.
template <typename F>
bool eventually(F condition, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A child we spawned; killed and reaped on scope exit unless already reaped.
class Child {
 public:
  explicit Child(std::vector<std::string> argv, const std::vector<std::string>* env = nullptr) {
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<std::string> envCopy = env ? *env : std::vector<std::string>{};
    std::vector<char*> cenv;
    for (auto& e : envCopy) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, cargv[0], nullptr, nullptr, cargv.data(), env ? cenv.data() : environ);
    REQUIRE(rc == 0);
    // posix_spawn returns once the child has released our memory in execve, a moment
    // before the kernel has set up the new argv: /proc/<pid>/cmdline can still read empty.
    REQUIRE(eventuallyExec(argv));
  }
  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      reap();
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  int pid() const { return pid_; }
  bool eventuallyExec(const std::vector<std::string>& argv) const {
    return eventually([&] {
      auto info = readProcess(pid_);
      return info.ok() && info->argv == argv;
    });
  }
  int reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

bool aliveAndNotZombie(int pid) {
  auto info = readProcess(pid);
  return info.ok() && !info->zombie;
}

}  // namespace

TEST_CASE("linux: readProcess on ourselves", "[platform][linux]") {
  auto self = readProcess(::getpid());
  REQUIRE(self.ok());
  CHECK(self->pid == ::getpid());
  CHECK(self->ppid == ::getppid());
  CHECK(self->pgid == ::getpgrp());
  CHECK(self->startTime > 0);
  CHECK_FALSE(self->argv.empty());
  CHECK_FALSE(self->exe.empty());
  CHECK(self->rssBytes > 0);
  CHECK(self->cpuSeconds >= 0);
  CHECK_FALSE(self->zombie);

  auto gone = readProcess(0x3ffffff0);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == ESRCH);
  CHECK_FALSE(readProcess(0).ok());
  CHECK_FALSE(readProcess(-1).ok());

  auto all = listAllPids();
  REQUIRE(all.ok());
  CHECK(std::find(all->begin(), all->end(), ::getpid()) != all->end());
}

TEST_CASE("linux: a child's argv, environment and place in the process table", "[platform][linux]") {
  std::vector<std::string> env = {"OLLAMA_FLASH_ATTENTION=off", "FOO=bar", "PATH=/bin:/usr/bin"};
  Child child({"/bin/sleep", "30"}, &env);

  auto info = readProcess(child.pid());
  REQUIRE(info.ok());
  CHECK(info->ppid == ::getpid());
  CHECK(info->argv == std::vector<std::string>{"/bin/sleep", "30"});
  CHECK(info->exe.find("sleep") != std::string::npos);
  CHECK(info->startTime >= readProcess(::getpid())->startTime);

  auto children = listChildren(::getpid());
  REQUIRE(children.ok());
  CHECK(std::find(children->begin(), children->end(), child.pid()) != children->end());
  auto none = listChildren(child.pid());
  REQUIRE(none.ok());
  CHECK(none->empty());

  auto childEnv = readEnvironment(child.pid());
  REQUIRE(childEnv.ok());
  CHECK(childEnv->at("FOO") == "bar");
  // The value Ollama would read as ON (any non-boolean value).
  CHECK(flashAttentionFromEnv(*childEnv) == FlashAttention::On);
  CHECK(readEnvironment(0x3ffffff0).error().code == ESRCH);
}

TEST_CASE("linux: killVerified kills the recorded process and waitForExit sees it go", "[platform][linux]") {
  Child child({"/bin/sleep", "30"});
  auto identity = identify(child.pid(), ::getpid(), "30");
  REQUIRE(identity.ok());
  CHECK(identity->startTime > 0);

  auto notYet = waitForExit(*identity, 0ms);
  REQUIRE(notYet.ok());
  CHECK_FALSE(*notYet);

  REQUIRE(killVerified(*identity, SIGKILL).ok());
  auto exited = waitForExit(*identity, 5000ms);
  REQUIRE(exited.ok());
  CHECK(*exited);

  // Exited but not reaped: it must not be signalled again, and /proc shows a zombie (a
  // moment after the pidfd turned readable).
  auto again0 = killVerified(*identity, SIGKILL);
  REQUIRE_FALSE(again0.ok());
  CHECK(again0.error().code == ESRCH);
  CHECK(eventually([&] {
    auto zombie = readProcess(child.pid());
    return zombie.ok() && zombie->zombie;
  }));
  auto again = killVerified(*identity, SIGKILL);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ESRCH);

  int status = child.reap();
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  auto afterReap = killVerified(*identity, SIGKILL);
  REQUIRE_FALSE(afterReap.ok());
  CHECK(afterReap.error().code == ESRCH);
  auto stillExited = waitForExit(*identity, 0ms);
  REQUIRE(stillExited.ok());
  CHECK(*stillExited);
}

TEST_CASE("linux: PID reuse is caught, the new process survives", "[platform][linux]") {
  // Record the identity of process A, then kill and reap it.
  ProcessIdentity recorded;
  {
    Child a({"/bin/sleep", "30"});
    auto id = identify(a.pid(), ::getpid(), "30");
    REQUIRE(id.ok());
    recorded = *id;
    REQUIRE(killVerified(recorded, SIGKILL).ok());
    a.reap();
  }
  // Spawn B, an "unrelated" process, until its start tick differs from A's (they can
  // share a 10 ms tick when spawned back to back).
  std::unique_ptr<Child> b;
  REQUIRE(eventually([&] {
    b = std::make_unique<Child>(std::vector<std::string>{"/bin/sleep", "30"});
    auto info = readProcess(b->pid());
    return info.ok() && info->startTime != recorded.startTime;
  }));
  // Simulate the kernel handing A's PID to B: the identity we hold names B's PID with A's
  // start time, ppid and command line.
  ProcessIdentity stale = recorded;
  stale.pid = b->pid();
  auto refused = killVerified(stale, SIGKILL);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ESTALE);
  CHECK_THAT(refused.error().message, Catch::Contains("reused"));

  // B was not signalled: still alive and not exiting.
  auto stillRunning = waitForExit(identify(b->pid()).value(), 100ms);
  REQUIRE(stillRunning.ok());
  CHECK_FALSE(*stillRunning);
  CHECK(aliveAndNotZombie(b->pid()));

  // And a stale exit watch says "gone", not "running", for the old identity.
  auto watch = openExitWatch(stale);
  REQUIRE_FALSE(watch.ok());
  CHECK(watch.error().code == ESTALE);
}

TEST_CASE("linux: killVerified refuses on ppid, argv and nonsense identities", "[platform][linux]") {
  Child child({"/bin/sleep", "30"});
  auto identity = identify(child.pid());
  REQUIRE(identity.ok());

  ProcessIdentity wrongParent = *identity;
  wrongParent.expectedPpid = 1;
  auto r1 = killVerified(wrongParent, SIGKILL);
  REQUIRE_FALSE(r1.ok());
  CHECK(r1.error().code == ESTALE);
  CHECK_THAT(r1.error().message, Catch::Contains("parent"));

  ProcessIdentity wrongArg = *identity;
  wrongArg.mustContainArg = "--model";
  auto r2 = killVerified(wrongArg, SIGKILL);
  REQUIRE_FALSE(r2.ok());
  CHECK_THAT(r2.error().message, Catch::Contains("--model"));

  ProcessIdentity noStart = *identity;
  noStart.startTime = 0;
  CHECK_FALSE(killVerified(noStart, SIGKILL).ok());

  CHECK(killVerified(ProcessIdentity{0, 1, -1, {}}, SIGKILL).error().code == EINVAL);
  CHECK(killVerified(ProcessIdentity{-1, 1, -1, {}}, SIGKILL).error().code == EINVAL);
  auto self = identify(::getpid());
  REQUIRE(self.ok());
  CHECK(killVerified(*self, SIGTERM).error().code == EINVAL);

  CHECK(aliveAndNotZombie(child.pid()));
  // Signal 0 probes without harm, through the same verified path.
  CHECK(killVerified(*identity, 0).ok());
  CHECK(aliveAndNotZombie(child.pid()));
}

TEST_CASE("linux: mustContainArg matches --model and --model=", "[platform][linux]") {
  ProcessInfo info;
  info.pid = 10;
  info.startTime = 5;
  info.ppid = 2;
  info.argv = {"llama-server", "--model=/b/x", "--port", "1"};
  CHECK(matchesIdentity(info, ProcessIdentity{10, 5, 2, "--model"}).ok());
  info.argv = {"llama-server", "--modelx", "/b/x"};
  CHECK_FALSE(matchesIdentity(info, ProcessIdentity{10, 5, 2, "--model"}).ok());
  info.zombie = true;  // a zombie's argv is empty; the start time decides
  info.argv.clear();
  CHECK(matchesIdentity(info, ProcessIdentity{10, 5, 2, "--model"}).ok());
  CHECK_FALSE(matchesIdentity(info, ProcessIdentity{10, 6, 2, "--model"}).ok());
}

TEST_CASE("linux: openExitWatch becomes readable when the process exits", "[platform][linux]") {
  Child child({"/bin/sleep", "30"});
  auto identity = identify(child.pid(), ::getpid());
  REQUIRE(identity.ok());
  auto watch = openExitWatch(*identity);
  REQUIRE(watch.ok());
  pollfd pfd{watch->get(), POLLIN, 0};
  CHECK(::poll(&pfd, 1, 0) == 0);
  REQUIRE(killVerified(*identity, SIGTERM).ok());
  pfd.revents = 0;
  CHECK(::poll(&pfd, 1, 5000) == 1);
  CHECK((pfd.revents & POLLIN) != 0);
}

TEST_CASE("linux: CPU seconds advance for a busy child", "[platform][linux]") {
  Child busy({"/bin/sh", "-c", "while :; do :; done"});
  auto first = readProcess(busy.pid());
  REQUIRE(first.ok());
  const auto t0 = std::chrono::steady_clock::now();
  double cpu = first->cpuSeconds;
  REQUIRE(eventually([&] {
    auto now = readProcess(busy.pid());
    if (now.ok()) cpu = now->cpuSeconds;
    return cpu - first->cpuSeconds >= 0.1;
  }));
  const double pct = cpuPercent(first->cpuSeconds, t0, cpu, std::chrono::steady_clock::now());
  CHECK(pct > 5.0);
  CHECK(pct <= 105.0 * std::thread::hardware_concurrency());
}

TEST_CASE("linux: findListeningPid finds our own listener", "[platform][linux]") {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const uint16_t port = ntohs(addr.sin_port);

  CHECK_FALSE(findListeningPid(port));  // bound, not listening
  REQUIRE(::listen(fd, 4) == 0);
  auto pid = findListeningPid(port);
  REQUIRE(pid);
  CHECK(*pid == ::getpid());
  ::close(fd);
  CHECK_FALSE(findListeningPid(port));
}

TEST_CASE("linux: memory facts", "[platform][linux]") {
  CHECK_FALSE(isAppleSilicon());
  auto total = totalMemoryBytes();
  REQUIRE(total.ok());
  CHECK(*total > (64ull << 20));
  ManualClock clock;
  auto sample = nativeMemory(clock);
  REQUIRE(sample.ok());
  CHECK(sample->totalBytes == *total);
  CHECK(sample->availableBytes <= sample->totalBytes);
  CHECK(sample->freeBytes <= sample->totalBytes);
  CHECK(sample->swapouts.has_value());
  CHECK(sample->pageSizeBytes >= 4096);
  CHECK(sample->steadyAt == clock.steadyNow());
  CHECK(sample->source == "linux_proc");

  // The injectable facade defaults to the host.
  struct AppleSiliconHost : Platform {
    bool isAppleSilicon() override { return true; }
  } simulated;
  Platform& host = nativePlatform();
  CHECK_FALSE(host.isAppleSilicon());
  CHECK(static_cast<Platform&>(simulated).isAppleSilicon());
  CHECK(simulated.readProcess(::getpid()).ok());
}

#endif  // __linux__
