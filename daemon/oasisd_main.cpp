// oasisd: flags, config, logging and signals; everything else is in the oasis_daemon library.
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstring>
#include <iostream>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "daemon/daemon.h"
#include "daemon/paths.h"
#include "daemon/service_notify.h"

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitCantStart = 3;  // a broken environment: restarting won't help

void usage(std::ostream& out) {
  out << "usage: oasisd [--config PATH] [--socket PATH] [--db PATH] [--check-config [--print]]\n"
         "\n"
         "Supervises a local Ollama server for long evaluation runs; see README.md.\n"
         "  --config PATH     JSON config (// comments allowed); default: built-in defaults\n"
         "  --socket PATH     control socket (overrides OASISD_SOCKET and socket_path)\n"
         "  --db PATH         SQLite database (overrides database_path)\n"
         "  --check-config    validate the config and exit (0 ok, 2 invalid)\n"
         "  --print           with --check-config: print the effective config as JSON\n"
         "  --simulate-apple-silicon  treat this host as Apple Silicon (tests, demos)\n";
}

void setupLogging(const oasis::LogConfig& log) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (log.file)
    sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(*log.file, log.maxFileBytes,
                                                                           static_cast<size_t>(log.maxFiles)));
  auto logger = std::make_shared<spdlog::logger>("oasisd", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(log.level));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> configPath, socketFlag, dbFlag;
  bool checkOnly = false, print = false, simulateAppleSilicon = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      if (i + 1 >= argc) {
        std::cerr << "oasisd: " << name << " needs a value\n";
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    if (a == "--config") {
      if (!(configPath = value("--config"))) return kExitUsage;
    } else if (a == "--socket") {
      if (!(socketFlag = value("--socket"))) return kExitUsage;
    } else if (a == "--db") {
      if (!(dbFlag = value("--db"))) return kExitUsage;
    } else if (a == "--check-config") {
      checkOnly = true;
    } else if (a == "--print") {
      print = true;
    } else if (a == "--simulate-apple-silicon") {
      simulateAppleSilicon = true;
    } else if (a == "-h" || a == "--help") {
      usage(std::cout);
      return 0;
    } else {
      std::cerr << "oasisd: unknown argument '" << a << "'\n";
      usage(std::cerr);
      return kExitUsage;
    }
  }

  oasis::Config config;
  if (configPath) {
    auto loaded = oasis::loadConfigFile(*configPath);
    if (!loaded.ok()) {
      std::cerr << "oasisd: " << *configPath << " is invalid:\n" << oasis::formatConfigProblems(loaded.problems) << "\n";
      return kExitUsage;
    }
    config = loaded.config;
  }
  if (checkOnly) {
    if (print) std::cout << oasis::configToJson(config).dump(2) << "\n";
    else std::cout << "oasisd: config " << (configPath ? *configPath : std::string("(built-in defaults)")) << " is valid\n";
    return 0;
  }

  setupLogging(config.log);
  ::signal(SIGPIPE, SIG_IGN);

  oasis::DaemonOptions options;
  options.socketPath = oasis::resolveSocketPath(socketFlag, config.socketPath);
  options.databasePath = dbFlag ? *dbFlag : config.databasePath.value_or(oasis::defaultDatabasePath());
  options.configPath = configPath.value_or("");
  if (simulateAppleSilicon) options.appleSiliconOverride = true;

  // Before anything is launched: a managed serve must not inherit systemd's notify socket.
  const auto notifier = oasis::ServiceNotifier::fromEnvironment();
  auto notify = [&notifier](const std::string& state) {
    if (auto st = notifier.send(state); !st) spdlog::warn("{}", st.error().message);
  };

  boost::asio::io_context ioc;
  // Block SIGCHLD's default handling through Asio (the server process watcher waits on it).
  oasis::Daemon daemon(ioc, config, options);
  if (auto st = daemon.start(); !st) {
    spdlog::critical("cannot start: {}", st.error().message);
    return kExitCantStart;
  }
  // The API socket listens from here on (connections wait in its backlog until run()).
  notify("READY=1\nSTATUS=serving on " + options.socketPath);

  boost::asio::signal_set stopSignals(ioc, SIGTERM, SIGINT);
  boost::asio::signal_set hup(ioc, SIGHUP);
  std::function<void()> waitHup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      spdlog::info("SIGHUP: reloading config");
      notify("RELOADING=1");
      daemon.reload();
      notify("READY=1");
      waitHup();
    });
  };
  waitHup();
  stopSignals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received {}, shutting down", strsignal(sig));
    notify("STOPPING=1");
    daemon.shutdown([&] {
      hup.cancel();
      ioc.stop();
    });
  });
  ioc.run();
  spdlog::info("oasisd stopped");
  return 0;
}
