#include "daemon/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <cerrno>
#include <cstring>
#include <regex>

extern char** environ;

namespace oasis {

namespace net = boost::asio;
using boost::system::error_code;

std::string ServerExit::describe() const {
  if (signal) return "killed by signal " + std::to_string(*signal) + " (" + strsignal(*signal) + ")";
  if (exitCode) return "exited with code " + std::to_string(*exitCode);
  return "exited";
}

std::optional<double> parseRunnerStartedLine(const std::string& line) {
  // Era B: "llama runner started in 3.21 seconds"; era C: "llama-server started in 12.34 seconds".
  static const std::regex re(R"((?:llama runner|llama-server|runner) started in ([0-9]+(?:\.[0-9]+)?) seconds)");
  std::smatch m;
  if (std::regex_search(line, m, re)) return std::stod(m[1].str());
  return std::nullopt;
}

struct ServerProcess::Impl : std::enable_shared_from_this<ServerProcess::Impl> {
  net::any_io_executor exec;
  LineHandler onLine;
  ExitHandler onExit;
  pid_t pid = -1;
  bool exited = true;
  // One pipe end and its buffer per launch, owned by the read chain itself. A serve that
  // crashes leaves orphaned runners holding the pipe's write end (fake-ollama's runners log
  // through it), so the old read is still in progress when the next launch replaces it:
  // closing cancels it, and the shared_ptr in its handler keeps the descriptor and buffer
  // alive until that handler has run. (Destroying them in place was a use-after-free: the
  // incident replay's serve crash segfaulted oasisd.)
  struct LinePipe {
    net::posix::stream_descriptor d;
    net::streambuf buf;
    LinePipe(net::any_io_executor e, int fd) : d(e, fd) {}
  };
  std::shared_ptr<LinePipe> out;
  std::shared_ptr<LinePipe> err;
  net::signal_set sigchld;
  net::steady_timer poll;

  explicit Impl(net::any_io_executor e) : exec(e), sigchld(e, SIGCHLD), poll(e) {}

  static void closePipe(const std::shared_ptr<LinePipe>& p) {
    error_code ignored;
    if (p) p->d.close(ignored);
  }

  void readLines(std::shared_ptr<LinePipe> pipe) {
    auto self = shared_from_this();
    LinePipe* p = pipe.get();
    net::async_read_until(p->d, p->buf, '\n', [self, pipe](error_code ec, std::size_t n) {
      net::streambuf* buf = &pipe->buf;
      if (ec) {
        // Flush a last partial line.
        if (buf->size() > 0) {
          std::string rest(net::buffers_begin(buf->data()), net::buffers_end(buf->data()));
          buf->consume(buf->size());
          if (self->onLine && !rest.empty()) self->onLine(rest);
        }
        return;
      }
      std::string line(net::buffers_begin(buf->data()), net::buffers_begin(buf->data()) + static_cast<long>(n));
      buf->consume(n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      if (self->onLine) self->onLine(line);
      self->readLines(pipe);
    });
  }

  // SIGCHLD wakes us; waitpid(pid, WNOHANG) decides. A periodic poll backs up the signal
  // (signals coalesce, and another component may reap its own children).
  void watchExit() {
    auto self = shared_from_this();
    sigchld.async_wait([self](error_code ec, int) {
      if (ec) return;
      self->checkExit();
      if (!self->exited) self->watchExit();
    });
    schedulePoll();
  }
  void schedulePoll() {
    auto self = shared_from_this();
    poll.expires_after(std::chrono::milliseconds(500));
    poll.async_wait([self](error_code ec) {
      if (ec) return;
      self->checkExit();
    });
  }

  void checkExit() {
    if (exited || pid <= 0) return;
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == 0) {
      schedulePoll();
      return;
    }
    if (r < 0 && errno == EINTR) {
      schedulePoll();
      return;
    }
    exited = true;
    ServerExit e;
    if (r == pid) {
      if (WIFEXITED(status)) e.exitCode = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) e.signal = WTERMSIG(status);
    }
    error_code ignored;
    sigchld.cancel(ignored);
    poll.cancel();
    if (onExit) onExit(e);
  }
};

