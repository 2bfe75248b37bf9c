// Linux implementation of the platform layer: /proc for the process table and memory,
// pidfd for race-free signals (platform-facts §4).
#include <algorithm>
#include <cerrno>
#include <climits>  // PATH_MAX
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/process_parse.h"
#include "common/files.h"
#include "daemon/memory_source.h"
#include "daemon/platform/platform.h"

// glibc < 2.36 has no wrappers; the numbers are the same on x86_64 and arm64.
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

namespace oasis::platform {
namespace {

std::string errnoText(int err) { return std::strerror(err); }

// Reads a /proc file whole. ENOENT/ESRCH on a per-pid file mean the process is gone.
// Bounded: argv/environ beyond the limit are truncated.
Result<std::string> readProcFile(const std::string& path, std::size_t maxBytes = 4u << 20) {
  return readFileBounded(path, maxBytes, OversizePolicy::Truncate);
}

Error noSuchProcess(int pid) { return Error("process " + std::to_string(pid) + " does not exist", ESRCH); }

bool isPidName(const char* name, int& pid) {
  if (*name < '1' || *name > '9') return false;
  long v = 0;
  for (const char* p = name; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (*p - '0');
    if (v > 0x3fffffff) return false;
  }
  pid = static_cast<int>(v);
  return true;
}

// Every numeric /proc entry.
Result<std::vector<int>> scanProc() {
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return Error("cannot open /proc: " + errnoText(errno), errno);
  std::vector<int> pids;
  while (dirent* entry = ::readdir(dir)) {
    int pid = 0;
    if (isPidName(entry->d_name, pid)) pids.push_back(pid);
  }
  ::closedir(dir);
  std::sort(pids.begin(), pids.end());
  return pids;
}

Result<ProcStat> readStat(int pid) {
  auto text = readProcFile("/proc/" + std::to_string(pid) + "/stat", 64 * 1024);
  if (!text) {
    if (text.error().code == ENOENT || text.error().code == ESRCH) return noSuchProcess(pid);
    return text.error();
  }
  return parseProcStat(*text);
}

int pidfdOpen(int pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u)); }

int pidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0u));
}

// A pidfd polls readable once its process has exited (a moment before /proc shows 'Z').
bool pidfdExited(int pidfd) {
  pollfd pfd{pidfd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) > 0;
}

Status refuseObviouslyWrong(const ProcessIdentity& identity) {
  // kill(0, ...) and kill(-1, ...) signal whole groups / every process we may signal.
  if (identity.pid <= 0) return Error("refusing to signal pid " + std::to_string(identity.pid), EINVAL);
  if (identity.pid == ::getpid()) return Error("refusing to signal oasisd itself", EINVAL);
  return Status::success();
}

}  // namespace

Result<ProcessInfo> readProcess(int pid) {
  if (pid <= 0) return Error("invalid pid " + std::to_string(pid), EINVAL);
  auto st = readStat(pid);
  if (!st) return st.error();
  static const long ticksPerSecond = std::max(1L, ::sysconf(_SC_CLK_TCK));
  static const long pageSize = std::max(1L, ::sysconf(_SC_PAGESIZE));

  ProcessInfo info;
  info.pid = st->pid;
  info.ppid = st->ppid;
  info.pgid = st->pgrp;
  info.startTime = st->startTimeTicks;
  info.name = st->comm;
  info.zombie = st->state == 'Z' || st->state == 'X';
  info.cpuSeconds = static_cast<double>(st->utimeTicks + st->stimeTicks) / static_cast<double>(ticksPerSecond);
  info.rssBytes = st->rssPages > 0 ? static_cast<uint64_t>(st->rssPages) * static_cast<uint64_t>(pageSize) : 0;
  const std::string dir = "/proc/" + std::to_string(pid);
  if (auto cmdline = readProcFile(dir + "/cmdline")) info.argv = splitNulSeparated(*cmdline);
  char exe[4096];
  ssize_t n = ::readlink((dir + "/exe").c_str(), exe, sizeof exe - 1);
  if (n > 0) info.exe.assign(exe, static_cast<std::size_t>(n));
  return info;
}

Result<std::vector<int>> listAllPids() { return scanProc(); }

Result<std::vector<int>> listChildren(int ppid) {
  auto pids = scanProc();
  if (!pids) return pids.error();
  std::vector<int> children;
  for (int pid : *pids) {
    auto st = readStat(pid);  // a process that vanished meanwhile is simply not a child
    if (st && st->ppid == ppid) children.push_back(pid);
  }
  return children;
}

Result<std::map<std::string, std::string>> readEnvironment(int pid) {
  auto text = readProcFile("/proc/" + std::to_string(pid) + "/environ");
  if (!text) {
    if (text.error().code == ENOENT || text.error().code == ESRCH) return noSuchProcess(pid);
    return text.error();  // EACCES: another user's process
  }
  return parseEnvironEntries(splitNulSeparated(*text));
}

