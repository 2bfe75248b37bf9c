#include "daemon/api_replies.h"
#include "daemon/daemon.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "common/runner_classify.h"
#include "daemon/api_bodies.h"
#include "daemon/diagnosis.h"
#include "daemon/ollama_wire.h"
#include "daemon/policy/flash_attention_policy.h"
#include "daemon/policy/preflight.h"

namespace oasis {

namespace net = boost::asio;
using boost::system::error_code;
using nlohmann::json;

namespace {

void logSpawnError(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("task failed: {}", ex.what());
  }
}

std::string processorText(const policy::PsModel& m) {
  // The ollama CLI's PROCESSOR column (ollama-behaviour.md §2).
  if (m.sizeVram == 0) return "100% CPU";
  if (m.sizeVram == m.size) return "100% GPU";
  if (m.sizeVram > m.size || m.size == 0) return "Unknown";
  auto cpu = static_cast<int>(std::lround(static_cast<double>(m.size - m.sizeVram) / static_cast<double>(m.size) * 100));
  return std::to_string(cpu) + "%/" + std::to_string(100 - cpu) + "% CPU/GPU";
}

policy::MemoryPolicyConfig memoryPolicyConfig(const Config& c) {
  policy::MemoryPolicyConfig m;
  m.pauseBelowAvailableBytes = c.memory.pauseBelowAvailableBytes();
  m.resumeAboveAvailableBytes = c.memory.resumeAboveAvailableBytes();
  m.freeDropFactor = c.memory.freeDropFactor;
  m.window = Seconds(c.memory.windowS);
  m.swapoutPauseBytesPerSec = c.memory.swapoutRatePause;
  m.resumeHold = Seconds(c.memory.resumeHoldS);
  m.onCritical = c.memory.onCritical == MemoryConfig::OnCritical::PauseAndEvict ? policy::OnCritical::PauseAndEvict
                                                                                 : policy::OnCritical::Pause;
  // Keep the rate window proportionate to short test windows.
  m.rateWindow = Seconds(std::min(60.0, std::max(1.0, c.memory.windowS / 4)));
  m.minRateSpan = Seconds(std::min(10.0, std::max(c.memory.intervalS * 2, m.rateWindow.count() / 4)));
  return m;
}

policy::RecoveryConfig recoveryConfig(const Config& c) {
  policy::RecoveryConfig r;
  r.evictThreshold = c.ollamaEvictThreshold;
  r.stoppingGrace = Seconds(c.stoppingGraceS);
  r.mode = c.ollama.mode == OllamaConfig::Mode::Managed ? policy::ServerMode::Managed : policy::ServerMode::Attach;
  return r;
}

policy::ServerPolicyConfig serverConfig(const Config& c) {
  policy::ServerPolicyConfig s;
  s.mode = c.ollama.mode == OllamaConfig::Mode::Managed ? policy::ServerMode::Managed : policy::ServerMode::Attach;
  s.psFailuresBeforeRestart = c.ollama.wedgeAfterPsFailures;
  s.startTimeout = Seconds(c.ollama.startTimeoutS);
  s.backoff.initial = Seconds(c.ollama.restart.initialBackoffS);
  s.backoff.cap = Seconds(c.ollama.restart.maxBackoffS);
  s.healthyResetAfter = Seconds(c.ollama.restart.healthyResetS);
  s.maxFastFailures = c.ollama.restart.maxFastFailures;
  return s;
}

policy::SpillConfig spillConfig(const Config& c) {
  policy::SpillConfig s;
  s.slowFactor = c.cpuSpill.factor;
  s.baselineSamples = c.cpuSpill.minSamples;
  s.cpuHighPct = c.cpuSpill.runnerCpuPct;
  return s;
}

policy::PreflightConfig preflightConfig(const Config& c) {
  policy::PreflightConfig p;
  p.perModel.clear();
  for (auto& [k, v] : c.preflight.minFreeGb) {
    auto bytes = static_cast<std::uint64_t>(v * MemoryConfig::kBytesPerGb);
    if (k == "default") p.defaultMinFreeBytes = bytes;
    else p.perModel[k] = bytes;
  }
  p.mode = c.preflight.mode == PreflightConfig::Mode::Warn ? policy::PreflightMode::Warn : policy::PreflightMode::Block;
  return p;
}

}  // namespace

Result<unsigned> resolveGroup(const std::string& nameOrGid) {
  if (!nameOrGid.empty() && nameOrGid.find_first_not_of("0123456789") == std::string::npos && nameOrGid.size() < 10)
    return static_cast<unsigned>(std::stoul(nameOrGid));
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found = nullptr;
  int rc = ::getgrnam_r(nameOrGid.c_str(), &gr, buf.data(), buf.size(), &found);
  if (rc != 0 || !found) return Error("no group named '" + nameOrGid + "'" + (rc ? std::string(": ") + std::strerror(rc) : ""));
  return static_cast<unsigned>(found->gr_gid);
}

bool peerAllowed(const http::PeerCredentials& p, unsigned selfUid, std::optional<unsigned> allowGid) {
  if (!p.known) return false;
  if (p.uid == selfUid || p.uid == 0) return true;
  if (!allowGid) return false;
  if (p.gid == *allowGid) return true;
  if (std::find(p.groups.begin(), p.groups.end(), *allowGid) != p.groups.end()) return true;
#if defined(__linux__)
  // The kernel told us the peer's groups (SO_PEERGROUPS), an empty list included: a process
  // that dropped its supplementary groups is not a member now, whatever /etc/group says.
  return false;
#endif
  // No supplementary groups from the kernel (macOS): the peer uid's membership per the group
  // database is the next best thing.
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(static_cast<uid_t>(p.uid), &pw, buf.data(), buf.size(), &found) != 0 || !found) return false;
  int n = 256;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
#if defined(__APPLE__)
  std::vector<int> raw(static_cast<std::size_t>(n));
  if (::getgrouplist(found->pw_name, static_cast<int>(found->pw_gid), raw.data(), &n) < 0) return false;
  for (int i = 0; i < n; ++i)
    if (static_cast<unsigned>(raw[static_cast<std::size_t>(i)]) == *allowGid) return true;
#else
  if (::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n) < 0) return false;
  for (int i = 0; i < n; ++i)
    if (groups[static_cast<std::size_t>(i)] == *allowGid) return true;
#endif
  return false;
}

