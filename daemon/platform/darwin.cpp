// macOS implementation of the platform layer: libproc for the process table, sysctl for
// command lines and hardware facts, Mach host statistics for memory (platform-facts §2-3).
// macOS has no pidfd: a kill re-checks the recorded identity immediately before kill(),
// and exits are watched with kqueue EVFILT_PROC/NOTE_EXIT.
#include <algorithm>
#include <cerrno>
#include <climits>  // PATH_MAX
#include <cstdlib>  // realpath
#include <cstring>
#include <set>

#include <fcntl.h>
#include <libproc.h>
#include <mach-o/dyld.h>  // _NSGetExecutablePath
#include <mach/mach.h>
#include <mach/mach_error.h>
#include <mach/mach_time.h>
#include <mach/vm_page_size.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/event.h>
#include <sys/proc.h>  // SZOMB
#include <sys/proc_info.h>
#include <sys/sysctl.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/process_parse.h"
#include "daemon/platform/platform.h"

namespace oasis::platform {
namespace {

std::string errnoText(int err) { return std::strerror(err); }

Error noSuchProcess(int pid) { return Error("process " + std::to_string(pid) + " does not exist", ESRCH); }

// proc_taskinfo CPU times are in Mach absolute-time units, which are nanoseconds on Intel
// but 125/3 ns ticks on Apple Silicon: convert with the timebase.
double machTicksToSeconds(uint64_t ticks) {
  static const mach_timebase_info_data_t timebase = [] {
    mach_timebase_info_data_t tb{};
    if (mach_timebase_info(&tb) != KERN_SUCCESS || tb.denom == 0) {
      tb.numer = 1;
      tb.denom = 1;
    }
    return tb;
  }();
  return static_cast<double>(ticks) * static_cast<double>(timebase.numer) / static_cast<double>(timebase.denom) / 1e9;
}

std::string boundedString(const char* chars, std::size_t capacity) { return std::string(chars, strnlen(chars, capacity)); }

// sysctl {CTL_KERN, KERN_PROCARGS2, pid}: argv and (when the kernel allows) the environment.
// EINVAL for another user's process (unless root) and for zombies; ESRCH when gone.
Result<ProcArgs> readProcArgs(int pid) {
  static const std::size_t argmax = [] {
    int mib[2] = {CTL_KERN, KERN_ARGMAX};
    int value = 0;
    std::size_t size = sizeof value;
    if (sysctl(mib, 2, &value, &size, nullptr, 0) != 0 || value <= 0) value = 1 << 20;
    return static_cast<std::size_t>(value);
  }();
  thread_local std::vector<char> buffer;  // ARG_MAX (1 MiB) per call would churn the heap
  buffer.resize(argmax);
  int mib[3] = {CTL_KERN, KERN_PROCARGS2, pid};
  std::size_t size = buffer.size();
  if (sysctl(mib, 3, buffer.data(), &size, nullptr, 0) != 0) {
    int err = errno;
    return Error("KERN_PROCARGS2(" + std::to_string(pid) + "): " + errnoText(err), err);
  }
  return parseProcArgs2(std::string_view(buffer.data(), std::min(size, buffer.size())));
}

void fillFromBsdInfo(const proc_bsdinfo& bsd, ProcessInfo& info) {
  info.ppid = static_cast<int>(bsd.pbi_ppid);
  info.pgid = static_cast<int>(bsd.pbi_pgid);
  // The start timeval as one number: (pid, start) is the public PID-reuse guard.
  info.startTime = bsd.pbi_start_tvsec * 1'000'000ull + bsd.pbi_start_tvusec;
  info.name = boundedString(bsd.pbi_comm, sizeof bsd.pbi_comm);
  // Exiting (PROC_FLAG_INEXIT) counts as exited: it must not be signalled, and its
  // command line is already unreadable.
  info.zombie = bsd.pbi_status == SZOMB || (bsd.pbi_flags & PROC_FLAG_INEXIT) != 0;
}

// ppid of any process, including other users' and zombies (no same-user check).
std::optional<proc_bsdshortinfo> shortInfo(int pid) {
  proc_bsdshortinfo info{};
  int n = proc_pidinfo(pid, PROC_PIDT_SHORTBSDINFO, 1 /* zombies too */, &info, sizeof info);
  if (n != static_cast<int>(sizeof info)) return std::nullopt;
  return info;
}

Status refuseObviouslyWrong(const ProcessIdentity& identity) {
  if (identity.pid <= 0) return Error("refusing to signal pid " + std::to_string(identity.pid), EINVAL);
  if (identity.pid == ::getpid()) return Error("refusing to signal oasisd itself", EINVAL);
  return Status::success();
}

template <typename Fill>
Result<std::vector<int>> growingPidList(std::size_t initial, Fill fill, const char* what) {
  std::vector<int> pids(std::max<std::size_t>(initial, 64));
  for (int attempt = 0; attempt < 8; ++attempt) {
    errno = 0;
    int count = fill(pids.data(), static_cast<int>(pids.size() * sizeof(int)));  // returns a COUNT
    if (count < 0 || (count == 0 && errno != 0)) {
      int err = errno;
      return Error(std::string(what) + ": " + errnoText(err), err);
    }
    if (static_cast<std::size_t>(count) < pids.size()) {  // it fit: the list is complete
      pids.resize(static_cast<std::size_t>(count));
      pids.erase(std::remove_if(pids.begin(), pids.end(), [](int p) { return p <= 0; }), pids.end());
      std::sort(pids.begin(), pids.end());
      return pids;
    }
    pids.resize(pids.size() * 2);
  }
  return Error(std::string(what) + ": process list keeps growing", EAGAIN);
}

}  // namespace

Result<ProcessInfo> readProcess(int pid) {
  if (pid <= 0) return Error("invalid pid " + std::to_string(pid), EINVAL);
  ProcessInfo info;
  info.pid = pid;

  proc_taskallinfo all{};
  int n = proc_pidinfo(pid, PROC_PIDTASKALLINFO, 0, &all, sizeof all);
  if (n == static_cast<int>(sizeof all)) {
    fillFromBsdInfo(all.pbsd, info);
    info.rssBytes = all.ptinfo.pti_resident_size;
    info.cpuSeconds = machTicksToSeconds(all.ptinfo.pti_total_user + all.ptinfo.pti_total_system);
  } else {
    const int firstErr = errno;
    // Zombies answer PROC_PIDTBSDINFO only with a non-zero arg; another user's process
    // answers neither (EPERM) but does answer the short info, which has no start time.
    proc_bsdinfo bsd{};
    if (proc_pidinfo(pid, PROC_PIDTBSDINFO, 1, &bsd, sizeof bsd) == static_cast<int>(sizeof bsd)) {
      fillFromBsdInfo(bsd, info);
    } else if (auto sh = shortInfo(pid)) {
      info.ppid = static_cast<int>(sh->pbsi_ppid);
      info.pgid = static_cast<int>(sh->pbsi_pgid);
      info.name = boundedString(sh->pbsi_comm, sizeof sh->pbsi_comm);
      info.zombie = sh->pbsi_status == SZOMB;
      // startTime stays 0: this process's identity cannot be verified, so it is never killed.
    } else {
      int err = errno != 0 ? errno : firstErr;
      if (err == ESRCH || err == 0) return noSuchProcess(pid);
      return Error("proc_pidinfo(" + std::to_string(pid) + "): " + errnoText(err), err);
    }
  }

  char path[PROC_PIDPATHINFO_MAXSIZE];
  int len = proc_pidpath(pid, path, sizeof path);
  if (len > 0) info.exe.assign(path, static_cast<std::size_t>(len));
  if (!info.zombie) {
    if (auto args = readProcArgs(pid)) info.argv = std::move(args->argv);
  }
  return info;
}

Result<std::vector<int>> listAllPids() {
  int hint = proc_listallpids(nullptr, 0);  // a count with slack ((nprocs + 20))
  return growingPidList(hint > 0 ? static_cast<std::size_t>(hint) + 64 : 1024,
                        [](int* buffer, int bytes) { return proc_listallpids(buffer, bytes); }, "proc_listallpids");
}

Result<std::vector<int>> listChildren(int ppid) {
  auto pids = growingPidList(
      64, [ppid](int* buffer, int bytes) { return proc_listchildpids(ppid, buffer, bytes); }, "proc_listchildpids");
  if (!pids) return pids.error();
  // PROC_PPID_ONLY also matches traced processes whose ORIGINAL parent is ppid: keep only
  // processes whose current parent is ppid.
  std::vector<int> children;
  for (int pid : *pids) {
    auto sh = shortInfo(pid);
    if (sh && static_cast<int>(sh->pbsi_ppid) == ppid) children.push_back(pid);
  }
  return children;
}

Result<std::map<std::string, std::string>> readEnvironment(int pid) {
  auto args = readProcArgs(pid);
  if (!args) {
    if (args.error().code == ESRCH) return noSuchProcess(pid);
    return args.error();
  }
  return parseEnvironEntries(args->env);
}

std::optional<int> findListeningPid(uint16_t port) {
  auto pids = listAllPids();
  if (!pids) return std::nullopt;
  std::set<int> holders;
  std::vector<proc_fdinfo> fds;
  for (int pid : *pids) {
    int bytes = proc_pidinfo(pid, PROC_PIDLISTFDS, 0, nullptr, 0);  // size hint
    if (bytes <= 0) continue;  // EPERM for other users' processes
    fds.resize(static_cast<std::size_t>(bytes) / sizeof(proc_fdinfo) + 16);
    bytes = proc_pidinfo(pid, PROC_PIDLISTFDS, 0, fds.data(), static_cast<int>(fds.size() * sizeof(proc_fdinfo)));
    if (bytes <= 0) continue;
    const std::size_t count = static_cast<std::size_t>(bytes) / sizeof(proc_fdinfo);
    for (std::size_t i = 0; i < count; ++i) {
      if (fds[i].proc_fdtype != PROX_FDTYPE_SOCKET) continue;
      socket_fdinfo socket{};
      int got = proc_pidfdinfo(pid, fds[i].proc_fd, PROC_PIDFDSOCKETINFO, &socket, sizeof socket);
      if (got != static_cast<int>(sizeof socket)) continue;
      if (socket.psi.soi_kind != SOCKINFO_TCP) continue;
      const tcp_sockinfo& tcp = socket.psi.soi_proto.pri_tcp;
      if (tcp.tcpsi_state != TSI_S_LISTEN) continue;
      // insi_lport holds the port in network byte order in an int.
      if (ntohs(static_cast<uint16_t>(tcp.tcpsi_ini.insi_lport)) != port) continue;
      holders.insert(pid);
      break;
    }
  }
  if (holders.empty()) return std::nullopt;
  for (int pid : holders) {
    auto sh = shortInfo(pid);
    if (sh && holders.count(static_cast<int>(sh->pbsi_ppid)) == 0) return pid;
  }
  return *holders.begin();
}

bool isAppleSilicon() {
  // 1 on Apple Silicon kernels, also when asked from a Rosetta process; ENOENT on Intel.
  int value = 0;
  std::size_t size = sizeof value;
  if (sysctlbyname("hw.optional.arm64", &value, &size, nullptr, 0) != 0) return false;
  return value == 1;
}

Result<std::string> selfExecutablePath() {
  uint32_t size = 0;
  _NSGetExecutablePath(nullptr, &size);  // -1, and size set to what is needed
  std::string raw(size, '\0');
  if (_NSGetExecutablePath(raw.data(), &size) != 0) return Error{"_NSGetExecutablePath failed"};
  char resolved[PATH_MAX];
  if (!::realpath(raw.c_str(), resolved)) return Error{std::string("realpath: ") + std::strerror(errno)};
  return std::string(resolved);
}

Result<uint64_t> totalMemoryBytes() {
  uint64_t bytes = 0;
  std::size_t size = sizeof bytes;
  if (sysctlbyname("hw.memsize", &bytes, &size, nullptr, 0) != 0) {
    int err = errno;
    return Error("sysctl hw.memsize: " + errnoText(err), err);
  }
  return bytes;
}

Result<MemorySample> nativeMemory(const Clock& clock) {
  // mach_host_self() adds a send right on every call; take one for the process lifetime.
  static const mach_port_t host = mach_host_self();
  vm_statistics64_data_t vs{};
  mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
  kern_return_t kr = host_statistics64(host, HOST_VM_INFO64, reinterpret_cast<host_info64_t>(&vs), &count);
  if (kr != KERN_SUCCESS) {
    return Error(std::string("host_statistics64(HOST_VM_INFO64): ") + mach_error_string(kr), static_cast<int>(kr));
  }

  // The same numbers vm_stat prints, under its labels, so both paths share one converter.
  // Counts are in KERNEL pages: vm_kernel_page_size, not getpagesize()/hw.pagesize (4096 for
  // a Rosetta process on a 16 KiB-page kernel).
  VmStatSnapshot snap;
  snap.pageSize = static_cast<uint64_t>(vm_kernel_page_size);
  auto& v = snap.values;
  // vm_stat's "Pages free" is free_count - speculative_count (free_count includes them).
  v["Pages free"] = vs.free_count >= vs.speculative_count ? vs.free_count - vs.speculative_count : 0;
  v["Pages active"] = vs.active_count;
  v["Pages inactive"] = vs.inactive_count;
  v["Pages speculative"] = vs.speculative_count;
  v["Pages throttled"] = vs.throttled_count;
  v["Pages wired down"] = vs.wire_count;
  v["Pages purgeable"] = vs.purgeable_count;
  v["Translation faults"] = vs.faults;
  v["Pages copy-on-write"] = vs.cow_faults;
  v["Pages zero filled"] = vs.zero_fill_count;
  v["Pages reactivated"] = vs.reactivations;
  v["Pages purged"] = vs.purges;
  v["File-backed pages"] = vs.external_page_count;
  v["Anonymous pages"] = vs.internal_page_count;
  v["Pages stored in compressor"] = vs.total_uncompressed_pages_in_compressor;
  v["Pages occupied by compressor"] = vs.compressor_page_count;
  v["Decompressions"] = vs.decompressions;
  v["Compressions"] = vs.compressions;
  v["Pageins"] = vs.pageins;
  v["Pageouts"] = vs.pageouts;
  v["Swapins"] = vs.swapins;
  v["Swapouts"] = vs.swapouts;

  std::optional<uint64_t> total;
  if (auto t = totalMemoryBytes()) total = *t;
  MemorySample sample = memorySampleFromVmStat(snap, clock.wallNow(), clock.steadyNow(), total);

  // 1 normal, 2 warn, 4 critical. A masked OID on release kernels: readable by name only.
  int level = 0;
  std::size_t size = sizeof level;
  if (sysctlbyname("kern.memorystatus_vm_pressure_level", &level, &size, nullptr, 0) == 0 &&
      (level == 1 || level == 2 || level == 4)) {
    sample.osPressureLevel = level;
  }
  sample.source = "darwin_native";
  return sample;
}

Status killVerified(const ProcessIdentity& identity, int signal) {
  if (auto st = refuseObviouslyWrong(identity); !st) return st;
  // No pidfd on macOS: re-read start time, ppid and argv immediately before kill(). What
  // remains is the few microseconds between this check and kill(); a PID reuse inside
  // them would need the process to exit AND its PID to be handed out again meanwhile.
  auto info = readProcess(identity.pid);
  if (!info) return info.error();
  if (auto st = matchesIdentity(*info, identity); !st) return st;
  if (info->zombie) return Error("process " + std::to_string(identity.pid) + " has already exited", ESRCH);
  if (::kill(identity.pid, signal) != 0) {
    int err = errno;
    if (err == ESRCH) return Error("process " + std::to_string(identity.pid) + " exited before the signal", ESRCH);
    return Error("signal " + std::to_string(signal) + " to " + std::to_string(identity.pid) + ": " + errnoText(err), err);
  }
  return Status::success();
}

Result<OwnedFd> openExitWatch(const ProcessIdentity& identity) {
  if (identity.pid <= 0) return Error("invalid pid " + std::to_string(identity.pid), EINVAL);
  OwnedFd kq(::kqueue());
  if (!kq.valid()) {
    int err = errno;
    return Error("kqueue: " + errnoText(err), err);
  }
  ::fcntl(kq.get(), F_SETFD, FD_CLOEXEC);
  struct kevent change;
  EV_SET(&change, static_cast<uintptr_t>(identity.pid), EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, nullptr);
  // With no room for events, a registration error comes back as -1/errno.
  if (::kevent(kq.get(), &change, 1, nullptr, 0, nullptr) != 0) {
    int err = errno;
    if (err == ESRCH) return noSuchProcess(identity.pid);
    return Error("kevent(EVFILT_PROC, " + std::to_string(identity.pid) + "): " + errnoText(err), err);
  }
  // Registered on whatever the PID names now; make sure that is the recorded process.
  auto info = readProcess(identity.pid);
  if (!info) return info.error();
  if (auto st = matchesIdentity(*info, identity); !st) return st.error();
  if (info->zombie) return Error("process " + std::to_string(identity.pid) + " has already exited", ESRCH);
  return kq;
}

Result<bool> waitForExit(const ProcessIdentity& identity, std::chrono::milliseconds timeout) {
  auto watch = openExitWatch(identity);
  if (!watch) {
    if (watch.error().code == ESRCH || watch.error().code == ESTALE) return true;
    return watch.error();
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) left = std::chrono::nanoseconds(0);
    timespec ts{static_cast<time_t>(left.count() / 1'000'000'000), static_cast<long>(left.count() % 1'000'000'000)};
    struct kevent event;
    int n = ::kevent(watch->get(), nullptr, 0, &event, 1, &ts);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) {
      int err = errno;
      return Error("kevent wait: " + errnoText(err), err);
    }
  }
}

}  // namespace oasis::platform
