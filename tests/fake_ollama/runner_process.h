#pragma once
// Starting and stopping runner child processes. As in Ollama (ollama-behaviour.md §4 "Shared
// spawn details"): a direct child of serve, in serve's process group (no setpgid, no
// PDEATHSIG, so a SIGKILL of serve orphans it), stdout and stderr wired to serve's stderr,
// port picked by binding :0 and closing (the same small TOCTOU race), unload = SIGKILL + reap.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"

namespace fake_ollama {

struct RunnerLaunch {
  std::string model;
  uint16_t port = 0;
  bool flashAttention = true;
  int loadMs = 300;
  int parallel = 1;
  bool loadFail = false;
};

oasis::Result<uint16_t> pickFreePort();
oasis::Result<pid_t> spawnRunner(const RunnerLaunch& launch);

// SIGKILL then a blocking waitpid, like Ollama's Close(): Kill() then <-done with no timeout.
// Returns the wait status.
int killAndReap(pid_t pid);

// Non-blocking reap; the exit status if the child has exited.
std::optional<int> tryReap(pid_t pid);

std::string describeWaitStatus(int status);  // "exit status 1", "signal: killed"

}  // namespace fake_ollama