ServerProcess::ServerProcess(net::any_io_executor exec, LineHandler onLine, ExitHandler onExit)
    : impl_(std::make_shared<Impl>(exec)) {
  impl_->onLine = std::move(onLine);
  impl_->onExit = std::move(onExit);
}

ServerProcess::~ServerProcess() {
  if (impl_) {
    impl_->onExit = nullptr;
    impl_->onLine = nullptr;
    error_code ignored;
    impl_->sigchld.cancel(ignored);
    impl_->poll.cancel();
    Impl::closePipe(impl_->out);
    Impl::closePipe(impl_->err);
  }
}

Status ServerProcess::launch(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  if (argv.empty()) return Error("ollama.command is empty");
  if (running()) return Error("serve is already running (pid " + std::to_string(impl_->pid) + ")");
  int outPipe[2], errPipe[2];
  if (::pipe2(outPipe, O_CLOEXEC) != 0) return Error(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(errPipe, O_CLOEXEC) != 0) {
    ::close(outPipe[0]);
    ::close(outPipe[1]);
    return Error(std::string("pipe: ") + std::strerror(errno));
  }
  // Build argv and envp before fork: the child may only call async-signal-safe functions.
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::map<std::string, std::string> merged;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (auto& [k, v] : env) {
    if (v == "\x01unset") merged.erase(k);
    else merged[k] = v;
  }
  std::vector<std::string> envStrings;
  for (auto& [k, v] : merged) envStrings.push_back(k + "=" + v);
  std::vector<char*> cenv;
  for (auto& s : envStrings) cenv.push_back(s.data());
  cenv.push_back(nullptr);

  // An exec failure is reported through a CLOEXEC pipe: readable data = errno from the child.
  int execPipe[2];
  if (::pipe2(execPipe, O_CLOEXEC) != 0) return Error(std::string("pipe: ") + std::strerror(errno));

  pid_t pid = ::fork();
  if (pid < 0) return Error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
#ifdef __linux__
    // If oasisd itself is killed (kill -9, OOM), serve gets SIGTERM and unloads its runners
    // rather than living on unsupervised, holding the port and GPU memory. (macOS has no
    // equivalent; there the next oasisd finds the listener on the port at start.)
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() == 1) ::_exit(1);
#endif
    ::dup2(outPipe[1], STDOUT_FILENO);
    ::dup2(errPipe[1], STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    // Restore default signal dispositions and an empty mask for the child.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    environ = cenv.data();
    ::execvp(cargv[0], cargv.data());
    int e = errno;
    ssize_t ignored = ::write(execPipe[1], &e, sizeof e);
    (void)ignored;
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, to close the race with an early signal
  ::close(outPipe[1]);
  ::close(errPipe[1]);
  ::close(execPipe[1]);
  int childErr = 0;
  ssize_t n;
  do {
    n = ::read(execPipe[0], &childErr, sizeof childErr);
  } while (n < 0 && errno == EINTR);
  ::close(execPipe[0]);
  if (n == static_cast<ssize_t>(sizeof childErr)) {
    int status;
    ::waitpid(pid, &status, 0);
    ::close(outPipe[0]);
    ::close(errPipe[0]);
    return Error("cannot execute '" + argv[0] + "': " + std::strerror(childErr), childErr);
  }
  impl_->pid = pid;
  impl_->exited = false;
  Impl::closePipe(impl_->out);  // the previous serve's, possibly still held open by its orphans
  Impl::closePipe(impl_->err);
  impl_->out = std::make_shared<Impl::LinePipe>(impl_->exec, outPipe[0]);
  impl_->err = std::make_shared<Impl::LinePipe>(impl_->exec, errPipe[0]);
  impl_->readLines(impl_->out);
  impl_->readLines(impl_->err);
  impl_->watchExit();
  return {};
}

bool ServerProcess::running() const { return impl_->pid > 0 && !impl_->exited; }
int ServerProcess::pid() const { return running() ? impl_->pid : -1; }

void ServerProcess::signalGroup(int sig) {
  // Also after serve exited: orphaned runners keep the group alive and reachable.
  if (impl_->pid > 0) ::kill(-impl_->pid, sig);
}
void ServerProcess::signalServe(int sig) {
  if (impl_->pid > 0 && !impl_->exited) ::kill(impl_->pid, sig);
}

}  // namespace oasis
