#pragma once
// The platform layer, process and memory side. One neutral interface; exactly one of
// platform/linux.cpp (/proc, pidfd) and platform/darwin.cpp (libproc, sysctl, Mach) is
// compiled (daemon/CMakeLists.txt filters by OS).
//
// Everything that signals a process goes through killVerified(): the process is named by a
// ProcessIdentity recorded at discovery, and the identity is re-checked right before the
// signal (on Linux through a pidfd, which makes the check race-free). A runner's PID can be
// reused by an unrelated process between discovery and kill; without this check oasisd
// could kill -9 an innocent process (DESIGN.md "Never kill the wrong process").
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/memory_parse.h"
#include "common/result.h"

namespace oasis::platform {

struct ProcessInfo {
  int pid = 0;
  int ppid = 0;
  int pgid = 0;
  // Opaque identity component, comparable only with another value from the same host and
  // boot: Linux /proc/<pid>/stat starttime (clock ticks since boot); macOS the start
  // timeval as tv_sec * 1'000'000 + tv_usec. 0 = unknown (permission denied).
  uint64_t startTime = 0;
  std::string name;                // Linux comm, macOS pbi_comm
  std::vector<std::string> argv;   // empty for zombies, kernel threads, or when hidden
  std::string exe;                 // resolved executable path; "" if unreadable
  uint64_t rssBytes = 0;
  double cpuSeconds = 0;           // user + system, cumulative
  bool zombie = false;             // exited but not yet reaped
};

// Errors carry errno-like codes: ESRCH = no such process (or a zombie, for kills),
// EPERM/EACCES = not ours to read, ESTALE = the PID now names a different process.
Result<ProcessInfo> readProcess(int pid);
// Direct children of ppid, ascending. Linux scans /proc/*/stat by ppid (not
// /proc/<pid>/task/*/children, which the man page calls unreliable unless children are
// frozen); macOS proc_listchildpids.
Result<std::vector<int>> listChildren(int ppid);
Result<std::vector<int>> listAllPids();
// The process's environment as it was at exec (Linux /proc/<pid>/environ; macOS the env
// part of KERN_PROCARGS2, which the kernel may withhold: then an empty map, not an error).
Result<std::map<std::string, std::string>> readEnvironment(int pid);
// The PID of the process listening on TCP `port` (IPv4 or IPv6), or nullopt when none is
// visible (nothing listens, or the listener belongs to another user and its fds cannot be
// read). When a listening socket is shared by a parent and its children, the topmost
// holder is returned.
std::optional<int> findListeningPid(uint16_t port);

// Apple Silicon kernel (sysctl hw.optional.arm64 == 1, also true under Rosetta); false on
// Linux and Intel Macs.
bool isAppleSilicon();
// The running program's own executable, absolute and resolved (Linux /proc/self/exe; macOS
// _NSGetExecutablePath + realpath). oasisctl install uses it to find oasisd beside itself.
Result<std::string> selfExecutablePath();
// Physical memory (Linux MemTotal; macOS hw.memsize).
Result<uint64_t> totalMemoryBytes();
// The OS's own memory signals as one sample: Linux /proc/meminfo + /proc/vmstat +
// /proc/pressure/memory; macOS host_statistics64(HOST_VM_INFO64) in vm_kernel_page_size
// pages + kern.memorystatus_vm_pressure_level + hw.memsize.
Result<MemorySample> nativeMemory(const Clock& clock);

// ---------------------------------------------------------------------------------------
// Verified kill
// ---------------------------------------------------------------------------------------

struct ProcessIdentity {
  int pid = 0;
  uint64_t startTime = 0;      // from ProcessInfo::startTime at discovery; must be non-zero
  int expectedPpid = -1;       // -1 = do not check (e.g. an orphan re-parented to init)
  std::string mustContainArg;  // "" = do not check; e.g. "--model" for a runner
};

// Reads the process now and records its identity.
Result<ProcessIdentity> identify(int pid, int expectedPpid = -1, std::string mustContainArg = {});

// Does `info` still match `identity`? The error explains the first mismatch (code ESTALE).
Status matchesIdentity(const ProcessInfo& info, const ProcessIdentity& identity);

// Sends `signal` only if the PID still names the process recorded in `identity`.
// Linux: pidfd_open(pid) FIRST, then re-read /proc/<pid>/stat (start time, ppid, state) and
// /proc/<pid>/cmdline, refuse on any difference, then pidfd_send_signal — the pidfd pins
// the process that was verified, so a reuse after the check cannot redirect the signal.
// (Kernels without pidfd, < 5.3: verify, then kill(); the window is microseconds.)
// macOS: re-check start time, ppid and argv immediately before kill() (no pidfd exists).
// Errors: ESRCH if the process is gone or a zombie, ESTALE on identity mismatch, else the
// errno of the failing call. A refused kill sends nothing.
Status killVerified(const ProcessIdentity& identity, int signal);

// Owns a file descriptor; closes it on destruction.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept;
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// A descriptor that becomes readable when the identified process exits (Linux: a pidfd;
// macOS: a kqueue with EVFILT_PROC/NOTE_EXIT registered). The identity is verified after
// the descriptor is opened. Suits asio::posix::stream_descriptor::async_wait(wait_read).
// ESRCH when the process is already gone.
Result<OwnedFd> openExitWatch(const ProcessIdentity& identity);

// Blocks until the identified process has exited (or become a zombie, or its PID now names
// another process), at most `timeout`. true = exited, false = still running at the deadline.
// Blocking: for the supervisor's worker or for tests; the event loop should await
// openExitWatch() instead.
Result<bool> waitForExit(const ProcessIdentity& identity, std::chrono::milliseconds timeout);

// ---------------------------------------------------------------------------------------
// Injectable facade
// ---------------------------------------------------------------------------------------

// The same operations behind a virtual interface, so the supervisor and its tests can swap
// the host (e.g. simulate Apple Silicon to test the flash-attention launch policy).
class Platform {
 public:
  virtual ~Platform() = default;
  virtual Result<ProcessInfo> readProcess(int pid) { return platform::readProcess(pid); }
  virtual Result<std::vector<int>> listChildren(int ppid) { return platform::listChildren(ppid); }
  virtual Result<std::vector<int>> listAllPids() { return platform::listAllPids(); }
  virtual Result<std::map<std::string, std::string>> readEnvironment(int pid) {
    return platform::readEnvironment(pid);
  }
  virtual std::optional<int> findListeningPid(uint16_t port) { return platform::findListeningPid(port); }
  virtual bool isAppleSilicon() { return platform::isAppleSilicon(); }
  virtual Result<uint64_t> totalMemoryBytes() { return platform::totalMemoryBytes(); }
  virtual Result<MemorySample> nativeMemory(const Clock& clock) { return platform::nativeMemory(clock); }
  virtual Status killVerified(const ProcessIdentity& identity, int signal) {
    return platform::killVerified(identity, signal);
  }
  virtual Result<bool> waitForExit(const ProcessIdentity& identity, std::chrono::milliseconds timeout) {
    return platform::waitForExit(identity, timeout);
  }
};

// The real host. Tests derive from Platform and override what they simulate.
inline Platform& nativePlatform() {
  static Platform instance;
  return instance;
}

}  // namespace oasis::platform
