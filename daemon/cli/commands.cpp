#include "daemon/cli/commands.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/http.h"
#include "daemon/cli/args.h"
#include "daemon/cli/format.h"
#include "daemon/cli/service_install.h"
#include "daemon/platform/platform.h"
#include "daemon/paths.h"

namespace oasis::cli {

using nlohmann::json;

Terminal detectTerminal() {
  Terminal t;
  t.stdoutTty = ::isatty(STDOUT_FILENO) == 1;
  t.stderrTty = ::isatty(STDERR_FILENO) == 1;
  t.noColorEnv = std::getenv("NO_COLOR") != nullptr;
  return t;
}

std::string helpText(const std::string& command) {
  std::ostringstream o;
  if (const CommandSpec* s = command.empty() ? nullptr : findCommand(command)) {
    o << "Usage: oasisctl " << s->synopsis << "\n\n" << s->summary << ".\n";
    if (!s->details.empty()) o << "\n" << s->details << "\n";
    o << "\nExample:\n  " << s->example << "\n";
    o << "\nGlobal options: --json  --socket PATH  --config PATH  --no-color  --help\n";
    return o.str();
  }
  o << "oasisctl: control oasisd, the supervisor for a local Ollama.\n\n"
       "Usage: oasisctl [--socket PATH] [--config PATH] [--json] COMMAND [ARGS]\n\nCommands:\n";
  std::size_t w = 0;
  for (auto& s : commandSpecs()) w = std::max(w, s.name.size());
  for (auto& s : commandSpecs()) o << "  " << s.name << std::string(w - s.name.size() + 2, ' ') << s.summary << "\n";
  o << "\nGlobal options:\n"
       "  --json          print the daemon's raw JSON instead of tables\n"
       "  --socket PATH   control socket (default: $OASISD_SOCKET, config socket_path, platform default)\n"
       "  --config PATH   read socket_path from this oasisd config file\n"
       "  --no-color      no ANSI colour (also when NO_COLOR is set or output is not a terminal)\n"
       "\nExit codes: 0 ok, 1 failed or unhealthy, 2 usage error, 3 oasisd unreachable.\n"
       "\nExample:\n  oasisctl status\n  oasisctl help submit\n";
  return o.str();
}

Result<json> parseSubmitLine(const std::string& line, const std::string& run) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded()) return Error("not valid JSON");
  if (!j.is_object()) return Error("expected a JSON object");
  json spec;
  if (j.contains("kind") || j.contains("request")) {
    spec = j;
    if (!spec.contains("kind")) spec["kind"] = "generate";
  } else {
    spec = {{"kind", "generate"}};
    if (j.contains("model")) spec["model"] = j["model"];
    json request = j;
    request.erase("model");
    for (const char* k : {"run", "key", "max_attempts"})
      if (request.contains(k)) {
        spec[k] = request[k];
        request.erase(k);
      }
    spec["request"] = request;
  }
  if (!spec.contains("model") || !spec["model"].is_string() || spec["model"].get<std::string>().empty())
    return Error("missing \"model\" (a non-empty string)");
  if (!spec["kind"].is_string() || (spec["kind"] != "generate" && spec["kind"] != "chat"))
    return Error("\"kind\" must be \"generate\" or \"chat\"");
  if (!spec.contains("request") || !spec["request"].is_object()) return Error("\"request\" must be an object");
  if (spec.contains("max_attempts") && !spec["max_attempts"].is_number_integer())
    return Error("\"max_attempts\" must be an integer");
  if (!run.empty() && !spec.contains("run")) spec["run"] = run;
  return spec;
}

Result<std::string> resolveSince(const std::string& text) {
  WallTime t;
  if (parseIso8601(text, t)) return text;
  auto d = parseDuration(text);
  if (!d) return Error("--since must be a duration like 2h or 30m, or an ISO-8601 time (got '" + text + "')");
  auto when = std::chrono::system_clock::now() -
              std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(*d));
  return formatIso8601Utc(when);
}

namespace {

std::string urlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

struct Failure {
  int code;
};

class Session {
 public:
  Session(const Args& args, std::ostream& out, std::ostream& err, const Terminal& term)
      : args_(args), out_(out), err_(err), term_(term) {
    style_.color = term.stdoutTty && !term.noColorEnv && !args.noColor;
  }

  int run();

