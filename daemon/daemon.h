#pragma once
// oasisd: one io_context, one owner of every piece of state. Samplers (memory, /api/ps, runner
// table) run on timers and feed the pure policies; the actions those return are executed here
// (the effects layer) and every event is written to the store. The control API serves the same
// state over the Unix socket.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/config.h"
#include "common/http.h"
#include "daemon/memory_source.h"
#include "daemon/platform/platform.h"
#include "daemon/policy/attach_lookup.h"
#include "daemon/policy/memory_policy.h"
#include "daemon/policy/pause_set.h"
#include "daemon/policy/recovery_policy.h"
#include "daemon/policy/server_policy.h"
#include "daemon/policy/spill_policy.h"
#include "daemon/server_process.h"
#include "daemon/store.h"
#include "daemon/trials.h"

namespace oasis {

struct DaemonOptions {
  std::string socketPath;
  std::string databasePath;
  std::string configPath;  // for SIGHUP reload; empty = built-in defaults
  Clock* clock = &SystemClock::instance();
  platform::Platform* platform = &platform::nativePlatform();
  std::optional<bool> appleSiliconOverride;  // tests simulate an Apple Silicon host
};

// security.allow_group: a numeric gid, or a group name looked up in the group database.
Result<unsigned> resolveGroup(const std::string& nameOrGid);
// Who may use the control socket: the daemon's own uid, root, and (with allow_group) a peer
// whose primary or supplementary groups include it. Unknown credentials are refused.
bool peerAllowed(const http::PeerCredentials& peer, unsigned selfUid, std::optional<unsigned> allowGid);

// What the runner table knows about one model's runner.
struct RunnerEntry {
  std::string model;
  platform::ProcessIdentity identity;
  double cpuPct = 0;
  std::uint64_t rssBytes = 0;
  std::string flashAttention = "unknown";
  double lastCpuSeconds = 0;
  SteadyTime lastSampleAt{};
};

class Daemon {
 public:
  Daemon(boost::asio::io_context& ioc, Config config, DaemonOptions options);
  ~Daemon();

  Status start();
  // Graceful stop: stop accepting, stop a managed serve (and its runners); calls done() once.
  void shutdown(std::function<void()> done);
  // SIGHUP: re-read the config file; keep the old config if the new one is invalid.
  void reload();

  nlohmann::json statusJson();
  const Config& config() const { return config_; }
  Store& store() { return *store_; }

 private:
  boost::asio::awaitable<void> handle(http::ServerRequest& req, http::ResponseWriter& w);
  boost::asio::awaitable<void> handleEvents(http::ServerRequest& req, http::ResponseWriter& w);
  boost::asio::awaitable<void> passThrough(http::ServerRequest& req, http::ResponseWriter& w);

  // effects
  enum class ActionSource { Server, Other };
  void execute(policy::Decision d, ActionSource source = ActionSource::Other);
  void executeServer(policy::Decision d) { execute(std::move(d), ActionSource::Server); }
  void record(const policy::PolicyEvent& e);
  void recordEvent(const std::string& kind, const std::string& model, const nlohmann::json& detail);
  void softEvict(const std::string& model);
  void killRunner(const std::string& model);
  void launchServer(const std::string& reason);
  // SIGKILL to the previous serve's process group and to `known` runners (identity-verified).
  void killOrphanedRunners(const std::map<std::string, RunnerEntry>& known);
  void restartServer(const std::string& reason);
  boost::asio::awaitable<void> restartFlow(std::string reason);
  boost::asio::awaitable<void> stopServerFlow(std::function<void()> done);
  std::map<std::string, std::string> serveEnvironment();

  // samplers
  void scheduleMemory();
  void scheduleProbe();
  void sampleMemory();
  boost::asio::awaitable<void> probeOnce();
  void refreshAttachedPid(bool healthy);
  void refreshRunners(const std::vector<policy::PsModel>& models);

  void applyConfig();
  bool appleSilicon();
  SteadyTime now() const { return options_.clock->steadyNow(); }
  WallTime wallNow() const { return options_.clock->wallNow(); }

  boost::asio::io_context& ioc_;
  Config config_;
  DaemonOptions options_;
  http::Endpoint ollama_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<http::HttpServer> api_;
  std::unique_ptr<http::HttpServer> tcpApi_;  // optional loopback listener (tcp_listener)
  SteadyTime lastPrune_{};
  std::unique_ptr<MemorySource> memorySource_;
  std::unique_ptr<ServerProcess> serve_;
  std::unique_ptr<TrialService> trials_;
  policy::PauseSet pauses_;
  policy::MemoryPolicy memoryPolicy_;
  policy::RecoveryPolicy recoveryPolicy_;
  policy::ServerPolicy serverPolicy_;
  policy::SpillPolicy spillPolicy_;
  boost::asio::steady_timer memoryTimer_;
  boost::asio::steady_timer probeTimer_;
  boost::asio::steady_timer launchTimer_;
  std::map<std::string, RunnerEntry> runners_;
  std::vector<policy::PsModel> lastPs_;
  bool lastPsOk_ = false;
  bool serverUp_ = false;
  std::string serverVersion_;
  std::string flashAttention_ = "unknown";
  std::optional<int> attachedPid_;
  std::optional<platform::ProcessIdentity> attachedServe_;  // attachedPid_'s process, to notice it exiting
  policy::AttachLookup attachLookup_;
  std::string memoryError_;
  bool restarting_ = false;
  bool stopping_ = false;
  bool probing_ = false;
  SteadyTime startedAt_;
  std::int64_t lastEventId_ = 0;
  std::vector<std::shared_ptr<boost::asio::steady_timer>> eventWaiters_;
};

}  // namespace oasis
