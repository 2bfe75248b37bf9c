// oasisctl as a subprocess against a real oasisd (with fake-ollama): exit codes, --json
// output and the readable tables for every command the CLI has.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "catch.h"
#include "support/oasisd.h"

using namespace oasis;
using namespace oasis::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct CtlResult {
  int exitCode = -1;  // -1: killed at the deadline
  std::string out;
  std::string err;
  json parsed() const { return json::parse(out, nullptr, false); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs oasisctl with `args`, stdout/stderr to files, waiting up to `deadline`.
CtlResult ctl(const std::vector<std::string>& args, std::chrono::milliseconds deadline = 60s,
              const std::vector<std::string>& extraEnv = {}) {
  TempDir dir;
  std::string outPath = dir.file("out"), errPath = dir.file("err");
  std::vector<std::string> all = {OASISCTL_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> envs;
  auto overridden = [&](std::string_view entry) {
    if (entry.rfind("OASISD_SOCKET=", 0) == 0) return true;
    for (auto& e : extraEnv)
      if (entry.substr(0, entry.find('=') + 1) == std::string_view(e).substr(0, e.find('=') + 1)) return true;
    return false;
  };
  for (char** e = environ; *e; ++e)
    if (!overridden(*e)) envs.emplace_back(*e);
  for (auto& e : extraEnv) envs.push_back(e);
  std::vector<char*> envp;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, all[0].c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  CtlResult r;
  bool done = waitFor(
      [&] {
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) != pid) return false;
        r.exitCode = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return true;
      },
      deadline, 10ms);
  if (!done) {
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
  }
  r.out = slurp(outPath);
  r.err = slurp(errPath);
  return r;
}

bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("oasisctl: usage errors exit 2, help exits 0", "[oasisctl]") {
  auto r = ctl({"frobnicate"});
  CHECK(r.exitCode == 2);
  CHECK(has(r.err, "unknown command"));
  CHECK(ctl({"status", "--bogus"}).exitCode == 2);
  CHECK(ctl({"submit"}).exitCode == 2);
  auto h = ctl({"--help"});
  CHECK(h.exitCode == 0);
  CHECK(has(h.out, "submit"));
  CHECK(has(h.out, "timeline"));
  auto hs = ctl({"help", "timeline"});
  CHECK(hs.exitCode == 0);
  CHECK(has(hs.out, "Example:"));
}

TEST_CASE("oasisctl: an unreachable daemon exits 3 and says how to start it", "[oasisctl]") {
  TempDir dir;
  std::string sock = dir.file("nobody.sock");
  auto r = ctl({"--socket", sock, "status"});
  CHECK(r.exitCode == 3);
  INFO(r.err);
  CHECK(has(r.err, "oasisd is not running on " + sock));
  CHECK(has(r.err, "oasisd --config"));
  // The env var is honoured when there is no flag.
  auto e = ctl({"status", "--json"}, 60s, {"OASISD_SOCKET=" + sock});
  CHECK(e.exitCode == 3);
  CHECK(has(e.err, sock));
}

TEST_CASE("oasisctl: commands against a real oasisd", "[oasisctl]") {
  Oasisd d(json{{"stall_timeout_s", 2}, {"first_token_timeout_s", 5}, {"request_timeout_s", 20}});
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running" && s["server"]["up"] == true; },
                          30s));
  const std::string sock = d.socket();
  auto c = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", sock});
    auto r = ctl(args);
    UNSCOPED_INFO("oasisctl " << args[2] << " -> " << r.exitCode << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
    return r;
  };

  // status: table and --json; healthy -> 0.
  auto st = c({"status"});
  CHECK(st.exitCode == 0);
  CHECK(has(st.out, "running"));
  CHECK(has(st.out, "managed"));
  CHECK(has(st.out, "Memory:"));
  CHECK(has(st.out, "queued"));
  CHECK_FALSE(has(st.out, "\x1b["));  // not a TTY: no colour
  auto sj = c({"status", "--json"});
  CHECK(sj.exitCode == 0);
  REQUIRE(sj.parsed().is_object());
  CHECK(sj.parsed()["run"]["state"] == "running");

  // pause / resume: paused status exits 1.
  auto p = c({"pause", "--reason", "manual", "--json"});
  CHECK(p.exitCode == 0);
  REQUIRE(p.parsed().is_object());
  CHECK(p.parsed()["run"]["state"] == "paused");
  auto sp = c({"status"});
  CHECK(sp.exitCode == 1);
  CHECK(has(sp.out, "manual"));
  auto rs = c({"resume"});
  CHECK(rs.exitCode == 0);
  CHECK(has(rs.out, "running"));
  CHECK(c({"status", "--json"}).exitCode == 0);

  // submit --wait: a spec line and a plain generate body.
  TempDir dir;
  std::string file = dir.file("trials.jsonl");
  {
    std::ofstream f(file);
    f << R"({"model":"tiny:latest","kind":"generate","request":{"prompt":"one"}})" << "\n\n"
      << R"({"model":"tiny:latest","prompt":"two"})" << "\n"
      << R"({"model":"tiny:latest","kind":"chat","request":{"messages":[{"role":"user","content":"three"}]}})"
      << "\n";
  }
  auto sub = c({"submit", file, "--run", "cli-run", "--wait", "--json"});
  CHECK(sub.exitCode == 0);
  json sw = sub.parsed();
  REQUIRE(sw.is_object());
  CHECK(sw["ids"].size() == 3);
  CHECK(sw["succeeded"] == 3);
  CHECK(sw["failed"] == 0);
  CHECK(sw["trials"].size() == 3);
  long long firstId = sw["ids"][0].get<long long>();

  // a bad line: FILE:LINE, nothing submitted, exit 2.
  std::string bad = dir.file("bad.jsonl");
  {
    std::ofstream f(bad);
    f << R"({"model":"tiny:latest","prompt":"fine"})" << "\n" << R"({"prompt":"no model"})" << "\n";
  }
  auto sb = c({"submit", bad, "--run", "bad-run"});
  CHECK(sb.exitCode == 2);
  CHECK(has(sb.err, bad + ":2:"));
  CHECK(d.get("/v1/trials?run=bad-run")["trials"].empty());

  // submit without --wait.
  auto nw = c({"submit", file, "--run", "cli-run-2"});
  CHECK(nw.exitCode == 0);
  CHECK(has(nw.out, "Submitted 3 trials"));

  // trials, trial, cancel.
  auto tl = c({"trials", "--run", "cli-run", "--json"});
  CHECK(tl.exitCode == 0);
  REQUIRE(tl.parsed().is_object());
  CHECK(tl.parsed()["trials"].size() == 3);
  auto tt = c({"trials", "--run", "cli-run", "--state", "succeeded"});
  CHECK(tt.exitCode == 0);
  CHECK(has(tt.out, "succeeded"));
  CHECK(has(tt.out, "cli-run"));
  CHECK(c({"trials", "--state", "bogus"}).exitCode == 2);
  auto one = c({"trial", std::to_string(firstId), "--json"});
  CHECK(one.exitCode == 0);
  REQUIRE(one.parsed().is_object());
  CHECK(one.parsed()["state"] == "succeeded");
  auto oneText = c({"trial", std::to_string(firstId)});
  CHECK(has(oneText.out, "Trial " + std::to_string(firstId)));
  CHECK(c({"trial", "999999"}).exitCode == 1);
  auto can = c({"cancel", std::to_string(firstId), "--json"});
  CHECK(can.exitCode == 0);
  REQUIRE(can.parsed().is_object());
  CHECK(can.parsed()["state"] == "succeeded");  // already ended: unchanged

  // timeline: the table and --json.
  auto tj = c({"timeline", "--run", "cli-run", "--bucket", "1m", "--since", "30m", "--json"});
  CHECK(tj.exitCode == 0);
  const json tjson = tj.parsed();
  REQUIRE(tjson.is_object());
  REQUIRE(tjson["rows"].is_array());
  long long total = 0;
  for (auto& r : tjson["rows"]) total += r["trials"].get<long long>();
  CHECK(total == 3);
  auto tt2 = c({"timeline", "--run", "cli-run", "--bucket", "30s"});
  CHECK(tt2.exitCode == 0);
  for (const char* h : {"Time", "Trials", "p50", "p95", "Failure rate", "Actions"}) CHECK(has(tt2.out, h));
  CHECK(c({"timeline", "--bucket", "soon"}).exitCode == 2);

  // events: the manual pause and resume are there, as JSON lines and as text.
  auto ej = c({"events", "--json"});
  CHECK(ej.exitCode == 0);
  std::istringstream lines(ej.out);
  std::set<std::string> kinds;
  long long lastId = 0;
  for (std::string line; std::getline(lines, line);) {
    auto e = json::parse(line, nullptr, false);
    REQUIRE(e.is_object());
    kinds.insert(e["kind"].get<std::string>());
    lastId = e["id"].get<long long>();
  }
  CHECK(kinds.count("paused"));
  CHECK(kinds.count("resumed"));
  auto et = c({"events"});
  CHECK(et.exitCode == 0);
  CHECK(has(et.out, "paused"));
  auto since = c({"events", "--since", std::to_string(lastId), "--json"});
  CHECK(since.exitCode == 0);
  CHECK(since.out.find("\"id\":" + std::to_string(lastId) + ",") == std::string::npos);

  // preflight, evict, kill-runner answer with JSON.
  auto pf = c({"preflight", "tiny:latest", "--json"});
  CHECK((pf.exitCode == 0 || pf.exitCode == 1));
  REQUIRE(pf.parsed().is_object());
  CHECK(pf.parsed().contains("ok"));
  auto ev = c({"evict", "--json"});
  CHECK(ev.exitCode == 0);
  REQUIRE(ev.parsed().is_object());
  CHECK(ev.parsed().contains("actions"));
  // doctor on a healthy run: no cause found, checks pass, exit 0; --json carries all three parts.
  auto doc = c({"doctor"});
  INFO(doc.out << doc.err);
  CHECK(doc.exitCode == 0);
  CHECK(has(doc.out, "stopping_deadlock"));
  CHECK(has(doc.out, "memory_pressure"));
  CHECK(has(doc.out, "Checks"));
  auto docj = c({"doctor", "--json"});
  json dj = docj.parsed();
  REQUIRE(dj.is_object());
  CHECK(dj["diagnosis"]["findings"].size() == 4);
  for (auto& f : dj["diagnosis"]["findings"]) CHECK(f["verdict"] != "cause");
  auto kr = c({"kill-runner", "nonexistent:model", "--json"});
  CHECK((kr.exitCode == 0 || kr.exitCode == 1));
  CHECK(kr.parsed().is_object());
}

