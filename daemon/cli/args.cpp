#include "daemon/cli/args.h"

namespace oasis::cli {

const std::vector<CommandSpec>& commandSpecs() {
  static const std::vector<CommandSpec> specs = {
      {"status", "status [--watch] [--interval S]",
       "Run state, Ollama server, loaded models, memory, trial counts, recent events",
       "  --watch         refresh in place until Ctrl-C\n"
       "  --interval S    seconds between refreshes with --watch (default 2)\n"
       "Exit 1 when dispatch is paused or the Ollama server is not up.",
       "oasisctl status --watch --interval 1", {"--interval"}, {"--watch"}, 0, 0},
      {"pause", "pause [--reason R] [--now]", "Stop dispatching trials (manual pause)",
       "  --reason R      pause reason (default manual; the daemon lists the accepted ones)\n"
       "  --now           do not drain: cancel in-flight attempts and requeue them",
       "oasisctl pause --now", {"--reason"}, {"--now"}, 0, 0},
      {"resume", "resume", "Clear the manual pause (other pause reasons stay)", "", "oasisctl resume", {}, {}, 0, 0},
      {"evict", "evict [MODEL]", "Ask Ollama to unload MODEL (default: every loaded model)", "",
       "oasisctl evict gemma4:e4b", {}, {}, 0, 1},
      {"kill-runner", "kill-runner [MODEL]", "kill -9 the runner of MODEL (default: every runner), verified", "",
       "oasisctl kill-runner gemma4:e4b", {}, {}, 0, 1},
      {"submit", "submit FILE.jsonl [--run R] [--wait]",
       "Submit trials, one JSON object per line",
       "  Each line is a trial spec {\"model\",\"kind\",\"request\",\"run\"?,\"key\"?,\"max_attempts\"?}\n"
       "  or a plain Ollama generate body with \"model\" (submitted as kind generate).\n"
       "  A bad line is reported as FILE:LINE and nothing is submitted (exit 2).\n"
       "  --run R         run name for lines that do not name one\n"
       "  --wait          wait until every trial ended, with a progress bar; exit 1 if any failed",
       "oasisctl submit prompts.jsonl --run eval-7 --wait", {"--run"}, {"--wait"}, 1, 1},
      {"trials", "trials [--run R] [--state S] [--limit N]", "List trials",
       "  --run R         only this run\n"
       "  --state S       queued|running|succeeded|failed|cancelled\n"
       "  --limit N       at most N trials (default 100)",
       "oasisctl trials --run eval-7 --state failed", {"--run", "--state", "--limit"}, {}, 0, 0},
      {"trial", "trial ID", "Show one trial and its attempts (exit 1 if it failed)", "", "oasisctl trial 42", {}, {}, 1,
       1},
      {"cancel", "cancel ID", "Cancel a queued or running trial", "", "oasisctl cancel 42", {}, {}, 1, 1},
      {"timeline", "timeline [--run R] [--bucket 1m] [--since 2h|ISO]",
       "Per-interval trials, latency percentiles, failure rate and supervisor actions",
       "  --run R         only this run\n"
       "  --bucket D      bucket width: 30s, 1m, 5m, ... (default 1m)\n"
       "  --since D|ISO   how far back: 2h, 30m, or an ISO-8601 time (default 1h)",
       "oasisctl timeline --run eval-7 --bucket 5m --since 2h", {"--run", "--bucket", "--since"}, {}, 0, 0},
      {"events", "events [-f] [--since ID]", "Print supervisor events, one per line",
       "  -f, --follow    keep printing new events until Ctrl-C\n"
       "  --since ID      only events after this id",
       "oasisctl events -f", {"--since"}, {"-f", "--follow"}, 0, 0},
      {"doctor", "doctor [--since 2h|ISO] [--model M]",
       "Why were trials slow or failing? The diagnosis, the preflight and the flash-attention check",
       "  --since D|ISO   window start: 2h, 30m, or an ISO-8601 time (default 1h)\n"
       "  --model M       also run the memory preflight for M (default gemma4:e4b)",
       "oasisctl doctor --since 2h", {"--since", "--model"}, {}, 0, 0},
      {"preflight", "preflight MODEL", "Would MODEL fit in memory now? (exit 1 if not)", "",
       "oasisctl preflight gemma4:e4b", {}, {}, 1, 1},
      {"install", "install [--bin-dir DIR] [--manager launchd|systemd] [--dry-run]",
       "Install and start oasisd as the user's background service (launchd agent / systemd user unit)",
       "  --bin-dir DIR   where oasisd is (default: the directory holding this oasisctl)\n"
       "  --manager M     launchd or systemd (default: this host's; the other one with --dry-run is\n"
       "                  a way to read what would be written)\n"
       "  --dry-run       print the steps without doing them\n"
       "  The config given with --config (default: the platform's) is created if missing and kept\n"
       "  otherwise. Prints every file written and every launchctl/systemctl command run.",
       "oasisctl install --bin-dir /opt/homebrew/bin", {"--bin-dir", "--manager"}, {"--dry-run"}, 0, 0},
      {"uninstall", "uninstall [--manager launchd|systemd] [--dry-run]",
       "Stop the background service and remove its launchd agent / systemd unit",
       "  Keeps the config, the database and the logs; prints what it removed and what it kept.\n"
       "  --manager M     launchd or systemd (default: this host's)\n"
       "  --dry-run       print the steps without doing them",
       "oasisctl uninstall", {"--manager"}, {"--dry-run"}, 0, 0},
      {"help", "help [COMMAND]", "Show help for oasisctl or one command", "", "oasisctl help submit", {}, {}, 0, 1},
  };
  return specs;
}

const CommandSpec* findCommand(const std::string& name) {
  for (auto& s : commandSpecs())
    if (s.name == name) return &s;
  return nullptr;
}

std::optional<std::string> Args::option(const std::string& name) const {
  auto it = options.find(name);
  if (it == options.end()) return std::nullopt;
  return it->second;
}

ParseOutcome parseArgs(const std::vector<std::string>& argv) {
  ParseOutcome out;
  Args& a = out.args;
  const CommandSpec* spec = nullptr;
  bool endOfOptions = false;
  auto fail = [&](std::string msg) {
    out.error = std::move(msg);
    return out;
  };
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (!endOfOptions && arg == "--") {
      endOfOptions = true;
      continue;
    }
    if (!endOfOptions && arg.size() > 1 && arg[0] == '-') {
      std::string name = arg;
      std::optional<std::string> inlineValue;
      if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
        name = arg.substr(0, eq);
        inlineValue = arg.substr(eq + 1);
      }
      auto takeValue = [&]() -> std::optional<std::string> {
        if (inlineValue) return inlineValue;
        if (i + 1 >= argv.size()) return std::nullopt;
        return argv[++i];
      };
      if (name == "--help" || name == "-h") {
        a.help = true;
        continue;
      }
      if (name == "--json") {
        a.json = true;
        continue;
      }
      if (name == "--no-color") {
        a.noColor = true;
        continue;
      }
      if (name == "--socket" || name == "--config") {
        auto v = takeValue();
        if (!v || v->empty()) return fail(name + " needs a value");
        (name == "--socket" ? a.socket : a.config) = *v;
        continue;
      }
      if (!spec) return fail("unknown option " + name + " (options go after the command)");
      if (spec->valueOptions.count(name)) {
        auto v = takeValue();
        if (!v) return fail(name + " needs a value");
        a.options[name] = *v;
        continue;
      }
      if (spec->flagOptions.count(name)) {
        if (inlineValue) return fail(name + " takes no value");
        a.flags.insert(name);
        continue;
      }
      return fail("unknown option " + name + " for " + spec->name);
    }
    if (!spec) {
      spec = findCommand(arg);
      if (!spec) return fail("unknown command '" + arg + "'");
      a.command = arg;
      continue;
    }
    a.positionals.push_back(arg);
  }
  if (a.command == "help") {
    a.help = true;
    a.command.clear();
    if (!a.positionals.empty()) {
      if (a.positionals.size() > 1) return fail("help takes at most one command");
      if (!findCommand(a.positionals[0])) return fail("unknown command '" + a.positionals[0] + "'");
      a.command = a.positionals[0];
      a.positionals.clear();
    }
    return out;
  }
  if (a.help) return out;
  if (!spec) return fail("no command given");
  if (a.positionals.size() < spec->minPositionals) return fail(spec->name + ": missing argument");
  if (a.positionals.size() > spec->maxPositionals) return fail(spec->name + ": unexpected argument '" +
                                                              a.positionals[spec->maxPositionals] + "'");
  if (a.flags.count("--follow")) a.flags.insert("-f");
  return out;
}

}  // namespace oasis::cli