Daemon::Daemon(net::io_context& ioc, Config config, DaemonOptions options)
    : ioc_(ioc),
      config_(std::move(config)),
      options_(std::move(options)),
      memoryPolicy_(memoryPolicyConfig(config_)),
      recoveryPolicy_(recoveryConfig(config_)),
      serverPolicy_(serverConfig(config_)),
      spillPolicy_(spillConfig(config_)),
      memoryTimer_(ioc),
      probeTimer_(ioc),
      launchTimer_(ioc) {}

Daemon::~Daemon() = default;

bool Daemon::appleSilicon() {
  if (options_.appleSiliconOverride) return *options_.appleSiliconOverride;
  return options_.platform->isAppleSilicon();
}

void Daemon::applyConfig() {
  memoryPolicy_.setConfig(memoryPolicyConfig(config_));
  recoveryPolicy_.setConfig(recoveryConfig(config_));
  serverPolicy_.setConfig(serverConfig(config_));
  spillPolicy_.setConfig(spillConfig(config_));
}

Status Daemon::start() {
  startedAt_ = now();
  auto ep = http::Endpoint::parse(config_.ollama.url);
  if (!ep) return Error("ollama.url: " + ep.error().message);
  ollama_ = *ep;

  try {
    auto dir = std::filesystem::path(options_.databasePath).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    store_ = std::make_unique<Store>(options_.databasePath);
    int recovered = store_->recoverInterrupted(wallNow());
    if (recovered > 0) spdlog::warn("{} attempt(s) were running when oasisd last stopped; their trials are queued again", recovered);
  } catch (const std::exception& e) {
    return Error(std::string("store: ") + e.what());
  }

  auto mem = makeMemorySource(config_.memory.source, *options_.clock);
  if (!mem) return Error("memory.source: " + mem.error().message);
  memorySource_ = std::move(*mem);

  TrialService::Hooks hooks;
  hooks.dispatchAllowed = [this](const std::string& model) {
    if (!pauses_.dispatchAllowed()) return false;
    return model.empty() || pauses_.dispatchAllowed(model);
  };
  hooks.onAttempt = [this](const AttemptReport& r) {
    policy::AttemptOutcome o;
    o.model = r.model;
    o.outcome = policy::parseAttemptResult(r.outcome).value_or(policy::AttemptResult::ConnectionError);
    o.at = r.at;
    execute(recoveryPolicy_.onAttempt(o));
    if (r.outcome == "ok" && r.evalCount && r.evalDuration) {
      policy::EvalSample e;
      e.model = r.model;
      e.at = r.at;
      e.evalCount = *r.evalCount;
      e.evalDuration = *r.evalDuration;
      execute(spillPolicy_.onEval(e));
    }
  };
  hooks.onProgress = [this](const std::string& model) {
    policy::TokenProgress p;
    p.model = model;
    p.at = now();
    execute(recoveryPolicy_.onProgress(p));
  };
  hooks.onEvent = [this](const std::string& kind, const std::string& model, const json& d) { recordEvent(kind, model, d); };
  trials_ = std::make_unique<TrialService>(ioc_, *store_, config_, *options_.clock, ollama_, hooks,
                                           config_.maxConcurrency.resolve(appleSilicon()));

  http::ServerOptions opts;
  opts.maxBodyBytes = config_.maxBodyBytes;
  opts.readTimeout = ms(config_.security.readTimeoutS);
  opts.idleTimeout = ms(config_.security.idleTimeoutS);
  const unsigned self = ::getuid();
  std::optional<unsigned> allowGid;
  if (config_.security.allowGroup) {
    auto gid = resolveGroup(*config_.security.allowGroup);
    if (!gid) return Error("security.allow_group: " + gid.error().message);
    allowGid = *gid;
  }
  opts.authorize = [self, allowGid](const http::PeerCredentials& p) { return peerAllowed(p, self, allowGid); };
  if (allowGid) {
    opts.socketMode = 0660;
    opts.socketGroup = *allowGid;
    spdlog::info("socket open to group {} ({})", *config_.security.allowGroup, *allowGid);
  }
  api_ = std::make_unique<http::HttpServer>(
      ioc_.get_executor(), [this](http::ServerRequest& r, http::ResponseWriter& w) { return handle(r, w); }, opts);
  if (auto st = api_->listen(http::Endpoint::unixSocket(options_.socketPath)); !st) return st.error();
  api_->start();

  if (config_.tcpListener.enabled) {
    // TCP has no peer credentials: anyone on this machine can connect. So it binds loopback
    // only (validated in config) and serves the Ollama-compatible surface, not /v1/* control,
    // unless tcp_listener.control says otherwise.
    http::ServerOptions topts;
    topts.maxBodyBytes = config_.maxBodyBytes;
    topts.readTimeout = opts.readTimeout;
    topts.idleTimeout = opts.idleTimeout;
    bool control = config_.tcpListener.control;
    tcpApi_ = std::make_unique<http::HttpServer>(
        ioc_.get_executor(),
        [this, control](http::ServerRequest& r, http::ResponseWriter& w) -> net::awaitable<void> {
          bool isControl = r.path.rfind("/v1/", 0) == 0 || r.path == "/metrics";
          if (isControl && !control) {
            std::string body = http::errorBody("forbidden", "control endpoints are only served on the Unix socket");
            co_await w.send(403, std::move(body), "application/json", {});
            co_return;
          }
          co_await handle(r, w);
        },
        topts);
    auto tcpEp = http::Endpoint::tcp(config_.tcpListener.address == "localhost" ? "127.0.0.1" : config_.tcpListener.address,
                                     static_cast<uint16_t>(config_.tcpListener.port));
    if (auto st = tcpApi_->listen(tcpEp); !st) return Error("tcp_listener: " + st.error().message);
    tcpApi_->start();
    spdlog::info("Ollama-compatible TCP listener on {}:{}", config_.tcpListener.address, tcpApi_->boundPort());
  }

  serve_ = std::make_unique<ServerProcess>(
      ioc_.get_executor(),
      [this](const std::string& line) {
        spdlog::info("[serve] {}", line);
        if (auto secs = parseRunnerStartedLine(line)) {
          json d;
          d["seconds"] = *secs;
          d["line"] = line;
          recordEvent("runner_started", "", d);
        }
      },
      [this](const ServerExit& e) {
        spdlog::warn("ollama serve {}", e.describe());
        serverUp_ = false;
        json d;
        d["exit_code"] = e.exitCode ? json(*e.exitCode) : json();
        d["signal"] = e.signal ? json(*e.signal) : json();
        d["description"] = e.describe();
        if (restarting_ || stopping_) {
          recordEvent("server_exited", "", d);
          return;
        }
        executeServer(serverPolicy_.onExit(e.exitCode, e.signal, now()));
      });

  json started;
  started["pid"] = ::getpid();
  started["version"] = OASIS_VERSION;
  started["socket"] = options_.socketPath;
  started["mode"] = std::string(toString(config_.ollama.mode));
  recordEvent("daemon_started", "", started);
  spdlog::info("oasisd {} listening on {} (ollama {} mode at {})", OASIS_VERSION, options_.socketPath,
               toString(config_.ollama.mode), ollama_.toString());

  executeServer(serverPolicy_.start(now()));
  sampleMemory();
  scheduleMemory();
  scheduleProbe();
  return {};
}

