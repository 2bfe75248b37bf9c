// The OS-neutral part of the platform layer (compiled on every OS).
#include "daemon/platform/platform.h"

#include <algorithm>
#include <cerrno>

#include <unistd.h>

namespace oasis::platform {

OwnedFd& OwnedFd::operator=(OwnedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

OwnedFd::~OwnedFd() {
  if (fd_ >= 0) ::close(fd_);
}

Status matchesIdentity(const ProcessInfo& info, const ProcessIdentity& identity) {
  const std::string who = "pid " + std::to_string(identity.pid);
  if (info.pid != identity.pid) {
    return Error(who + ": read pid " + std::to_string(info.pid) + " instead", ESTALE);
  }
  if (identity.startTime == 0) {
    return Error(who + ": no start time was recorded, so its identity cannot be verified", ESTALE);
  }
  if (info.startTime == 0) {
    return Error(who + ": start time unreadable now, so its identity cannot be verified", ESTALE);
  }
  if (info.startTime != identity.startTime) {
    return Error(who + " was reused: start time " + std::to_string(info.startTime) + " != recorded " +
                     std::to_string(identity.startTime) + " (a different process now has this PID)",
                 ESTALE);
  }
  if (identity.expectedPpid >= 0 && info.ppid != identity.expectedPpid) {
    return Error(who + ": parent is " + std::to_string(info.ppid) + ", expected " + std::to_string(identity.expectedPpid),
                 ESTALE);
  }
  // A zombie's command line reads empty; the start time already proved who it is.
  if (!identity.mustContainArg.empty() && !info.zombie) {
    const std::string& needle = identity.mustContainArg;
    bool found = std::any_of(info.argv.begin(), info.argv.end(), [&](const std::string& a) {
      return a == needle || (a.size() > needle.size() && a.compare(0, needle.size(), needle) == 0 && a[needle.size()] == '=');
    });
    if (!found) return Error(who + ": command line no longer contains '" + needle + "'", ESTALE);
  }
  return Status::success();
}

Result<ProcessIdentity> identify(int pid, int expectedPpid, std::string mustContainArg) {
  auto info = readProcess(pid);
  if (!info) return info.error();
  if (info->zombie) return Error("pid " + std::to_string(pid) + " has already exited (zombie)", ESRCH);
  if (info->startTime == 0) {
    return Error("pid " + std::to_string(pid) + ": start time unreadable, cannot record an identity", EPERM);
  }
  ProcessIdentity identity{pid, info->startTime, expectedPpid, std::move(mustContainArg)};
  if (auto st = matchesIdentity(*info, identity); !st) return st.error();
  return identity;
}

}  // namespace oasis::platform
