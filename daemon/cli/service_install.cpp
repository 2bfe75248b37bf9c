#include "daemon/cli/service_install.h"

#include "daemon/cli/service_templates.h"  // generated from launchd/ and etc/

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace oasis::cli {

namespace {

std::string replaceAll(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// systemd's command-line quoting: a word with spaces or quotes goes in double quotes.
std::string systemdWord(const std::string& w) {
  if (w.find_first_of(" \t\"'\\") == std::string::npos) return w;
  std::string out = "\"";
  for (char c : w) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string xmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string launchdDomain(const ServiceContext& ctx) { return "gui/" + std::to_string(ctx.uid); }
std::string launchdTarget(const ServiceContext& ctx) { return launchdDomain(ctx) + "/" + std::string(kLaunchdLabel); }

std::string parentDir(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

ServiceStep makeDir(std::string path, unsigned mode, std::string why) {
  ServiceStep s;
  s.kind = ServiceStep::Kind::MakeDir;
  s.path = std::move(path);
  s.mode = mode;
  s.why = std::move(why);
  return s;
}

ServiceStep writeFile(std::string path, std::string content, unsigned mode, bool keepExisting, std::string why) {
  ServiceStep s;
  s.kind = ServiceStep::Kind::WriteFile;
  s.path = std::move(path);
  s.content = std::move(content);
  s.mode = mode;
  s.keepExisting = keepExisting;
  s.why = std::move(why);
  return s;
}

ServiceStep removeFile(std::string path, std::string why) {
  ServiceStep s;
  s.kind = ServiceStep::Kind::RemoveFile;
  s.path = std::move(path);
  s.why = std::move(why);
  return s;
}

ServiceStep runStep(std::vector<std::string> argv, bool mayFail, std::string why) {
  ServiceStep s;
  s.kind = ServiceStep::Kind::Run;
  s.argv = std::move(argv);
  s.mayFail = mayFail;
  s.why = std::move(why);
  return s;
}

// A config to start with: the defaults, with the concurrency the host calls for.
const char* const kStarterConfig = "{\n  \"max_concurrency\": \"auto\"\n}\n";

Status makeDirs(const std::string& path, unsigned mode) {
  std::string sofar;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    sofar = path.substr(0, pos);
    if (sofar.empty()) continue;
    if (::mkdir(sofar.c_str(), pos == std::string::npos ? mode : 0755) != 0 && errno != EEXIST)
      return Error{"mkdir " + sofar + ": " + std::strerror(errno)};
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return Error{path + " exists and is not a directory"};
  return {};
}

// Written beside the target and renamed over it: a reader never sees half a file.
Status writeAtomically(const std::string& path, const std::string& content, unsigned mode) {
  std::string tmp = path + ".tmp-oasisctl";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error{"create " + tmp + ": " + std::strerror(errno)};
  std::size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error{"write " + tmp + ": " + std::strerror(e)};
    }
    off += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, mode);  // the umask may have narrowed it further than we asked
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Error{"write " + tmp + ": " + std::strerror(e)};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Error{"rename " + tmp + " to " + path + ": " + std::strerror(e)};
  }
  return {};
}

// Runs argv (looked up on PATH) with its output sent to `log`; returns the exit status.
Result<int> runCommand(const std::vector<std::string>& argv, const std::function<void(const std::string&)>& log) {
  std::array<int, 2> pipefd{};
  if (::pipe(pipefd.data()) != 0) return Error{std::string("pipe: ") + std::strerror(errno)};
  ::fcntl(pipefd[0], F_SETFD, FD_CLOEXEC);  // pipe2 is not on macOS
  ::fcntl(pipefd[1], F_SETFD, FD_CLOEXEC);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    return Error{"cannot run " + argv[0] + ": " + std::strerror(rc)};
  }
  std::string output;
  std::array<char, 4096> buf{};
  for (;;) {
    ssize_t n = ::read(pipefd[0], buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::size_t start = 0;
  while (start < output.size()) {
    auto end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    if (end > start) log(argv[0] + ": " + output.substr(start, end - start));
    start = end + 1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

std::string_view toString(ServiceManager m) { return m == ServiceManager::Launchd ? "launchd" : "systemd"; }

std::optional<ServiceManager> parseServiceManager(std::string_view name) {
  if (name == "launchd") return ServiceManager::Launchd;
  if (name == "systemd") return ServiceManager::Systemd;
  return std::nullopt;
}

ServiceManager hostServiceManager() {
#ifdef __APPLE__
  return ServiceManager::Launchd;
#else
  return ServiceManager::Systemd;
#endif
}

nlohmann::json ServiceStep::toJson() const {
  nlohmann::json j;
  switch (kind) {
    case Kind::MakeDir: j = {{"action", "mkdir"}, {"path", path}}; break;
    case Kind::WriteFile: j = {{"action", "write"}, {"path", path}, {"keep_existing", keepExisting}}; break;
    case Kind::RemoveFile: j = {{"action", "remove"}, {"path", path}}; break;
    case Kind::Run: j = {{"action", "run"}, {"argv", argv}, {"may_fail", mayFail}}; break;
  }
  j["why"] = why;
  return j;
}

std::string ServiceStep::describe() const {
  switch (kind) {
    case Kind::MakeDir: return "mkdir " + path;
    case Kind::WriteFile: return std::string(keepExisting ? "write (unless present) " : "write ") + path;
    case Kind::RemoveFile: return "remove " + path;
    case Kind::Run: {
      std::string s = "run";
      for (auto& a : argv) s += " " + (a.find(' ') == std::string::npos ? a : "'" + a + "'");
      return s;
    }
  }
  return {};
}

std::string renderLaunchdPlist(std::string_view templ, const ServiceContext& ctx) {
  std::string out = replaceAll(std::string(templ), "@HOME@", xmlEscape(ctx.home));
  out = replaceAll(std::move(out), "@BIN@", xmlEscape(ctx.binDir));
  // The template names the platform default config; an explicit one replaces it.
  std::string defaultConfig = xmlEscape(ctx.home) + "/Library/Application Support/oasisd/oasisd.json";
  return replaceAll(std::move(out), "<string>" + defaultConfig + "</string>",
                    "<string>" + xmlEscape(ctx.configPath) + "</string>");
}

std::string renderSystemdUnit(std::string_view templ, const ServiceContext& ctx) {
  std::string out;
  std::size_t start = 0;
  while (start < templ.size()) {
    auto end = templ.find('\n', start);
    std::string_view line = templ.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (line.rfind("ExecStart=", 0) == 0)
      out += "ExecStart=" + systemdWord(ctx.binDir + "/oasisd") + " --config " + systemdWord(ctx.configPath);
    else
      out += line;
    out += '\n';
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

std::string serviceFilePath(const ServiceContext& ctx) {
  if (ctx.manager == ServiceManager::Launchd)
    return ctx.home + "/Library/LaunchAgents/" + std::string(kLaunchdLabel) + ".plist";
  return ctx.home + "/.config/systemd/user/" + std::string(kSystemdUnitName);
}

std::vector<ServiceStep> installPlan(const ServiceContext& ctx) {
  std::vector<ServiceStep> steps;
  std::string file = serviceFilePath(ctx);
  steps.push_back(makeDir(parentDir(ctx.configPath), 0700, "config directory (private: it names the socket)"));
  steps.push_back(writeFile(ctx.configPath, kStarterConfig, 0600, true, "a starter config; an existing one is kept"));
  steps.push_back(makeDir(parentDir(file), 0755, "the service manager's directory"));
  if (ctx.manager == ServiceManager::Launchd) {
    steps.push_back(makeDir(ctx.home + "/Library/Logs/oasisd", 0755, "launchd sends oasisd's output here"));
    steps.push_back(makeDir(ctx.home + "/Library/Application Support/oasisd", 0700, "socket and database directory"));
    steps.push_back(writeFile(file, renderLaunchdPlist(kLaunchdPlistTemplate, ctx), 0644, false, "the LaunchAgent"));
    steps.push_back(runStep({"launchctl", "bootout", launchdTarget(ctx)}, true, "unload a previous version (fails when none is loaded)"));
    steps.push_back(runStep({"launchctl", "bootstrap", launchdDomain(ctx), file}, false, "load the agent into the user's GUI session"));
    steps.push_back(runStep({"launchctl", "kickstart", "-k", launchdTarget(ctx)}, false, "start (or restart) oasisd now"));
  } else {
    steps.push_back(writeFile(file, renderSystemdUnit(kSystemdUnitTemplate, ctx), 0644, false, "the systemd user unit"));
    steps.push_back(runStep({"systemctl", "--user", "daemon-reload"}, false, "make systemd read the unit"));
    steps.push_back(runStep({"systemctl", "--user", "enable", std::string(kSystemdUnitName)}, false, "start it at login"));
    steps.push_back(runStep({"systemctl", "--user", "restart", std::string(kSystemdUnitName)}, false, "start (or restart) oasisd now"));
  }
  return steps;
}

std::vector<ServiceStep> uninstallPlan(const ServiceContext& ctx) {
  std::vector<ServiceStep> steps;
  std::string file = serviceFilePath(ctx);
  if (ctx.manager == ServiceManager::Launchd) {
    steps.push_back(runStep({"launchctl", "bootout", launchdTarget(ctx)}, true, "stop and unload the agent (fails when not loaded)"));
    steps.push_back(removeFile(file, "the LaunchAgent"));
  } else {
    steps.push_back(runStep({"systemctl", "--user", "disable", "--now", std::string(kSystemdUnitName)}, true,
                            "stop it and stop starting it at login (fails when not installed)"));
    steps.push_back(removeFile(file, "the systemd user unit"));
    steps.push_back(runStep({"systemctl", "--user", "daemon-reload"}, true, "make systemd forget the unit"));
  }
  return steps;
}

Status executeStep(const ServiceStep& step, const std::function<void(const std::string&)>& log) {
  switch (step.kind) {
    case ServiceStep::Kind::MakeDir:
      return makeDirs(step.path, step.mode);
    case ServiceStep::Kind::WriteFile: {
      struct stat st {};
      if (step.keepExisting && ::stat(step.path.c_str(), &st) == 0) {
        log("kept the existing " + step.path);
        return {};
      }
      return writeAtomically(step.path, step.content, step.mode);
    }
    case ServiceStep::Kind::RemoveFile:
      if (::unlink(step.path.c_str()) != 0 && errno != ENOENT)
        return Error{"remove " + step.path + ": " + std::strerror(errno)};
      return {};
    case ServiceStep::Kind::Run: {
      auto rc = runCommand(step.argv, log);
      if (!rc) return rc.error();
      if (*rc != 0 && !step.mayFail) return Error{step.argv[0] + " exited with status " + std::to_string(*rc)};
      if (*rc != 0) log("(exit status " + std::to_string(*rc) + ", expected when there was nothing to undo)");
      return {};
    }
  }
  return {};
}

}  // namespace oasis::cli
