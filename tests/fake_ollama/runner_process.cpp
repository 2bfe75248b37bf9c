#include "tests/fake_ollama/runner_process.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

extern char** environ;

namespace fake_ollama {

oasis::Result<uint16_t> pickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return oasis::Error(std::string("socket: ") + std::strerror(errno), errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    return oasis::Error(std::string("bind 127.0.0.1:0: ") + std::strerror(e), e);
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return static_cast<uint16_t>(ntohs(addr.sin_port));
}

oasis::Result<pid_t> spawnRunner(const RunnerLaunch& l) {
  // Re-execute ourselves: fake-ollama's runner lives in the same executable, as `ollama
  // runner` does in era B.
  std::vector<std::string> args = {"fake-ollama", "runner",     "--model",    l.model,
                                   "--port",      std::to_string(l.port), "--flash-attn",
                                   l.flashAttention ? "on" : "off",
                                   "--load-ms",   std::to_string(l.loadMs), "--parallel", std::to_string(l.parallel)};
  if (l.loadFail) args.push_back("--load-fail");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);  // stdout -> serve's stderr
  // Nothing else of serve's leaks into the runner (Go's fds are close-on-exec): an orphaned
  // runner must not keep serve's listening socket open.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return oasis::Error(std::string("posix_spawn runner: ") + std::strerror(rc), rc);
  return pid;
}

int killAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

std::optional<int> tryReap(pid_t pid) {
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == pid) return status;
  if (r < 0 && errno == ECHILD) return -1;
  return std::nullopt;
}

std::string describeWaitStatus(int status) {
  if (status < 0) return "unknown status";
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig == SIGKILL) return "signal: killed";
    return std::string("signal: ") + strsignal(sig);
  }
  return "status " + std::to_string(status);
}

}  // namespace fake_ollama