 private:
  // Resolves the socket path; a config that cannot be read is a usage error.
  std::string socketPath();
  // One request; unreachable -> throws Failure{3} after the message; non-2xx -> Failure{1 or 2}.
  json call(const std::string& method, const std::string& target, const json* body = nullptr,
            std::chrono::milliseconds timeout = std::chrono::seconds(60));
  [[noreturn]] void unreachable(const std::string& why);
  void printJson(const json& j) { out_ << j.dump(2) << "\n"; }

  int status();
  int simplePost(const std::string& target, json body, bool answerIsStatus);
  int submit();
  int trials();
  int trial();
  int cancel();
  int timeline();
  int events();
  int preflight();
  int doctor();
  int service(bool uninstall);

  const Args& args_;
  std::ostream& out_;
  std::ostream& err_;
  Terminal term_;
  Style style_;
  std::optional<std::string> socket_;
};

std::string Session::socketPath() {
  if (socket_) return *socket_;
  std::optional<std::string> fromConfig;
  if (args_.config && !args_.socket) {
    auto load = loadConfigFile(*args_.config);
    if (!load.ok()) {
      err_ << "oasisctl: config " << *args_.config << ":\n" << formatConfigProblems(load.problems);
      throw Failure{kExitUsage};
    }
    fromConfig = load.config.socketPath;
  }
  socket_ = resolveSocketPath(args_.socket, fromConfig);
  return *socket_;
}

void Session::unreachable(const std::string& why) {
  std::string sock = socketPath();
  err_ << "oasisctl: oasisd is not running on " << sock << " (" << why << ")\n"
       << "  start it with `oasisd --config CONFIG` (add `--socket " << sock
       << "` if it is not the default), or install the service with `oasisctl install`\n";
  throw Failure{kExitUnreachable};
}

json Session::call(const std::string& method, const std::string& target, const json* body,
                   std::chrono::milliseconds timeout) {
  http::Request req;
  req.method = method;
  req.target = target;
  if (body) req.body = body->dump();
  auto r = http::fetch(http::Endpoint::unixSocket(socketPath()), req, timeout);
  if (!r) unreachable(r.error().message);
  json j = json::parse(r->body, nullptr, false);
  if (r->status < 200 || r->status >= 300) {
    if (args_.json && !j.is_discarded()) {
      printJson(j);
    } else {
      std::string code = "http_" + std::to_string(r->status), message = r->body;
      if (!j.is_discarded() && j.contains("error") && j["error"].is_object()) {
        code = j["error"].value("code", code);
        message = j["error"].value("message", message);
      }
      err_ << "oasisctl: " << method << " " << target << ": " << code << ": " << message << "\n";
    }
    throw Failure{r->status == 400 ? kExitUsage : kExitFailed};
  }
  if (j.is_discarded()) {
    err_ << "oasisctl: " << method << " " << target << ": answer is not JSON\n";
    throw Failure{kExitFailed};
  }
  return j;
}

int Session::run() {
  const std::string& c = args_.command;
  if (c == "status") return status();
  if (c == "pause") {
    json body = {{"drain", !args_.has("--now")}};
    if (auto r = args_.option("--reason")) body["reason"] = *r;
    return simplePost("/v1/pause", body, true);
  }
  if (c == "resume") return simplePost("/v1/resume", json::object(), true);
  if (c == "evict" || c == "kill-runner") {
    json body = json::object();
    if (!args_.positionals.empty()) body["model"] = args_.positionals[0];
    return simplePost("/v1/" + c, body, false);
  }
  if (c == "submit") return submit();
  if (c == "trials") return trials();
  if (c == "trial") return trial();
  if (c == "cancel") return cancel();
  if (c == "timeline") return timeline();
  if (c == "events") return events();
  if (c == "preflight") return preflight();
  if (c == "doctor") return doctor();
  if (c == "install" || c == "uninstall") return service(c == "uninstall");
  err_ << "oasisctl: unknown command '" << c << "'\n";
  return kExitUsage;
}

volatile sig_atomic_t gInterrupted = 0;
extern "C" void onInterrupt(int) { gInterrupted = 1; }

int Session::status() {
  bool watch = args_.has("--watch");
  double interval = 2;
  if (auto i = args_.option("--interval")) {
    auto d = parseDuration(*i);
    if (!d || *d <= 0) {
      err_ << "oasisctl: --interval must be a positive number of seconds (got '" << *i << "')\n";
      return kExitUsage;
    }
    interval = *d;
  }
  if (!watch) {
    json st = call("GET", "/v1/status");
    if (args_.json)
      printJson(st);
    else
      out_ << formatStatus(st, style_);
    return statusHealthy(st) ? kExitOk : kExitFailed;
  }
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  int code = kExitOk;
  while (!gInterrupted) {
    json st = call("GET", "/v1/status");
    code = statusHealthy(st) ? kExitOk : kExitFailed;
    if (args_.json) {
      out_ << st.dump() << "\n";
    } else {
      std::string text = formatStatus(st, style_);
      if (term_.stdoutTty) out_ << "\x1b[H\x1b[2J";
      out_ << text;
      out_ << style_.dim("\nrefreshing every " + formatDuration(interval) + " (Ctrl-C to stop)") << "\n";
    }
    out_.flush();
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval);
    while (!gInterrupted && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return code;
}

int Session::simplePost(const std::string& target, json body, bool answerIsStatus) {
  json answer = call("POST", target, &body);
  if (args_.json) {
    printJson(answer);
    return kExitOk;
  }
  if (answerIsStatus) {
    const json run = answer.value("run", json::object());
    std::string reasons;
    for (auto& r : run.value("pause_reasons", json::array()))
      reasons += (reasons.empty() ? "" : ", ") + r.get<std::string>();
    out_ << "Run: " << run.value("state", std::string("?"));
    if (!reasons.empty()) out_ << " (" << reasons << ")";
    out_ << "\n";
  } else {
    out_ << formatActions(answer);
  }
  return kExitOk;
}

int Session::submit() {
  const std::string& file = args_.positionals[0];
  std::ifstream in(file);
  if (!in) {
    err_ << "oasisctl: cannot read " << file << "\n";
    return kExitUsage;
  }
  std::string run = args_.option("--run").value_or("");
  std::vector<json> specs;
  std::vector<std::string> problems;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto spec = parseSubmitLine(line, run);
    if (!spec)
      problems.push_back(file + ":" + std::to_string(n) + ": " + spec.error().message);
    else
      specs.push_back(std::move(*spec));
  }
  if (!problems.empty()) {
    for (std::size_t i = 0; i < problems.size() && i < 20; ++i) err_ << problems[i] << "\n";
    if (problems.size() > 20) err_ << "... and " << problems.size() - 20 << " more\n";
    err_ << "oasisctl: nothing submitted\n";
    return kExitUsage;
  }
  if (specs.empty()) {
    err_ << "oasisctl: " << file << " has no trials\n";
    return kExitUsage;
  }
  std::vector<long long> ids;
  constexpr std::size_t kChunk = 1000;
  for (std::size_t i = 0; i < specs.size(); i += kChunk) {
    json body = {{"trials", json::array()}};
    for (std::size_t k = i; k < std::min(specs.size(), i + kChunk); ++k) body["trials"].push_back(specs[k]);
    json answer;
    try {
      answer = call("POST", "/v1/trials/batch", &body);
    } catch (const Failure&) {
      if (!ids.empty()) err_ << "oasisctl: " << ids.size() << " trials were submitted before the failure\n";
      throw;
    }
    for (auto& id : answer.value("ids", json::array())) ids.push_back(id.get<long long>());
  }
  if (!args_.has("--wait")) {
    if (args_.json)
      printJson({{"ids", ids}});
    else
      out_ << "Submitted " << ids.size() << " trials (ids " << ids.front() << ".." << ids.back() << ")\n";
    return kExitOk;
  }

  // Wait: page through the run when every spec shares one, else poll trial by trial.
  std::set<std::string> runs;
  for (auto& s : specs) runs.insert(s.value("run", std::string()));
  bool byRun = runs.size() == 1 && !runs.begin()->empty();
  std::map<long long, json> ended;
  std::set<long long> pending(ids.begin(), ids.end());
  auto start = std::chrono::steady_clock::now();
  bool bar = term_.stderrTty && !args_.json;
  std::size_t failed = 0;
  auto isEnded = [](const json& t) {
    std::string s = t.value("state", std::string());
    return s == "succeeded" || s == "failed" || s == "cancelled";
  };
  auto record = [&](const json& t) {
    long long id = t.value("id", 0LL);
    if (!pending.count(id) || !isEnded(t)) return;
    pending.erase(id);
    if (t.value("state", std::string()) != "succeeded") ++failed;
    ended[id] = t;
  };
  while (!pending.empty()) {
    if (byRun) {
      long long after = *pending.begin() - 1;
      for (;;) {
        json page = call("GET", "/v1/trials?run=" + urlEncode(*runs.begin()) + "&limit=1000&after=" +
                                    std::to_string(after));
        for (auto& t : page.value("trials", json::array())) record(t);
        if (!page.contains("next") || page["next"].is_null()) break;
        after = page["next"].get<long long>();
        if (after >= *pending.rbegin()) break;
      }
    } else {
      std::vector<long long> snapshot(pending.begin(), pending.end());
      for (long long id : snapshot) {
        json t = call("GET", "/v1/trials/" + std::to_string(id));
        record(t);
        if (!isEnded(t)) break;  // trials run roughly in order: wait for this one first
      }
    }
    if (bar) {
      std::size_t done = ids.size() - pending.size();
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::optional<double> eta;
      if (done > 0) eta = elapsed / static_cast<double>(done) * static_cast<double>(pending.size());
      err_ << "\r\x1b[K" << progressBar(done, failed, ids.size(), 30, eta) << std::flush;
    }
    if (pending.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(ids.size() > 100 ? 1000 : 250));
  }
  if (bar) err_ << "\n";
  std::size_t succeeded = ids.size() - failed;
  if (args_.json) {
    json all = json::array();
    for (auto& [id, t] : ended) all.push_back(t);
    printJson({{"ids", ids}, {"succeeded", succeeded}, {"failed", failed}, {"trials", all}});
  } else {
    out_ << ids.size() << " trials: " << style_.green(std::to_string(succeeded) + " succeeded") << ", "
         << (failed ? style_.red(std::to_string(failed) + " failed or cancelled") : std::string("0 failed")) << "\n";
    for (auto& [id, t] : ended)
      if (t.value("state", std::string()) != "succeeded")
        out_ << "  trial " << id << " " << t.value("state", std::string()) << ": "
             << (t.contains("error") && t["error"].is_string() ? t["error"].get<std::string>() : "") << "\n";
  }
  return failed ? kExitFailed : kExitOk;
}

int Session::trials() {
  std::string q = "/v1/trials?limit=" + urlEncode(args_.option("--limit").value_or("100"));
  if (auto r = args_.option("--run")) q += "&run=" + urlEncode(*r);
  if (auto s = args_.option("--state")) q += "&state=" + urlEncode(*s);
  json list = call("GET", q);
  if (args_.json)
    printJson(list);
  else
    out_ << formatTrials(list, style_);
  return kExitOk;
}

int Session::trial() {
  json t = call("GET", "/v1/trials/" + urlEncode(args_.positionals[0]));
  if (args_.json)
    printJson(t);
  else
    out_ << formatTrial(t, style_);
  return t.value("state", std::string()) == "failed" ? kExitFailed : kExitOk;
}

int Session::cancel() {
  json t = call("DELETE", "/v1/trials/" + urlEncode(args_.positionals[0]));
  if (args_.json)
    printJson(t);
  else
    out_ << "Trial " << t.value("id", 0LL) << ": " << t.value("state", std::string("?")) << "\n";
  return kExitOk;
}

int Session::timeline() {
  int bucket = 60;
  if (auto b = args_.option("--bucket")) {
    auto d = parseDuration(*b);
    if (!d || *d < 1 || *d > 86400) {
      err_ << "oasisctl: --bucket must be a duration between 1s and 1d, like 30s, 1m, 5m (got '" << *b << "')\n";
      return kExitUsage;
    }
    bucket = static_cast<int>(*d);
  }
  std::string q = "/v1/timeline?bucket_s=" + std::to_string(bucket);
  if (auto r = args_.option("--run")) q += "&run=" + urlEncode(*r);
  if (auto s = args_.option("--since")) {
    auto iso = resolveSince(*s);
    if (!iso) {
      err_ << "oasisctl: " << iso.error().message << "\n";
      return kExitUsage;
    }
    q += "&since=" + urlEncode(*iso);
  }
  json tl = call("GET", q);
  if (args_.json)
    printJson(tl);
  else
    out_ << formatTimeline(tl, bucket);
  return kExitOk;
}

int Session::events() {
  bool follow = args_.has("-f");
  std::string q = "/v1/events";
  std::string sep = "?";
  if (auto s = args_.option("--since")) {
    if (s->empty() || s->find_first_not_of("0123456789") != std::string::npos) {
      err_ << "oasisctl: --since must be an event id (got '" << *s << "')\n";
      return kExitUsage;
    }
    q += sep + "since=" + *s;
    sep = "&";
  }
  if (follow) q += sep + "follow=1";
  int status = 0;
  auto timeout = follow ? std::chrono::milliseconds(std::chrono::hours(24 * 365)) : std::chrono::milliseconds(60000);
  std::string errorBody;
  auto r = http::fetchLines(
      http::Endpoint::unixSocket(socketPath()), {"GET", q, "", "", {}},
      [&](std::string_view line) {
        if (status < 200 || status >= 300) {
          errorBody += std::string(line);
          return true;
        }
        if (line.empty()) return true;
        if (args_.json) {
          out_ << line << "\n";
        } else {
          json e = json::parse(line, nullptr, false);
          out_ << (e.is_discarded() ? std::string(line) : formatEventLine(e, style_)) << "\n";
        }
        if (follow) out_.flush();
        return true;
      },
      timeout, std::chrono::milliseconds(0), [&](const http::Response& head) { status = head.status; });
  if (!r) unreachable(r.error().message);
  if (status < 200 || status >= 300) {
    err_ << "oasisctl: GET " << q << ": " << status << " " << errorBody << "\n";
    return status == 400 ? kExitUsage : kExitFailed;
  }
  return kExitOk;
}

// The incident report's investigation as one command: each candidate cause with its verdict and
// evidence, then the checks that prevent a repeat (memory headroom, flash attention on Apple
// Silicon). Exit 1 when a cause was found or a check fails.
int Session::doctor() {
  std::string q = "/v1/diagnosis";
  if (auto s = args_.option("--since")) {
    auto iso = resolveSince(*s);
    if (!iso) {
      err_ << "oasisctl: " << iso.error().message << "\n";
      return kExitUsage;
    }
    q += "?since=" + urlEncode(*iso);
  }
  json diag = call("GET", q);
  std::string model = args_.option("--model").value_or("gemma4:e4b");
  json pre = call("GET", "/v1/preflight?model=" + urlEncode(model));
  json st = call("GET", "/v1/status");
  bool problem = false;
  for (auto& f : diag["findings"])
    if (f.value("verdict", "") == "cause") problem = true;
  if (!pre.value("ok", true)) problem = true;
  std::string fa = st["server"].value("flash_attention", "unknown");
  if (args_.json) {
    json out = {{"diagnosis", diag}, {"preflight", pre}, {"flash_attention", fa}};
    printJson(out);
    return problem ? kExitFailed : kExitOk;
  }
  out_ << "Findings (" << diag["window"].value("since", "") << " .. " << diag["window"].value("until", "") << ")\n";
  for (auto& f : diag["findings"]) {
    std::string verdict = f.value("verdict", "");
    out_ << "  " << f.value("kind", "") << std::string(20 - std::min<std::size_t>(19, f.value("kind", "").size()), ' ')
         << verdict << std::string(11 - std::min<std::size_t>(10, verdict.size()), ' ') << f.value("summary", "") << "\n";
    out_ << "      evidence: " << f["evidence"].dump() << "\n";
  }
  out_ << "Checks\n";
  out_ << "  preflight " << model << ": " << pre.value("message", "") << "\n";
  out_ << "  flash attention on the supervised server: " << fa;
  if (fa == "on") out_ << "  (on Apple Silicon this is the incident's Bug 3: set ollama.flash_attention to auto or off)";
  out_ << "\n";
  return problem ? kExitFailed : kExitOk;
}

int Session::service(bool uninstall) {
  ServiceContext ctx;
  ctx.manager = hostServiceManager();
  if (auto m = args_.option("--manager")) {
    auto parsed = parseServiceManager(*m);
    if (!parsed) {
      err_ << "oasisctl: --manager must be launchd or systemd (got '" << *m << "')\n";
      return kExitUsage;
    }
    ctx.manager = *parsed;
  }
  const char* home = std::getenv("HOME");
  if (!home || home[0] != '/') {
    err_ << "oasisctl: HOME is not set to an absolute path; the service files go under it\n";
    return kExitFailed;
  }
  ctx.home = home;
  while (ctx.home.size() > 1 && ctx.home.back() == '/') ctx.home.pop_back();
  ctx.uid = static_cast<unsigned>(::getuid());
  ctx.configPath = args_.config.value_or(defaultConfigPath());
  if (ctx.configPath.empty() || ctx.configPath[0] != '/') {
    err_ << "oasisctl: --config must be an absolute path for the service (got '" << ctx.configPath << "')\n";
    return kExitUsage;
  }
  if (!uninstall) {
    if (auto b = args_.option("--bin-dir")) {
      ctx.binDir = *b;
    } else {
      auto self = platform::selfExecutablePath();
      if (!self) {
        err_ << "oasisctl: cannot tell where oasisctl is (" << self.error().message << "); pass --bin-dir\n";
        return kExitFailed;
      }
      ctx.binDir = self->substr(0, self->rfind('/'));
    }
    while (ctx.binDir.size() > 1 && ctx.binDir.back() == '/') ctx.binDir.pop_back();
    std::string daemon = ctx.binDir + "/oasisd";
    if (ctx.binDir.empty() || ctx.binDir[0] != '/' || ::access(daemon.c_str(), X_OK) != 0) {
      err_ << "oasisctl: no executable oasisd in '" << ctx.binDir << "'; pass --bin-dir with the directory holding it\n";
      return kExitUsage;
    }
  }
  auto steps = uninstall ? uninstallPlan(ctx) : installPlan(ctx);
  bool dryRun = args_.has("--dry-run");
  std::string file = serviceFilePath(ctx);
  std::string what = ctx.manager == ServiceManager::Launchd ? "launchd agent " + std::string(kLaunchdLabel)
                                                            : "systemd user unit " + std::string(kSystemdUnitName);
  std::vector<std::string> notes;
  auto log = [&](const std::string& line) {
    if (args_.json) notes.push_back(line);
    else out_ << "      " << style_.dim(line) << "\n";
  };
  if (!args_.json)
    out_ << (dryRun ? "Would " : "") << (uninstall ? "uninstall" : "install") << " the " << what << (dryRun ? ":" : "") << "\n";
  json report = {{"manager", std::string(toString(ctx.manager))},
                 {"action", uninstall ? "uninstall" : "install"},
                 {"service_file", file},
                 {"config", ctx.configPath},
                 {"dry_run", dryRun},
                 {"steps", json::array()}};
  bool ok = true;
  for (auto& step : steps) {
    json js = step.toJson();
    if (dryRun) {
      js["result"] = "planned";
      if (!args_.json) out_ << "  " << step.describe() << "   " << style_.dim("# " + step.why) << "\n";
    } else {
      notes.clear();
      Status st = executeStep(step, log);
      js["result"] = st.ok() ? "ok" : "failed";
      if (!st.ok()) js["error"] = st.error().message;
      if (!notes.empty()) js["output"] = notes;
      if (!args_.json) {
        out_ << "  " << (st.ok() ? style_.green("ok") : style_.red("FAILED")) << "  " << step.describe() << "   "
             << style_.dim("# " + step.why) << "\n";
        if (!st.ok()) err_ << "oasisctl: " << st.error().message << "\n";
      }
      ok = st.ok();
    }
    report["steps"].push_back(js);
    if (!ok) break;
  }
  report["ok"] = ok;
  if (args_.json) {
    printJson(report);
  } else if (!dryRun && ok) {
    if (uninstall)
      out_ << "Removed " << file << ". Kept the config (" << ctx.configPath << "), the database and the logs.\n";
    else
      out_ << "Installed " << file << "; oasisd starts at login and restarts on failure. Check it with `oasisctl status`.\n";
  }
  return ok ? kExitOk : kExitFailed;
}

int Session::preflight() {
  json p = call("GET", "/v1/preflight?model=" + urlEncode(args_.positionals[0]));
  if (args_.json)
    printJson(p);
  else
    out_ << formatPreflight(p, style_);
  return p.value("ok", false) ? kExitOk : kExitFailed;
}

}  // namespace

int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err, const Terminal& term) {
  auto parsed = parseArgs(argv);
  if (!parsed.ok()) {
    err << "oasisctl: " << parsed.error << "\n";
    if (const CommandSpec* s = findCommand(parsed.args.command))
      err << "usage: oasisctl " << s->synopsis << "\n";
    err << "Run `oasisctl help` for the list of commands.\n";
    return kExitUsage;
  }
  const Args& args = parsed.args;
  if (args.help) {
    out << helpText(args.command);
    return kExitOk;
  }
  try {
    Session s(args, out, err, term);
    return s.run();
  } catch (const Failure& f) {
    return f.code;
  } catch (const std::exception& e) {
    err << "oasisctl: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace oasis::cli