// ---------------------------------------------------------------------------- effects

void Daemon::recordEvent(const std::string& kind, const std::string& model, const json& detail) {
  try {
    lastEventId_ = store_->addEvent(wallNow(), kind, model, detail);
  } catch (const std::exception& e) {
    spdlog::error("could not store event {}: {}", kind, e.what());
  }
  spdlog::info("event {}{} {}", kind, model.empty() ? "" : " " + model, detail.dump());
  for (auto& w : eventWaiters_) w->cancel();
  eventWaiters_.clear();
}

void Daemon::record(const policy::PolicyEvent& e) { recordEvent(std::string(e.kindName()), e.model.value_or(""), e.detail); }

void Daemon::execute(policy::Decision d, ActionSource source) {
  if (d.empty()) return;
  for (auto& e : d.events) record(e);
  for (auto& action : d.actions) {
    spdlog::debug("action {}", policy::describe(action));
    std::visit(
        [&](auto& a) {
          using A = std::decay_t<decltype(a)>;
          if constexpr (std::is_same_v<A, policy::Pause> || std::is_same_v<A, policy::Resume> ||
                        std::is_same_v<A, policy::PauseModel> || std::is_same_v<A, policy::ResumeModel>) {
            for (auto& ev : pauses_.apply(action)) record(ev);
            if constexpr (std::is_same_v<A, policy::PauseModel>) {
              // Every request waiting on a stuck runner holds a reference that keeps the unload
              // from happening (the incident's retries): cancel them, they are requeued.
              if (trials_) trials_->interruptModel(a.model, "interrupted", "model paused for recovery");
            }
          } else if constexpr (std::is_same_v<A, policy::SoftEvict>) {
            softEvict(a.model);
          } else if constexpr (std::is_same_v<A, policy::EvictAll>) {
            for (auto& m : lastPs_) softEvict(m.name);
          } else if constexpr (std::is_same_v<A, policy::KillRunner>) {
            killRunner(a.model);
          } else if constexpr (std::is_same_v<A, policy::StartServer>) {
            launchServer(a.reason);
          } else if constexpr (std::is_same_v<A, policy::RestartServer>) {
            // The server policy owns restarts (backoff, failure count); recovery only asks.
            if (source == ActionSource::Server) restartServer(a.reason);
            else executeServer(serverPolicy_.requestRestart(a.reason, now()));
          } else if constexpr (std::is_same_v<A, policy::MarkFailed>) {
            spdlog::error("ollama serve marked failed: {}", a.reason);
          }
        },
        action);
  }
  if (trials_) trials_->kick();
}

void Daemon::softEvict(const std::string& model) {
  json body;
  body["model"] = model;
  body["keep_alive"] = 0;
  http::Request req{"POST", "/api/generate", body.dump(), "application/json", {}};
  auto exec = ioc_.get_executor();
  net::co_spawn(
      ioc_,
      [exec, ep = ollama_, req, model]() -> net::awaitable<void> {
        auto r = co_await http::asyncFetch(exec, ep, req, std::chrono::milliseconds(10000));
        if (!r) spdlog::warn("soft evict of {} failed: {}", model, r.error().message);
        else spdlog::info("soft evict of {}: HTTP {}", model, r->status);
      },
      logSpawnError);
}

void Daemon::killRunner(const std::string& model) {
  policy::KillResult result;
  result.model = model;
  result.at = now();
  auto it = runners_.find(model);
  if (it == runners_.end()) {
    result.error = "no runner process known for " + model;
  } else {
    result.pid = it->second.identity.pid;
    // Identity (pid, start time, parent, --model) is re-verified inside killVerified right
    // before the signal; a reused pid is refused.
    auto st = options_.platform->killVerified(it->second.identity, SIGKILL);
    if (st) {
      result.killed = true;
      if (trials_) trials_->interruptModel(model, "killed", "oasisd killed the runner");
      json d;
      d["pid"] = it->second.identity.pid;
      d["signal"] = "SIGKILL";
      spdlog::warn("killed runner pid {} of {}", it->second.identity.pid, model);
      runners_.erase(it);
    } else {
      result.error = st.error().message;
    }
  }
  execute(recoveryPolicy_.onKillResult(result));
}

std::map<std::string, std::string> Daemon::serveEnvironment() {
  auto env = config_.ollama.env;
  env["OLLAMA_HOST"] = ollama_.host + ":" + std::to_string(ollama_.port);
  policy::FlashAttentionInputs in;
  in.mode = static_cast<policy::FlashAttentionMode>(static_cast<int>(config_.ollama.flashAttention));
  in.fixedIn = config_.ollama.flashAttentionFixedIn;
  if (!serverVersion_.empty()) in.serverVersion = serverVersion_;
  in.isAppleSilicon = appleSilicon();
  if (const char* inherited = std::getenv("OLLAMA_FLASH_ATTENTION")) in.inheritedEnv = inherited;
  if (auto it = config_.ollama.env.find("OLLAMA_FLASH_ATTENTION"); it != config_.ollama.env.end()) in.inheritedEnv = it->second;
  auto decision = policy::decideLaunchEnv(in);
  if (decision.value) env["OLLAMA_FLASH_ATTENTION"] = *decision.value;
  auto fa = env.count("OLLAMA_FLASH_ATTENTION") ? std::optional<std::string>(env["OLLAMA_FLASH_ATTENTION"]) : in.inheritedEnv;
  flashAttention_ = std::string(toString(flashAttentionFromEnvValue(fa)));
  // The CPU-spill evidence names the setting serve runs with.
  spillPolicy_.setFlashAttention(policy::settingFromEnv(fa ? std::optional<std::string_view>(*fa) : std::nullopt));
  spdlog::info("flash attention for serve: {} ({})", flashAttention_, decision.reason);
  return env;
}

