#include "common/files.h"
#include "daemon/memory_source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/platform/platform.h"

extern char** environ;  // NOLINT: POSIX, for posix_spawnp

namespace oasis {
namespace {

std::string errnoText(int err) { return std::strerror(err); }

// Reads a small file whole; `maxBytes` bounds it (the sources read /proc and test files).
Result<std::string> readSmallFile(const std::string& path, std::size_t maxBytes) {
  return readFileBounded(path, maxBytes, OversizePolicy::Fail);
}

void setCloexec(int fd) { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

std::string joinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// Reaps `pid`, waiting at most until `deadline`; SIGKILLs it when the deadline passes.
// Returns the wait status.
int reap(pid_t pid, std::chrono::steady_clock::time_point deadline, bool& killed) {
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return 0;  // ECHILD: someone else reaped it
    if (std::chrono::steady_clock::now() >= deadline && !killed) {
      ::kill(pid, SIGKILL);  // our own unreaped child: the PID cannot have been reused
      killed = true;
    }
    if (killed) {
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------

Result<MemorySample> readProcMemory(const ProcMemoryPaths& paths, const Clock& clock) {
  constexpr std::size_t kMax = 256 * 1024;
  auto meminfoText = readSmallFile(paths.meminfo, kMax);
  if (!meminfoText) return meminfoText.error();
  auto meminfo = parseProcMemInfo(*meminfoText);
  if (!meminfo) return meminfo.error();

  auto vmstatText = readSmallFile(paths.vmstat, kMax);
  if (!vmstatText) return vmstatText.error();
  auto vmstat = parseProcVmStat(*vmstatText);
  if (!vmstat) return vmstat.error();

  std::optional<PressureStall> pressure;
  if (!paths.pressure.empty()) {
    if (auto text = readSmallFile(paths.pressure, kMax)) {
      auto parsed = parsePressure(*text);
      if (!parsed) return Error(paths.pressure + ": " + parsed.error().message);
      pressure = *parsed;
    }
  }
  const long page = ::sysconf(_SC_PAGESIZE);
  MemorySample s = memorySampleFromLinux(*meminfo, &*vmstat, pressure ? &*pressure : nullptr,
                                         page > 0 ? static_cast<uint64_t>(page) : 4096, clock.wallNow(),
                                         clock.steadyNow());
  return s;
}

ProcMemorySource::ProcMemorySource(const Clock& clock, ProcMemoryPaths paths) : clock_(clock), paths_(std::move(paths)) {}

Result<MemorySample> ProcMemorySource::sample() { return readProcMemory(paths_, clock_); }

// ---------------------------------------------------------------------------------------
// Child process with a deadline
// ---------------------------------------------------------------------------------------

Result<CommandOutput> runCaptured(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                                  std::size_t maxOutputBytes) {
  if (argv.empty() || argv.front().empty()) return Error("runCaptured: empty command", EINVAL);
  const std::string what = "'" + joinArgv(argv) + "'";
  constexpr std::size_t kMaxStderr = 4096;

  int outPipe[2] = {-1, -1};
  int errPipe[2] = {-1, -1};
  if (::pipe(outPipe) != 0) return Error("pipe: " + errnoText(errno), errno);
  if (::pipe(errPipe) != 0) {
    int err = errno;
    ::close(outPipe[0]);
    ::close(outPipe[1]);
    return Error("pipe: " + errnoText(err), err);
  }
  // The originals must not leak into the child (dup2'd copies on 1 and 2 are not CLOEXEC)
  // nor into anything else this daemon spawns concurrently.
  for (int fd : {outPipe[0], outPipe[1], errPipe[0], errPipe[1]}) setCloexec(fd);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Signal dispositions the daemon set (ignored SIGPIPE, blocked signals) must not leak in.
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
  sigset_t noMask;
  sigemptyset(&noMask);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &noMask);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(outPipe[1]);
  ::close(errPipe[1]);
  if (rc != 0) {
    ::close(outPipe[0]);
    ::close(errPipe[0]);
    return Error("cannot run " + what + ": " + errnoText(rc), rc);
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  CommandOutput result;
  std::string failure;
  int failureCode = 0;
  bool outOpen = true, errOpen = true;
  char buf[4096];
  while ((outOpen || errOpen) && failure.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      failure = what + " timed out after " + std::to_string(timeout.count()) + " ms";
      failureCode = ETIMEDOUT;
      break;
    }
    pollfd fds[2];
    nfds_t n = 0;
    if (outOpen) fds[n++] = pollfd{outPipe[0], POLLIN, 0};
    if (errOpen) fds[n++] = pollfd{errPipe[0], POLLIN, 0};
    int pr = ::poll(fds, n, static_cast<int>(std::min<long long>(left.count() + 1, 60'000)));
    if (pr < 0) {
      if (errno == EINTR) continue;
      failure = "poll: " + errnoText(errno);
      failureCode = errno;
      break;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const bool isOut = fds[i].fd == outPipe[0];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        (isOut ? outOpen : errOpen) = false;
        continue;
      }
      if (isOut) {
        result.out.append(buf, static_cast<std::size_t>(got));
        if (result.out.size() > maxOutputBytes) {
          failure = what + " printed more than " + std::to_string(maxOutputBytes) + " bytes";
          failureCode = EFBIG;
        }
      } else if (result.err.size() < kMaxStderr) {
        result.err.append(buf, std::min(static_cast<std::size_t>(got), kMaxStderr - result.err.size()));
      }
    }
  }
  ::close(outPipe[0]);
  ::close(errPipe[0]);
  bool killed = false;
  if (!failure.empty()) {
    ::kill(pid, SIGKILL);
    killed = true;
  }
  int status = reap(pid, deadline, killed);
  if (!failure.empty()) return Error(failure, failureCode);
  if (killed) return Error(what + " timed out after " + std::to_string(timeout.count()) + " ms", ETIMEDOUT);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// ---------------------------------------------------------------------------------------
// vm_stat sources
// ---------------------------------------------------------------------------------------

VmStatCommandSource::VmStatCommandSource(const Clock& clock, std::vector<std::string> argv,
                                         std::chrono::milliseconds timeout, std::optional<uint64_t> totalBytesHint)
    : clock_(clock), argv_(std::move(argv)), timeout_(timeout), totalBytesHint_(totalBytesHint) {}

std::string VmStatCommandSource::describe() const { return "vm_stat_command: " + joinArgv(argv_); }

Result<MemorySample> VmStatCommandSource::sample() {
  auto run = runCaptured(argv_, timeout_, kMaxOutputBytes);
  if (!run) return run.error();
  if (run->exitCode != 0) {
    std::string err = run->err.substr(0, run->err.find('\n'));
    return Error("'" + joinArgv(argv_) + "' exited with status " + std::to_string(run->exitCode) +
                 (err.empty() ? std::string() : ": " + err));
  }
  auto snap = parseVmStat(run->out);
  if (!snap) return Error("'" + joinArgv(argv_) + "': " + snap.error().message);
  MemorySample s = memorySampleFromVmStat(*snap, clock_.wallNow(), clock_.steadyNow(), totalBytesHint_);
  s.source = describe();
  return s;
}

FileMemorySource::FileMemorySource(const Clock& clock, std::string path, std::optional<uint64_t> totalBytesHint)
    : clock_(clock), path_(std::move(path)), totalBytesHint_(totalBytesHint) {}

Result<MemorySample> FileMemorySource::sample() {
  auto text = readSmallFile(path_, kMaxFileBytes);
  if (!text) return text.error();
  auto snap = parseVmStat(*text);
  if (!snap) return Error(path_ + ": " + snap.error().message);
  MemorySample s = memorySampleFromVmStat(*snap, clock_.wallNow(), clock_.steadyNow(), totalBytesHint_);
  s.source = describe();
  return s;
}

Result<MemorySample> NativeMemorySource::sample() { return platform::nativeMemory(clock_); }

// ---------------------------------------------------------------------------------------
// Factory
// ---------------------------------------------------------------------------------------

Result<std::unique_ptr<MemorySource>> makeMemorySource(const MemorySourceConfig& config, const Clock& clock,
                                                       std::optional<uint64_t> totalBytesHint) {
  switch (config.kind) {
    case MemorySourceConfig::Kind::Auto:
#if defined(__APPLE__)
      return std::unique_ptr<MemorySource>(std::make_unique<NativeMemorySource>(clock));
#elif defined(__linux__)
      return std::unique_ptr<MemorySource>(std::make_unique<ProcMemorySource>(clock));
#else
      return Error("memory.source kind \"auto\" is not supported on this OS; use vm_stat_command or file");
#endif
    case MemorySourceConfig::Kind::VmStatCommand: {
      if (config.argv.empty() || config.argv.front().empty()) {
        return Error("memory.source.argv must name a program");
      }
      if (!totalBytesHint) {
        if (auto total = platform::totalMemoryBytes()) totalBytesHint = *total;
      }
      auto timeout = std::chrono::milliseconds(static_cast<long long>(config.timeoutS * 1000.0));
      if (timeout.count() <= 0) timeout = std::chrono::milliseconds(1);
      return std::unique_ptr<MemorySource>(
          std::make_unique<VmStatCommandSource>(clock, config.argv, timeout, totalBytesHint));
    }
    case MemorySourceConfig::Kind::File:
      if (config.path.empty()) return Error("memory.source.path must not be empty");
      if (config.format != "vm_stat") return Error("memory.source.format \"" + config.format + "\" is not supported");
      return std::unique_ptr<MemorySource>(std::make_unique<FileMemorySource>(clock, config.path));
  }
  return Error("unknown memory.source kind");
}

}  // namespace oasis