std::optional<int> findListeningPid(uint16_t port) {
  std::set<uint64_t> inodes;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    auto text = readProcFile(path, 64u << 20);
    if (!text) continue;  // tcp6 is absent without IPv6
    auto entries = parseProcNetTcp(*text);
    if (!entries) continue;
    for (const auto& e : *entries) {
      if (e.state == kTcpStateListen && e.localPort == port && e.inode != 0) inodes.insert(e.inode);
    }
  }
  if (inodes.empty()) return std::nullopt;

  auto pids = scanProc();
  if (!pids) return std::nullopt;
  std::set<int> holders;
  for (int pid : *pids) {
    const std::string fdDir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* dir = ::opendir(fdDir.c_str());
    if (dir == nullptr) continue;  // EACCES for other users' processes
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      char link[64];
      ssize_t n = ::readlinkat(::dirfd(dir), entry->d_name, link, sizeof link - 1);
      if (n <= 0) continue;
      link[n] = '\0';
      unsigned long long inode = 0;
      if (std::sscanf(link, "socket:[%llu]", &inode) == 1 && inodes.count(inode) != 0) {
        holders.insert(pid);
        break;
      }
    }
    ::closedir(dir);
  }
  if (holders.empty()) return std::nullopt;
  // A listening socket inherited by children (pre-fork servers) has several holders: the
  // one whose parent does not hold it is the server.
  for (int pid : holders) {
    auto st = readStat(pid);
    if (st && holders.count(st->ppid) == 0) return pid;
  }
  return *holders.begin();
}

bool isAppleSilicon() { return false; }

Result<std::string> selfExecutablePath() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) return Error{std::string("readlink /proc/self/exe: ") + std::strerror(errno)};
  return std::string(buf, static_cast<std::size_t>(n));
}

Result<uint64_t> totalMemoryBytes() {
  auto text = readProcFile("/proc/meminfo", 256 * 1024);
  if (!text) return text.error();
  auto meminfo = parseProcMemInfo(*text);
  if (!meminfo) return meminfo.error();
  return meminfo->memTotalBytes;
}

Result<MemorySample> nativeMemory(const Clock& clock) { return readProcMemory(ProcMemoryPaths{}, clock); }

Status killVerified(const ProcessIdentity& identity, int signal) {
  if (auto st = refuseObviouslyWrong(identity); !st) return st;
  // 1. Pin the process the PID names right now.
  OwnedFd pidfd(pidfdOpen(identity.pid));
  if (!pidfd.valid()) {
    if (errno == ESRCH) return noSuchProcess(identity.pid);
    if (errno != ENOSYS) return Error("pidfd_open(" + std::to_string(identity.pid) + "): " + errnoText(errno), errno);
    // Kernel < 5.3: fall through to verify-then-kill(); the window is the few µs below.
  }
  // 2. Verify that the pinned process is the one we recorded. If the PID was reused before
  //    step 1, /proc shows the new process and its start time differs; after step 1 the
  //    pidfd keeps referring to the verified process whatever happens to the number.
  //    An exiting process reads oddly (empty cmdline once its memory is gone), so "it has
  //    exited" — the pidfd is readable — is checked around the comparison.
  const auto exited = [&] { return Error("process " + std::to_string(identity.pid) + " has already exited", ESRCH); };
  if (pidfd.valid() && pidfdExited(pidfd.get())) return exited();
  auto info = readProcess(identity.pid);
  if (!info) return info.error();
  if (auto st = matchesIdentity(*info, identity); !st) {
    if (pidfd.valid() && pidfdExited(pidfd.get())) return exited();
    // Same start time, so the same process, but its memory is already gone (empty cmdline):
    // it is exiting, between releasing its memory and the pidfd turning readable.
    if (info->startTime == identity.startTime && info->argv.empty()) return exited();
    return st;
  }
  if (info->zombie || (pidfd.valid() && pidfdExited(pidfd.get()))) return exited();
  // 3. Signal through the pidfd.
  int rc = pidfd.valid() ? pidfdSendSignal(pidfd.get(), signal) : ::kill(identity.pid, signal);
  if (rc != 0) {
    int err = errno;
    if (err == ESRCH) return Error("process " + std::to_string(identity.pid) + " exited before the signal", ESRCH);
    return Error("signal " + std::to_string(signal) + " to " + std::to_string(identity.pid) + ": " + errnoText(err), err);
  }
  return Status::success();
}

Result<OwnedFd> openExitWatch(const ProcessIdentity& identity) {
  if (identity.pid <= 0) return Error("invalid pid " + std::to_string(identity.pid), EINVAL);
  OwnedFd pidfd(pidfdOpen(identity.pid));
  if (!pidfd.valid()) {
    if (errno == ESRCH) return noSuchProcess(identity.pid);
    return Error("pidfd_open(" + std::to_string(identity.pid) + "): " + errnoText(errno), errno);
  }
  const auto exited = [&] { return Error("process " + std::to_string(identity.pid) + " has already exited", ESRCH); };
  if (pidfdExited(pidfd.get())) return exited();
  auto info = readProcess(identity.pid);
  if (!info) return info.error();
  if (auto st = matchesIdentity(*info, identity); !st) {
    if (pidfdExited(pidfd.get())) return exited();
    return st.error();
  }
  if (info->zombie) return exited();
  return pidfd;
}

Result<bool> waitForExit(const ProcessIdentity& identity, std::chrono::milliseconds timeout) {
  auto watch = openExitWatch(identity);
  if (!watch) {
    // Gone, a zombie, or the PID names someone else: the process we knew has exited.
    if (watch.error().code == ESRCH || watch.error().code == ESTALE) return true;
    if (watch.error().code != ENOSYS) return watch.error();
    // No pidfd (kernel < 5.3): poll /proc.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto info = readProcess(identity.pid);
      if (!info || info->zombie || info->startTime != identity.startTime) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{watch->get(), POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, left.count())));
    if (rc > 0) return true;  // a pidfd polls readable once the process has exited
    if (rc == 0) return false;
    if (errno != EINTR) return Error("poll(pidfd): " + errnoText(errno), errno);
  }
}

}  // namespace oasis::platform