void Daemon::killOrphanedRunners(const std::map<std::string, RunnerEntry>& known) {
  serve_->signalGroup(SIGKILL);  // any runner left in the previous serve's group
  for (auto& [model, r] : known) {
    // Orphans were re-parented: verify start time and --model, not the parent.
    auto id = r.identity;
    id.expectedPpid = -1;
    if (options_.platform->killVerified(id, SIGKILL)) spdlog::warn("killed orphaned runner {} ({})", id.pid, model);
  }
  runners_.clear();
}

void Daemon::launchServer(const std::string& reason) {
  if (config_.ollama.mode != OllamaConfig::Mode::Managed || stopping_) return;
  if (serve_->running()) return;
  // A serve that exited on its own (a crash) leaves its runners orphaned, holding memory and
  // its log pipe; restartFlow reaps them for the restarts oasisd starts, this for the others.
  // Found by the incident replay: every serve crash leaked a runner.
  auto known = runners_;
  killOrphanedRunners(known);
  // Backoff is the server policy's: it issues StartServer (from tick) when the delay has passed.
  auto env = serveEnvironment();
  auto st = serve_->launch(config_.ollama.command, env);
  if (!st) {
    spdlog::error("cannot launch ollama serve: {}", st.error().message);
    executeServer(serverPolicy_.onLaunchFailed(st.error().message, now()));
    return;
  }
  spdlog::info("launched {} (pid {}, flash attention {}): {}", config_.ollama.command[0], serve_->pid(),
               flashAttention_, reason);
  executeServer(serverPolicy_.onLaunched(serve_->pid(), now()));
  execute(recoveryPolicy_.onServerRestarted(now()));
}

void Daemon::restartServer(const std::string& reason) {
  if (config_.ollama.mode != OllamaConfig::Mode::Managed) return;
  if (restarting_) return;
  restarting_ = true;
  net::co_spawn(ioc_, restartFlow(reason), logSpawnError);
}