namespace {

// A HOME to install into and a PATH whose launchctl/systemctl only record their arguments.
struct ServiceSandbox {
  TempDir dir;
  std::string home = dir.file("home");
  std::string log = dir.file("manager.log");
  std::string bin = dir.file("bin");
  ServiceSandbox() {
    REQUIRE(runShell("mkdir -p '" + home + "' '" + bin + "'").first == 0);
    for (const char* tool : {"launchctl", "systemctl"}) {
      std::string path = bin + "/" + tool;
      std::ofstream f(path);
      // bootout of an agent that is not loaded fails, as launchctl's does.
      f << "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> '" << log << "'\n"
        << "case \"$1\" in bootout) echo 'Boot-out failed: 3: No such process' >&2; exit 3;; esac\n";
      f.close();
      ::chmod(path.c_str(), 0755);
    }
  }
  std::vector<std::string> env() const {
    return {"HOME=" + home, "PATH=" + bin + ":/usr/bin:/bin", "XDG_CONFIG_HOME=" + home + "/.config"};
  }
  std::vector<std::string> calls() const {
    std::vector<std::string> out;
    std::istringstream in(slurp(log));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
};

std::string binDir() {
  std::string d = OASISD_BIN;
  return d.substr(0, d.rfind('/'));
}

// The plist as Python's plistlib reads it (the same parser check_service_files.py uses).
json readPlist(const std::string& path) {
  TempDir t;
  std::string out = t.file("plist.json");
  REQUIRE(runShell("python3 -c 'import json,plistlib,sys; json.dump(plistlib.load(open(sys.argv[1],\"rb\")), "
                   "open(sys.argv[2],\"w\"))' '" + path + "' '" + out + "'").first == 0);
  return json::parse(slurp(out));
}

}  // namespace

TEST_CASE("oasisctl install/uninstall: the launchd agent is written, bootstrapped and kickstarted", "[oasisctl][install]") {
  ServiceSandbox sb;
  auto r = ctl({"install", "--manager", "launchd", "--bin-dir", binDir()}, 30s, sb.env());
  INFO(r.out << r.err);
  REQUIRE(r.exitCode == 0);
  std::string plistPath = sb.home + "/Library/LaunchAgents/com.oasis.oasisd.plist";
  json p = readPlist(plistPath);
  CHECK(p["Label"] == "com.oasis.oasisd");
  // The agent starts the oasisd that exists, with the config install created.
  std::string config = sb.home + "/.config/oasisd/oasisd.json";
  CHECK(p["ProgramArguments"] == json({binDir() + "/oasisd", "--config", config}));
  CHECK(::access(p["ProgramArguments"][0].get<std::string>().c_str(), X_OK) == 0);
  CHECK(json::parse(slurp(config))["max_concurrency"] == "auto");
  // Logs and working directory exist (launchd does not create them).
  struct stat st {};
  CHECK(::stat(p["WorkingDirectory"].get<std::string>().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  std::string logPath = p["StandardOutPath"].get<std::string>();
  CHECK(::stat(logPath.substr(0, logPath.rfind('/')).c_str(), &st) == 0);
  CHECK(p["KeepAlive"] == json({{"SuccessfulExit", false}}));
  // The config the agent names passes oasisd's own validation.
  CHECK(runShell(std::string(OASISD_BIN) + " --check-config --config '" + config + "' >/dev/null 2>&1").first == 0);
  std::string uid = std::to_string(::getuid());
  CHECK(sb.calls() == std::vector<std::string>{"launchctl bootout gui/" + uid + "/com.oasis.oasisd",
                                              "launchctl bootstrap gui/" + uid + " " + plistPath,
                                              "launchctl kickstart -k gui/" + uid + "/com.oasis.oasisd"});
  CHECK(has(r.out, "write " + plistPath));
  CHECK(has(r.out, "run launchctl kickstart -k"));

  // A second install keeps a config the user edited.
  {
    std::ofstream f(config);
    f << "{\"max_concurrency\": 2}\n";
  }
  REQUIRE(ctl({"install", "--manager", "launchd", "--bin-dir", binDir()}, 30s, sb.env()).exitCode == 0);
  CHECK(json::parse(slurp(config))["max_concurrency"] == 2);

  auto u = ctl({"uninstall", "--manager", "launchd", "--json"}, 30s, sb.env());
  INFO(u.out << u.err);
  REQUIRE(u.exitCode == 0);
  CHECK(u.parsed()["ok"] == true);
  CHECK(u.parsed()["steps"][0]["argv"] == json({"launchctl", "bootout", "gui/" + uid + "/com.oasis.oasisd"}));
  CHECK(::access(plistPath.c_str(), F_OK) != 0);
  CHECK(::access(config.c_str(), F_OK) == 0);  // kept
}

TEST_CASE("oasisctl install/uninstall: the systemd user unit, and failures that name what went wrong",
          "[oasisctl][install]") {
  ServiceSandbox sb;
  auto dry = ctl({"install", "--manager", "systemd", "--bin-dir", binDir(), "--dry-run", "--json"}, 30s, sb.env());
  INFO(dry.out << dry.err);
  REQUIRE(dry.exitCode == 0);
  CHECK(dry.parsed()["dry_run"] == true);
  CHECK(sb.calls().empty());  // nothing was run or written
  std::string unit = sb.home + "/.config/systemd/user/oasisd.service";
  CHECK(::access(unit.c_str(), F_OK) != 0);

  auto r = ctl({"install", "--manager", "systemd", "--bin-dir", binDir()}, 30s, sb.env());
  INFO(r.out << r.err);
  REQUIRE(r.exitCode == 0);
  std::string text = slurp(unit);
  CHECK(has(text, "\nExecStart=" + binDir() + "/oasisd --config " + sb.home + "/.config/oasisd/oasisd.json\n"));
  CHECK(has(text, "\nRestart=on-failure\n"));
  CHECK(sb.calls() == std::vector<std::string>{"systemctl --user daemon-reload", "systemctl --user enable oasisd.service",
                                              "systemctl --user restart oasisd.service"});

  // Usage errors: no oasisd where --bin-dir points, an unknown manager.
  auto noBin = ctl({"install", "--bin-dir", sb.home}, 30s, sb.env());
  CHECK(noBin.exitCode == 2);
  CHECK(has(noBin.err, "no executable oasisd in '" + sb.home + "'"));
  auto badMgr = ctl({"install", "--manager", "upstart"}, 30s, sb.env());
  CHECK(badMgr.exitCode == 2);
  CHECK(has(badMgr.err, "--manager must be launchd or systemd"));

  // A service manager that fails: exit 1, the failing command named, later steps not run.
  {
    std::ofstream f(sb.bin + "/systemctl");
    f << "#!/bin/sh\necho \"systemctl $*\" >> '" << sb.log << "'\necho 'Failed to connect to bus' >&2\nexit 1\n";
  }
  auto failed = ctl({"install", "--manager", "systemd", "--bin-dir", binDir(), "--json"}, 30s, sb.env());
  INFO(failed.out << failed.err);
  CHECK(failed.exitCode == 1);
  json fj = failed.parsed();
  CHECK(fj["ok"] == false);
  CHECK(fj["steps"].back()["result"] == "failed");
  CHECK(fj["steps"].back()["error"] == "systemctl exited with status 1");
  CHECK(fj["steps"].back()["output"] == json({"systemctl: Failed to connect to bus"}));
  CHECK(sb.calls().back() == "systemctl --user daemon-reload");

  auto u = ctl({"uninstall", "--manager", "systemd"}, 30s, sb.env());
  CHECK(u.exitCode == 0);  // disable and daemon-reload may fail when there is nothing to undo
  CHECK(::access(unit.c_str(), F_OK) != 0);
  CHECK(has(u.out, "Kept the config"));
}

namespace {

// A detached tmux session on its own server socket, for looking at what a terminal shows.
class TmuxPane {
 public:
  static bool available() { return runShell("command -v tmux >/dev/null").first == 0; }
  TmuxPane(const std::string& command, const std::vector<std::string>& env)
      : name_("oasis-test-" + std::to_string(::getpid()) + "-" + std::to_string(++serial_)) {
    std::string exports;
    for (auto& e : env) exports += "export '" + e + "'; ";
    auto r = runShell("tmux -L " + name_ + " -f /dev/null new-session -d -x 120 -y 50 -s t \"" + exports + command +
                      "; sleep 600\"");
    INFO(r.second);
    REQUIRE(r.first == 0);
  }
  ~TmuxPane() { runShell("tmux -L " + name_ + " kill-server"); }
  // The visible screen; with escapes (-e) to see colour.
  std::string capture(bool escapes = false) const {
    return runShell("tmux -L " + name_ + " capture-pane -p " + (escapes ? "-e " : "") + "-t t").second;
  }
  bool waitForScreen(const std::function<bool(const std::string&)>& ok, std::chrono::milliseconds deadline) const {
    return waitFor([&] { return ok(capture()); }, deadline, 100ms);
  }

 private:
  static inline int serial_ = 0;  // one tmux server per pane: no reuse of a server being killed
  std::string name_;
};

std::size_t count(const std::string& s, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("oasisctl in a terminal: status --watch redraws in place, submit --wait draws one progress bar",
          "[oasisctl][tty]") {
  if (!TmuxPane::available()) {
    WARN("tmux is not installed (scripts/deps.sh installs it): terminal rendering not checked");
    return;
  }
  Oasisd d(json{{"stall_timeout_s", 2}, {"first_token_timeout_s", 5}, {"request_timeout_s", 20}});
  REQUIRE(d.waitForStatus([](const json& s) { return s["run"]["state"] == "running" && s["server"]["up"] == true; },
                          30s));
  const std::string ctlCmd = std::string(OASISCTL_BIN) + " --socket " + d.socket();
  {
    TmuxPane pane(ctlCmd + " status --watch --interval 0.2", {"TERM=xterm-256color"});
    REQUIRE(pane.waitForScreen([](const std::string& s) { return has(s, "refreshing every"); }, 20s));
    std::string screen = pane.capture();
    INFO(screen);
    CHECK(has(screen, "running"));
    CHECK(has(screen, "Memory:"));
    // Paused from elsewhere: the same screen shows it within a few refreshes, drawn over the
    // old one rather than scrolled below it.
    d.post("/v1/pause", {{"reason", "manual"}});
    REQUIRE(pane.waitForScreen([](const std::string& s) { return has(s, "Run:     paused"); }, 20s));
    screen = pane.capture();
    UNSCOPED_INFO(screen);
    CHECK(count(screen, "refreshing every") == 1);
    CHECK(count(screen, "Memory:") == 1);
    CHECK(has(pane.capture(true), "\x1b["));  // colour on a terminal
    d.post("/v1/resume", json::object());
  }
  {
    // NO_COLOR is respected on a terminal.
    TmuxPane pane(ctlCmd + " status", {"TERM=xterm-256color", "NO_COLOR=1"});
    REQUIRE(pane.waitForScreen([](const std::string& s) { return has(s, "Memory:"); }, 20s));
    CHECK_FALSE(has(pane.capture(true), "\x1b[3"));
  }
  {
    TempDir t;
    std::string file = t.file("trials.jsonl");
    {
      std::ofstream f(file);
      for (int i = 0; i < 30; ++i) f << R"({"model": "tiny:latest", "prompt": "p)" << i << "\"}\n";
    }
    TmuxPane pane(ctlCmd + " submit " + file + " --run tty --wait", {"TERM=xterm-256color"});
    REQUIRE(pane.waitForScreen([](const std::string& s) { return has(s, "30/30 done"); }, 120s));
    std::string screen = pane.capture();
    INFO(screen);
    // One bar, updated in place (a carriage return and erase-line, not a new line per update).
    CHECK(count(screen, "[") == 1);
    CHECK(count(screen, "done") == 1);
    CHECK(has(screen, "[##############################]"));
  }
}