net::awaitable<void> Daemon::restartFlow(std::string reason) {
  spdlog::warn("restarting ollama serve: {}", reason);
  net::steady_timer t(ioc_);
  error_code ec;
  if (trials_) trials_->interruptModel("", "interrupted", "oasisd is restarting ollama serve");
  // Remember the runners: if serve dies without reaping them they are orphans to kill.
  auto orphans = runners_;
  if (serve_->running()) {
    serve_->signalServe(SIGTERM);  // serve's own shutdown path kills its runners
    auto deadline = now() + ms(config_.ollama.stopTimeoutS);
    while (serve_->running() && now() < deadline) {
      t.expires_after(std::chrono::milliseconds(50));
      co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (serve_->running()) {
      spdlog::warn("serve ignored SIGTERM for {} s: SIGKILL to its process group", config_.ollama.stopTimeoutS);
      serve_->signalGroup(SIGKILL);
      while (serve_->running()) {
        t.expires_after(std::chrono::milliseconds(20));
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
    }
  }
  killOrphanedRunners(orphans);
  // Wait until the port is free, or the relaunch fails with "address already in use"
  // (ollama #14364: launchd looping on bind errors).
  auto portDeadline = now() + std::chrono::seconds(10);
  while (now() < portDeadline) {
    if (!options_.platform->findListeningPid(ollama_.port)) break;
    t.expires_after(std::chrono::milliseconds(50));
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  restarting_ = false;
  launchServer(reason);
}

// ---------------------------------------------------------------------------- samplers

void Daemon::scheduleMemory() {
  memoryTimer_.expires_after(ms(config_.memory.intervalS));
  memoryTimer_.async_wait([this](error_code ec) {
    if (ec || stopping_) return;
    sampleMemory();
    scheduleMemory();
  });
}

void Daemon::sampleMemory() {
  auto s = memorySource_->sample();
  if (!s) {
    if (memoryError_ != s.error().message) spdlog::warn("memory sample failed: {}", s.error().message);
    memoryError_ = s.error().message;
    return;
  }
  memoryError_.clear();
  policy::MemoryObservation o;
  o.at = now();
  o.totalBytes = s->totalBytes;
  o.availableBytes = s->availableBytes;
  o.freeBytes = s->freeBytes;
  o.swapoutsCumulative = s->swapoutBytes().value_or(0);
  o.osLevel = s->osPressureLevel;
  o.psiSomeAvg10 = s->psiSomeAvg10;
  execute(memoryPolicy_.observe(o));
  auto& a = memoryPolicy_.assessment();
  MemorySampleRow row;
  row.at = wallNow();
  row.totalBytes = a.totalBytes;
  row.availableBytes = a.availableBytes;
  row.freeBytes = a.freeBytes;
  row.swapoutsBytes = o.swapoutsCumulative;
  row.swapoutsPerSec = a.swapoutsPerSec;
  row.pressure = a.level == policy::PressureLevel::Critical ? "critical" : a.level == policy::PressureLevel::Warn ? "warn" : "ok";
  try {
    store_->addMemorySample(row);
    // Samples are kept for store.sample_retention_s; prune a few times an hour.
    if (now() - lastPrune_ > std::chrono::minutes(10)) {
      lastPrune_ = now();
      store_->pruneSamples(wallNow() - std::chrono::duration_cast<WallTime::duration>(Seconds(config_.store.sampleRetentionS)));
    }
  } catch (const std::exception& e) {
    spdlog::error("could not store memory sample: {}", e.what());
  }
}

void Daemon::scheduleProbe() {
  probeTimer_.expires_after(ms(config_.psIntervalS));
  probeTimer_.async_wait([this](error_code ec) {
    if (ec || stopping_) return;
    if (!probing_) {
      probing_ = true;
      net::co_spawn(ioc_, probeOnce(), [this](std::exception_ptr e) {
        probing_ = false;
        logSpawnError(e);
      });
    }
    execute(recoveryPolicy_.tick(now()));
    executeServer(serverPolicy_.tick(now()));
    scheduleProbe();
  });
}

net::awaitable<void> Daemon::probeOnce() {
  auto exec = ioc_.get_executor();
  // Liveness: HEAD / takes no locks in Ollama. Scheduler health: /api/ps takes the scheduler's
  // locks and blocks when it is wedged (ollama-behaviour.md §1 "Locking"), so it has a timeout.
  http::Request head{"HEAD", "/", "", "", {}};
  auto h = co_await http::asyncFetch(exec, ollama_, head, ms(config_.ollama.healthTimeoutS));
  bool healthy = h.ok() && h->status == 200;
  if (stopping_) co_return;
  if (restarting_) co_return;
  if (config_.ollama.mode == OllamaConfig::Mode::Attach) refreshAttachedPid(healthy);
  executeServer(serverPolicy_.onHealth(healthy, now()));
  if (!healthy) {
    serverUp_ = false;
    co_return;
  }
  if (serverVersion_.empty()) {
    http::Request vreq{"GET", "/api/version", "", "", {}};
    auto v = co_await http::asyncFetch(exec, ollama_, vreq, ms(config_.ollama.healthTimeoutS));
    if (v && v->status == 200) {
      auto j = json::parse(v->body, nullptr, false);
      serverVersion_ = parseVersionBody(j);
    }
  }
  http::Request psReq{"GET", "/api/ps", "", "", {}};
  auto ps = co_await http::asyncFetch(exec, ollama_, psReq, ms(config_.ollama.psTimeoutS));
  if (stopping_ || restarting_) co_return;
  policy::PsObservation obs;
  obs.at = now();
  obs.wallNow = wallNow();
  obs.ok = ps.ok() && ps->status == 200;
  if (obs.ok) {
    auto j = json::parse(ps->body, nullptr, false);
    obs.models = parsePsModels(j);  // daemon/ollama_wire.h
    if (j.is_discarded()) obs.ok = false;
  }
  if (!obs.ok) spdlog::warn("/api/ps did not answer in {} s: {}", config_.ollama.psTimeoutS, ps.ok() ? std::to_string(ps->status) : ps.error().message);
  serverUp_ = obs.ok;
  lastPsOk_ = obs.ok;
  executeServer(serverPolicy_.onPs(obs.ok, now()));
  if (obs.ok) {
    lastPs_ = obs.models;
    refreshRunners(obs.models);
    spillPolicy_.onPs(obs);
  }
  execute(recoveryPolicy_.onPs(obs));
  try {
    json models = json::array();
    for (auto& m : obs.models) {
      json e;
      e["name"] = m.name;
      e["expires_at"] = formatIso8601Utc(m.expiresAt);
      e["size"] = m.size;
      e["size_vram"] = m.sizeVram;
      models.push_back(e);
    }
    store_->addPsSample(wallNow(), obs.ok, models);
  } catch (const std::exception& e) {
    spdlog::error("could not store ps sample: {}", e.what());
  }
}

// Which process serves the attached port; policy::AttachLookup says when the (costly) lookup
// runs again.
void Daemon::refreshAttachedPid(bool healthy) {
  bool stillKnown = false;
  if (healthy && attachedServe_) {
    auto info = options_.platform->readProcess(attachedServe_->pid);
    stillKnown = info && !info->zombie && platform::matchesIdentity(*info, *attachedServe_).ok();
  }
  if (!attachLookup_.due(healthy, stillKnown, now())) return;
  attachLookup_.looked(now());
  attachedServe_.reset();
  attachedPid_ = options_.platform->findListeningPid(ollama_.port);
  if (!attachedPid_) return;
  auto info = options_.platform->readProcess(*attachedPid_);
  if (info && info->startTime != 0) {
    platform::ProcessIdentity id;
    id.pid = info->pid;
    id.startTime = info->startTime;
    attachedServe_ = id;
  }
}

void Daemon::refreshRunners(const std::vector<policy::PsModel>& models) {
  int servePid = config_.ollama.mode == OllamaConfig::Mode::Managed ? serve_->pid() : attachedPid_.value_or(-1);
  if (servePid <= 0) return;
  auto children = options_.platform->listChildren(servePid);
  if (!children) return;
  std::map<std::string, RunnerEntry> next;
  std::vector<std::pair<std::string, platform::ProcessInfo>> found;
  for (int pid : *children) {
    auto info = options_.platform->readProcess(pid);
    if (!info || info->zombie) continue;
    auto cls = classifyRunner(info->argv, info->exe);
    if (!cls) continue;  // discovery processes have no --model (ollama-behaviour.md §4)
    found.emplace_back(cls->model, *info);
  }
  for (auto& [argModel, info] : found) {
    // fake-ollama and MLX runners carry the model name; llama-server carries a blob path. With
    // a blob path, a single loaded model is unambiguous; otherwise keep the path as the key.
    std::string model = argModel;
    bool named = false;
    for (auto& m : models)
      if (m.name == argModel) named = true;
    if (!named && found.size() == 1 && models.size() == 1) model = models[0].name;
    RunnerEntry e;
    e.model = model;
    e.identity.pid = info.pid;
    e.identity.startTime = info.startTime;
    e.identity.expectedPpid = servePid;
    e.identity.mustContainArg = "--model";
    e.rssBytes = info.rssBytes;
    e.flashAttention = std::string(toString(flashAttentionFromArgv(info.argv)));
    e.lastCpuSeconds = info.cpuSeconds;
    e.lastSampleAt = now();
    if (auto old = runners_.find(model); old != runners_.end() && old->second.identity.pid == info.pid) {
      e.cpuPct = cpuPercent(old->second.lastCpuSeconds, old->second.lastSampleAt, info.cpuSeconds, e.lastSampleAt);
    }
    next[model] = e;
    RunnerSampleRow row;
    row.at = wallNow();
    row.model = model;
    row.pid = info.pid;
    row.cpuPct = e.cpuPct;
    row.rssBytes = e.rssBytes;
    row.flashAttention = e.flashAttention;
    try {
      store_->addRunnerSample(row);
    } catch (...) {
    }
    spillPolicy_.onRunnerCpu(model, e.cpuPct);
    policy::RunnerInfo ri;
    ri.model = model;
    ri.pid = info.pid;
    ri.at = now();
    execute(recoveryPolicy_.onRunnerInfo(ri));
  }
  runners_ = std::move(next);
}

// ---------------------------------------------------------------------------- lifecycle

void Daemon::shutdown(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("oasisd stopping");
  memoryTimer_.cancel();
  probeTimer_.cancel();
  launchTimer_.cancel();
  api_->stop();
  if (tcpApi_) tcpApi_->stop();
  if (trials_) trials_->stop();
  for (auto& w : eventWaiters_) w->cancel();
  eventWaiters_.clear();
  net::co_spawn(ioc_, stopServerFlow(std::move(done)), logSpawnError);
}

net::awaitable<void> Daemon::stopServerFlow(std::function<void()> done) {
  // The whole stop is bounded by shutdown_timeout_s (under launchd's ExitTimeOut and systemd's
  // TimeoutStopSec). First the in-flight attempts: trials_->stop() closed their streams, and
  // each records itself as `interrupted` (not counted) and requeues its trial. Waiting for
  // that here means a clean stop leaves no `running` rows for the next start to repair.
  const auto shutdownDeadline = now() + ms(config_.shutdownTimeoutS);
  net::steady_timer t(ioc_);
  error_code ec;
  while (trials_ && trials_->inFlight() > 0 && now() < shutdownDeadline - ms(config_.shutdownTimeoutS / 2)) {
    t.expires_after(std::chrono::milliseconds(10));
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  if (trials_ && trials_->inFlight() > 0)
    spdlog::warn("{} attempt(s) still recording at shutdown; the next start marks them interrupted", trials_->inFlight());
  // serve's own SIGTERM path unloads its runners (ollama-behaviour.md §4); after the grace
  // period, SIGKILL the whole group so no runner outlives us holding GPU memory.
  if (serve_ && serve_->running()) {
    serve_->signalServe(SIGTERM);
    auto deadline = std::min(now() + ms(config_.ollama.stopTimeoutS), shutdownDeadline);
    bool killed = false;
    while (serve_->running()) {
      if (!killed && now() >= deadline) {
        serve_->signalGroup(SIGKILL);
        killed = true;
      }
      t.expires_after(std::chrono::milliseconds(20));
      co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    serve_->signalGroup(SIGKILL);  // runners it failed to reap
  }
  recordEvent("daemon_stopped", "", json::object());
  done();
}

void Daemon::reload() {
  if (options_.configPath.empty()) {
    spdlog::info("SIGHUP: no config file to reload (running on built-in defaults)");
    return;
  }
  auto loaded = loadConfigFile(options_.configPath);
  if (!loaded.ok()) {
    spdlog::error("SIGHUP: {} is invalid, keeping the running config:\n{}", options_.configPath,
                  formatConfigProblems(loaded.problems));
    json d;
    d["path"] = options_.configPath;
    d["problems"] = formatConfigProblems(loaded.problems);
    recordEvent("config_rejected", "", d);
    return;
  }
  auto socket = config_.socketPath;
  auto db = config_.databasePath;
  config_ = loaded.config;
  config_.socketPath = socket;  // these two need a restart to change
  config_.databasePath = db;
  applyConfig();
  json d;
  d["path"] = options_.configPath;
  recordEvent("config_reloaded", "", d);
}

// ---------------------------------------------------------------------------- status & API

json Daemon::statusJson() {
  json s;
  s["version"] = OASIS_VERSION;
  s["pid"] = ::getpid();
  s["uptime_s"] = std::chrono::duration<double>(now() - startedAt_).count();
  json run;
  run["state"] = pauses_.dispatchAllowed() ? "running" : "paused";
  run["pause_reasons"] = pauses_.reasonNames();
  json modelPauses = json::object();
  for (auto& [m, reasons] : pauses_.modelPauses()) {
    json r = json::array();
    for (auto reason : reasons) r.push_back(std::string(policy::toString(reason)));
    modelPauses[m] = r;
  }
  run["model_pauses"] = modelPauses;
  s["run"] = run;

  json server;
  server["mode"] = config_.ollama.mode == OllamaConfig::Mode::Managed ? "managed" : "attached";
  server["url"] = ollama_.toString();
  int pid = config_.ollama.mode == OllamaConfig::Mode::Managed ? serve_->pid() : attachedPid_.value_or(-1);
  server["pid"] = pid > 0 ? json(pid) : json();
  server["up"] = serverUp_;
  server["version"] = serverVersion_;
  server["restarts"] = serverPolicy_.restarts();
  server["state"] = serverPolicy_.failed() ? "failed" : (serverUp_ ? "up" : "down");
  server["failed"] = serverPolicy_.failed();
  server["flash_attention"] = flashAttention_;
  s["server"] = server;

  json models = json::array();
  auto wall = wallNow();
  for (auto& m : lastPs_) {
    json e;
    e["name"] = m.name;
    e["size"] = m.size;
    e["size_vram"] = m.sizeVram;
    e["processor"] = processorText(m);
    e["expires_at"] = formatIso8601Utc(m.expiresAt);
    bool stopping = wall > m.expiresAt;
    e["stopping"] = stopping;
    e["stopping_for_s"] = stopping ? std::chrono::duration<double>(wall - m.expiresAt).count() : 0.0;
    e["recovery"] = std::string(policy::toString(recoveryPolicy_.state(m.name)));
    if (auto r = runners_.find(m.name); r != runners_.end()) {
      json rj;
      rj["pid"] = r->second.identity.pid;
      rj["cpu_pct"] = r->second.cpuPct;
      rj["rss_bytes"] = r->second.rssBytes;
      rj["flash_attention"] = r->second.flashAttention;
      e["runner"] = rj;
    } else {
      e["runner"] = nullptr;
    }
    models.push_back(e);
  }
  s["models"] = models;

  auto& a = memoryPolicy_.assessment();
  json mem;
  mem["source"] = std::string(toString(config_.memory.source.kind));
  mem["total_bytes"] = a.totalBytes;
  mem["available_bytes"] = a.availableBytes;
  mem["free_bytes"] = a.freeBytes;
  mem["swapouts_per_s"] = a.swapoutsPerSec;
  mem["pressure"] = a.level == policy::PressureLevel::Critical ? "critical" : a.level == policy::PressureLevel::Warn ? "warn" : "ok";
  mem["reasons"] = a.reasons;
  mem["trend"] = a.trend == policy::MemoryTrend::Falling ? "falling"
                 : a.trend == policy::MemoryTrend::Rising ? "rising"
                 : a.trend == policy::MemoryTrend::Stable ? "stable" : "unknown";
  if (!memoryError_.empty()) mem["error"] = memoryError_;
  s["memory"] = mem;

  json trials;
  auto c = store_->counts();
  trials["queued"] = c.queued;
  trials["running"] = c.running;
  trials["succeeded"] = c.succeeded;
  trials["failed"] = c.failed;
  trials["cancelled"] = c.cancelled;
  s["trials"] = trials;

  json last = json::array();
  for (auto& e : store_->lastEvents(5)) last.push_back(e.toJson());
  s["last_events"] = last;
  return s;
}

net::awaitable<void> Daemon::handle(http::ServerRequest& req, http::ResponseWriter& w) {
  const auto& path = req.path;
  auto methodIs = [&](const char* m) { return req.method == m; };
  if (trials_->handles(path)) {
    co_await trials_->handle(req, w);
    co_return;
  }
  if (path == "/api/generate" || path == "/api/chat") {
    if (!methodIs("POST")) {
      co_await w.send(405, "405 method not allowed", "text/plain", {});
      co_return;
    }
    // Unload requests (empty prompt/messages with keep_alive 0) go straight to Ollama; so does
    // a load request (empty prompt without keep_alive).
    auto j = json::parse(req.body, nullptr, false);
    bool emptyPrompt = j.is_object() &&
                       (path == "/api/generate" ? (!j.contains("prompt") || j["prompt"] == "")
                                                : (!j.contains("messages") || (j["messages"].is_array() && j["messages"].empty())));
    if (emptyPrompt && j.contains("model") && j["model"].is_string()) {
      if (j.contains("keep_alive") && (j["keep_alive"] == 0 || j["keep_alive"] == "0s" || j["keep_alive"] == "0")) {
        policy::EvictRequest ev;
        ev.model = j["model"];
        ev.source = policy::EvictSource::Client;
        ev.at = now();
        execute(recoveryPolicy_.requestEvict(ev.model, ev.source, ev.at));
      }
      co_await passThrough(req, w);
      co_return;
    }
    co_await trials_->handleCompat(req, w, path == "/api/chat" ? "chat" : "generate");
    co_return;
  }
  if ((path == "/" && (methodIs("GET") || methodIs("HEAD"))) || path == "/api/version" || path == "/api/tags" ||
      path == "/api/ps" || path == "/api/show") {
    co_await passThrough(req, w);
    co_return;
  }
  bool known = path == "/v1/status" || path == "/v1/pause" || path == "/v1/resume" || path == "/v1/evict" ||
               path == "/v1/kill-runner" || path == "/v1/events" || path == "/v1/preflight" || path == "/metrics" ||
               path == "/v1/timeline" || path == "/v1/diagnosis";
  if (!known) {
    co_await sendError(w, 404, "not_found", "no such endpoint: " + path);
    co_return;
  }
  bool isGet = path == "/v1/status" || path == "/v1/events" || path == "/v1/preflight" || path == "/metrics" ||
               path == "/v1/timeline" || path == "/v1/diagnosis";
  if ((isGet && !methodIs("GET") && !methodIs("HEAD")) || (!isGet && !methodIs("POST"))) {
    std::string allowed = isGet ? "GET" : "POST";
    co_await sendError(w, 405, "method_not_allowed", req.method + " is not allowed on " + path + " (use " + allowed + ")");
    co_return;
  }
  if (path == "/v1/status") {
    co_await sendJson(w, 200, statusJson());
    co_return;
  }
  if (path == "/v1/events") {
    co_await handleEvents(req, w);
    co_return;
  }
  if (path == "/metrics") {
    auto st = statusJson();
    std::string m;
    m += "# HELP oasisd_up 1 while oasisd runs\n# TYPE oasisd_up gauge\noasisd_up 1\n";
    m += "# HELP oasisd_paused 1 while dispatch is paused\n# TYPE oasisd_paused gauge\noasisd_paused " +
         std::string(st["run"]["state"] == "paused" ? "1" : "0") + "\n";
    m += "# HELP oasisd_server_up 1 while the supervised Ollama answers\n# TYPE oasisd_server_up gauge\noasisd_server_up " +
         std::string(serverUp_ ? "1" : "0") + "\n";
    m += "# HELP oasisd_server_restarts_total restarts of ollama serve\n# TYPE oasisd_server_restarts_total counter\n"
         "oasisd_server_restarts_total " + std::to_string(serverPolicy_.restarts()) + "\n";
    m += "# HELP oasisd_memory_available_bytes available memory\n# TYPE oasisd_memory_available_bytes gauge\n"
         "oasisd_memory_available_bytes " + std::to_string(memoryPolicy_.assessment().availableBytes) + "\n";
    m += "# HELP oasisd_trials trials by state\n# TYPE oasisd_trials gauge\n";
    for (auto& [k, v] : st["trials"].items()) m += "oasisd_trials{state=\"" + k + "\"} " + std::to_string(v.get<long long>()) + "\n";
    m += "# HELP oasisd_models_loaded models listed by /api/ps\n# TYPE oasisd_models_loaded gauge\noasisd_models_loaded " +
         std::to_string(lastPs_.size()) + "\n";
    co_await w.send(200, std::move(m), "text/plain; version=0.0.4; charset=utf-8", {});
    co_return;
  }
  if (path == "/v1/preflight") {
    auto model = req.query.count("model") ? req.query.at("model") : std::string();
    if (model.empty()) {
      co_await sendError(w, 400, "invalid_query", "query parameter 'model' is required");
      co_return;
    }
    auto result = policy::preflight(preflightConfig(config_), model, memoryPolicy_.assessment().availableBytes);
    if (!result.sufficient) execute(policy::preflightDecision(result, preflightConfig(config_).mode));
    co_await sendJson(w, 200, result.toJson());
    co_return;
  }
  if (path == "/v1/diagnosis") {
    WallTime until = wallNow();
    WallTime since = until - std::chrono::hours(1);
    if ((req.query.count("since") && !parseIso8601(req.query.at("since"), since)) ||
        (req.query.count("until") && !parseIso8601(req.query.at("until"), until))) {
      co_await sendError(w, 400, "invalid_query", "since and until must be ISO-8601 times");
      co_return;
    }
    DiagnosisOptions dopt;
    dopt.freeDropFactor = config_.memory.freeDropFactor;
    dopt.spillFactor = config_.cpuSpill.factor;
    co_await sendJson(w, 200, diagnose(*store_, since, until, dopt));
    co_return;
  }
  if (path == "/v1/timeline") {
    int bucket = 60;
    std::optional<std::string> run;
    if (req.query.count("run")) run = req.query.at("run");
    if (req.query.count("bucket_s")) {
      try {
        bucket = std::stoi(req.query.at("bucket_s"));
      } catch (...) {
        bucket = -1;
      }
      if (bucket <= 0 || bucket > 86400) {
        co_await sendError(w, 400, "invalid_query", "bucket_s must be an integer in 1..86400");
        co_return;
      }
    }
    WallTime since = wallNow() - std::chrono::hours(1);
    if (req.query.count("since") && !parseIso8601(req.query.at("since"), since)) {
      co_await sendError(w, 400, "invalid_query", "since must be an ISO-8601 time");
      co_return;
    }
    const auto until = wallNow();
    if (auto ok = checkTimelineWindow(std::chrono::duration<double>(until - since).count(), bucket); !ok) {
      co_await sendError(w, 400, "invalid_query", ok.error().message);
      co_return;
    }
    json rows = json::array();
    for (auto& r : store_->timeline(run, since, until, bucket)) {
      json row;
      row["start"] = formatIso8601Utc(r.start);
      row["trials"] = r.trials;
      row["succeeded"] = r.succeeded;
      row["failed"] = r.failed;
      row["failure_rate"] = r.failureRate;
      row["p50_ms"] = r.p50Ms ? json(*r.p50Ms) : json();
      row["p95_ms"] = r.p95Ms ? json(*r.p95Ms) : json();
      row["actions"] = r.actions;
      rows.push_back(row);
    }
    json body;
    body["rows"] = rows;
    co_await sendJson(w, 200, body);
    co_return;
  }

  // Bodies are parsed by daemon/api_bodies.h (shared with tests/fuzz).
  auto body = parseObjectBody(req.body);
  if (!body) {
    co_await sendError(w, 400, "invalid_body", body.error().message);
    co_return;
  }
  if (path == "/v1/pause") {
    auto pause = parsePauseBody(*body);
    if (!pause) {
      co_await sendError(w, 400, "invalid_body", pause.error().message);
      co_return;
    }
    policy::Decision d;
    d.actions.push_back(policy::Pause{pause->reason});
    execute(d);
    // drain:false stops what runs now too: the attempts are cut (their connections closed) and
    // their trials requeued without using an attempt, to run again after the resume.
    if (!pause->drain && trials_) trials_->interruptModel("", "interrupted", "paused without drain");
    co_await sendJson(w, 200, statusJson());
    co_return;
  }
  if (path == "/v1/resume") {
    policy::Decision d;
    d.actions.push_back(policy::Resume{policy::PauseReason::Manual});
    execute(d);
    co_await sendJson(w, 200, statusJson());
    co_return;
  }
  if (path == "/v1/evict" || path == "/v1/kill-runner") {
    // Only a model name: the process to signal is always found and verified by oasisd itself
    // (a child of the supervised serve, start time and --model re-checked), never taken from
    // a client. parseModelBody refuses a "pid" (any other field) rather than ignoring it.
    auto parsed = parseModelBody(*body);
    if (!parsed) {
      co_await sendError(w, 400, "invalid_body", parsed.error().message);
      co_return;
    }
    std::optional<std::string> model = *parsed;
    std::vector<std::string> targets;
    if (model) targets.push_back(*model);
    else
      for (auto& m : lastPs_) targets.push_back(m.name);
    json actions = json::array();
    for (auto& m : targets) {
      policy::Decision d = path == "/v1/evict" ? recoveryPolicy_.requestEvict(m, policy::EvictSource::Api, now())
                                               : recoveryPolicy_.requestKill(m, now());
      for (auto& a : d.actions) actions.push_back(policy::toJson(a));
      execute(d);
    }
    json out;
    out["actions"] = actions;
    co_await sendJson(w, 200, out);
    co_return;
  }
  co_await sendError(w, 404, "not_found", "no such endpoint: " + path);
}

net::awaitable<void> Daemon::passThrough(http::ServerRequest& req, http::ResponseWriter& w) {
  http::Request up;
  up.method = req.method;
  up.target = req.target;
  up.body = req.body;
  up.contentType = req.header("content-type", "application/json");
  auto r = co_await http::asyncFetch(ioc_.get_executor(), ollama_, up, ms(config_.ollama.psTimeoutS + 5));
  if (!r) {
    json e;
    e["error"] = "oasisd could not reach Ollama at " + ollama_.toString() + ": " + r.error().message;
    std::string text = e.dump();
    co_await w.send(502, std::move(text), "application/json; charset=utf-8", {});
    co_return;
  }
  std::string ct = r->header("content-type", "application/json; charset=utf-8");
  co_await w.send(r->status, std::move(r->body), ct, {});
}

net::awaitable<void> Daemon::handleEvents(http::ServerRequest& req, http::ResponseWriter& w) {
  std::int64_t since = 0;
  if (req.query.count("since")) {
    try {
      since = std::stoll(req.query.at("since"));
    } catch (...) {
      since = -1;
    }
    if (since < 0) {
      co_await sendError(w, 400, "invalid_query", "since must be a non-negative event id");
      co_return;
    }
  }
  bool follow = req.query.count("follow") && (req.query.at("follow") == "1" || req.query.at("follow") == "true");
  if (!co_await w.beginStream(200, "application/x-ndjson")) co_return;
  for (;;) {
    auto events = store_->eventsSince(since, 1000);
    for (auto& e : events) {
      std::string line = e.toJson().dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      if (!co_await w.writeChunk(std::move(line))) co_return;
      since = e.id;
    }
    if (events.size() == 1000) continue;
    if (!follow || stopping_ || w.clientGone()) break;
    // Wait for the next event (recordEvent cancels the waiters) or a heartbeat interval.
    auto timer = std::make_shared<net::steady_timer>(ioc_);
    timer->expires_after(std::chrono::seconds(15));
    eventWaiters_.push_back(timer);
    error_code ec;
    co_await timer->async_wait(net::redirect_error(net::use_awaitable, ec));
    if (w.clientGone() || stopping_) break;
  }
  co_await w.endStream();
}

}  // namespace oasis
