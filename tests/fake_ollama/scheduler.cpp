#include "tests/fake_ollama/scheduler.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "tests/fake_ollama/runner_process.h"

namespace fake_ollama {

using oasis::ollama::Duration;
using oasis::ollama::formatGoDuration;
using oasis::ollama::isForever;

void RunnerRef::release() {
  if (!runner_) return;
  auto r = std::move(runner_);
  runner_.reset();
  if (auto s = sched_.lock()) s->release(r);
}

Scheduler::Scheduler(net::any_io_executor exec, const ServeSettings& settings, Faults& faults)
    : exec_(exec), settings_(settings), faults_(faults) {}

net::awaitable<oasis::Result<RunnerRef>> Scheduler::acquire(const ModelSpec& spec, std::optional<Duration> keepAlive) {
  for (;;) {
    if (shuttingDown_) co_return oasis::Error("server shutting down", 500);
    if (auto it = loaded_.find(spec.name); it != loaded_.end()) {
      auto r = it->second;
      if (!r->child->exited) {
        // needsReload's Ping: GET /health on the runner. This is what makes a warm
        // load_duration a few milliseconds rather than zero.
        oasis::http::Request ping;
        ping.target = "/health";
        auto res = co_await oasis::http::asyncFetch(exec_, r->endpoint(), ping, std::chrono::seconds(10));
        if (r->unloaded) continue;  // unloaded while we pinged
        if (res && res->status == 200) {
          // useLoadedRunner: +1, stop the idle timer, take the request's keep_alive if given.
          // expiresAt is deliberately left alone (stale while the request runs).
          ++r->refCount;
          if (r->expireTimer) r->expireTimer->cancel();
          if (keepAlive) r->sessionDuration = *keepAlive;
          co_return RunnerRef(weak_from_this(), r);
        }
        spdlog::warn("runner for {} (pid {}) failed its health check; reloading", spec.name, r->child->pid);
      }
      // The runner died (crash, or killed from outside): reload. If requests still hold it,
      // wait for them to let go, as Ollama's needsReload path waits for the unload.
      if (r->refCount <= 0) {
        unload(r, "runner process is gone");
      } else {
        r->sessionDuration = Duration(0);
        co_await r->unloadedEvent->wait();
      }
      continue;
    }
    if (auto it = loading_.find(spec.name); it != loading_.end()) {
      auto op = it->second;
      co_await op->done.wait();
      if (op->error) co_return *op->error;
      continue;  // loaded: take the warm path
    }
    co_return co_await load(spec, keepAlive);
  }
}

net::awaitable<oasis::Result<RunnerRef>> Scheduler::load(const ModelSpec& spec, std::optional<Duration> keepAlive) {
  auto op = std::make_shared<LoadOp>(exec_);
  loading_[spec.name] = op;
  auto fail = [&](oasis::Error e) -> oasis::Result<RunnerRef> {
    op->error = e;
    loading_.erase(spec.name);
    op->done.set();
    return e;
  };

  RunnerLaunch launch;
  launch.model = spec.name;
  launch.flashAttention = settings_.flashAttention;
  launch.loadMs = faults_.loadMs().value_or(spec.loadMs);
  launch.parallel = settings_.numParallel;
  launch.loadFail = faults_.loadFail();
  if (faults_.loadMs()) spdlog::warn("fault load_ms={}: loading {} takes {} ms", *faults_.loadMs(), spec.name, launch.loadMs);
  if (launch.loadFail) spdlog::warn("fault load_fail: the runner for {} will die while loading", spec.name);
  auto port = pickFreePort();
  if (!port) co_return fail(oasis::Error("error starting runner: " + port.error().message, 500));
  launch.port = *port;
  auto pid = spawnRunner(launch);
  if (!pid) co_return fail(oasis::Error("error starting runner: " + pid.error().message, 500));
  auto child = std::make_shared<ChildProcess>();
  child->pid = *pid;
  children_.push_back(child);
  spdlog::info("starting runner model={} pid={} port={} flash_attn={} parallel={} cmd=\"fake-ollama runner --model {} --port {} --flash-attn {}\"",
               spec.name, *pid, launch.port, launch.flashAttention ? "on" : "off", launch.parallel, spec.name,
               launch.port, launch.flashAttention ? "on" : "off");

  // WaitUntilRunning: poll /health until ok, failing if the process exits. Ollama polls every
  // 250 ms; 25 ms here keeps tests fast without changing what is observable.
  auto started = std::chrono::steady_clock::now();
  const auto loadTimeout = std::chrono::minutes(5);
  for (;;) {
    if (child->exited) {
      auto msg = "llama-server process has terminated: " + describeWaitStatus(child->status);
      spdlog::error("runner for {} failed to load: {}", spec.name, msg);
      children_.erase(std::remove(children_.begin(), children_.end(), child), children_.end());
      co_return fail(oasis::Error(msg, 500));
    }
    if (shuttingDown_) co_return fail(oasis::Error("server shutting down", 500));
    oasis::http::Request ping;
    ping.target = "/health";
    auto res = co_await oasis::http::asyncFetch(exec_, oasis::http::Endpoint::tcp("127.0.0.1", launch.port), ping,
                                                std::chrono::milliseconds(200));
    if (res && res->status == 200 && !child->exited) break;
    if (std::chrono::steady_clock::now() - started > loadTimeout) {
      if (!child->exited) {
        child->status = killAndReap(child->pid);
        child->exited = true;
      }
      children_.erase(std::remove(children_.begin(), children_.end(), child), children_.end());
      co_return fail(oasis::Error("timed out waiting for llama-server to start - progress 0.00 - ", 500));
    }
    co_await sleepFor(std::chrono::milliseconds(25));
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("llama-server started in {:.2f} seconds", secs);

  auto r = std::make_shared<LoadedRunner>();
  r->spec = &spec;
  r->child = child;
  r->port = launch.port;
  r->flashAttention = launch.flashAttention;
  r->refCount = 1;  // the loading request's reference (taken only after a successful load)
  r->sessionDuration = keepAlive.value_or(settings_.keepAlive);
  r->expireTimer = std::make_unique<net::steady_timer>(exec_);
  r->unloadedEvent = std::make_unique<Event>(exec_);
  loaded_[spec.name] = r;
  loading_.erase(spec.name);
  op->done.set();
  spdlog::info("loaded runners count={}", loaded_.size());
  co_return RunnerRef(weak_from_this(), r);
}

void Scheduler::release(const std::shared_ptr<LoadedRunner>& r) {
  --r->refCount;
  spdlog::debug("context for request finished model={} refCount={}", r->spec->name, r->refCount);
  if (r->refCount > 0 || r->unloaded || shuttingDown_) return;
  if (r->sessionDuration <= Duration(0)) {
    spdlog::debug("runner with zero duration has gone idle, expiring to unload model={}", r->spec->name);
    unload(r, "keep_alive expired (zero duration)");
    return;
  }
  r->expiresAt = addSaturating(microNow(), r->sessionDuration);
  armExpiry(r);
}

void Scheduler::armExpiry(const std::shared_ptr<LoadedRunner>& r) {
  // A steady_timer cannot be armed ~292 years ahead; anything beyond a century is "never".
  if (isForever(r->sessionDuration) || r->sessionDuration > std::chrono::hours(24 * 365 * 100)) return;
  r->expireTimer->expires_after(r->sessionDuration);
  std::weak_ptr<LoadedRunner> weak = r;
  std::weak_ptr<Scheduler> self = weak_from_this();
  r->expireTimer->async_wait([weak, self](boost::system::error_code ec) {
    if (ec) return;
    auto runner = weak.lock();
    auto s = self.lock();
    if (!runner || !s || runner->unloaded || runner->refCount > 0) return;
    spdlog::debug("runner expired event received model={}", runner->spec->name);
    s->unload(runner, "keep_alive expired");
  });
}

void Scheduler::expire(const std::string& model) {
  auto it = loaded_.find(model);
  if (it == loaded_.end()) {
    spdlog::debug("unload request for {}: not loaded, nothing to do", model);
    return;
  }
  auto r = it->second;
  r->expiresAt = microNow();
  if (r->expireTimer) r->expireTimer->cancel();
  r->sessionDuration = Duration(0);
  if (r->refCount <= 0) {
    unload(r, "keep_alive:0");
  } else {
    spdlog::info("unload of {} requested (keep_alive:0) while {} request(s) hold the runner: deferred until they end",
                 model, r->refCount);
  }
}

void Scheduler::unload(const std::shared_ptr<LoadedRunner>& r, const char* why) {
  if (r->unloaded) return;
  r->unloaded = true;
  if (r->expireTimer) r->expireTimer->cancel();
  std::string how = "already exited";
  if (!r->child->exited) {
    r->child->status = killAndReap(r->child->pid);
    r->child->exited = true;
    how = describeWaitStatus(r->child->status);
  }
  children_.erase(std::remove(children_.begin(), children_.end(), r->child), children_.end());
  if (auto it = loaded_.find(r->spec->name); it != loaded_.end() && it->second == r) loaded_.erase(it);
  spdlog::info("unloaded runner model={} pid={} reason=\"{}\" ({})", r->spec->name, r->child->pid, why, how);
  r->unloadedEvent->set();
}

nlohmann::ordered_json Scheduler::psJson() const {
  struct Row {
    MicroTime expires;
    nlohmann::ordered_json j;
  };
  std::vector<Row> rows;
  auto now = microNow();
  for (const auto& [name, r] : loaded_) {
    if (r->unloaded) continue;
    const auto& m = *r->spec;
    // Zero expiresAt (first request after load still running): now + sessionDuration, a value
    // that moves on every poll (loadedModels()).
    MicroTime expires = r->expiresAt.value_or(addSaturating(now, r->sessionDuration));
    nlohmann::ordered_json j;
    j["name"] = m.name;
    j["model"] = m.name;
    j["size"] = m.size;
    j["digest"] = m.digest;
    j["details"] = {{"parent_model", ""},
                    {"format", m.format},
                    {"family", m.family},
                    {"families", nlohmann::ordered_json::array({m.family})},
                    {"parameter_size", m.parameterSize},
                    {"quantization_level", m.quantizationLevel}};
    j["expires_at"] = goTimeLocal(expires);
    j["size_vram"] = m.sizeVram();  // a CPU spill (slow_factor) still reports 100% GPU
    j["context_length"] = m.contextLength;
    rows.push_back({expires, std::move(j)});
  }
  // "longest duration remaining listed first", compared in Unix seconds, stable.
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::chrono::floor<std::chrono::seconds>(a.expires) > std::chrono::floor<std::chrono::seconds>(b.expires);
  });
  nlohmann::ordered_json models = nlohmann::ordered_json::array();
  for (auto& row : rows) models.push_back(std::move(row.j));
  return nlohmann::ordered_json{{"models", std::move(models)}};
}

void Scheduler::onChildSignal() {
  for (auto& c : children_) {
    if (c->exited) continue;
    if (auto st = tryReap(c->pid)) {
      c->exited = true;
      c->status = *st;
      spdlog::warn("runner pid {} exited unexpectedly: {}", c->pid, describeWaitStatus(*st));
    }
  }
}

void Scheduler::killAll() {
  shuttingDown_ = true;
  for (auto& c : children_) {
    if (c->exited) continue;
    c->status = killAndReap(c->pid);
    c->exited = true;
    spdlog::info("stopped runner pid={} ({})", c->pid, describeWaitStatus(c->status));
  }
}

std::vector<pid_t> Scheduler::runnerPids() const {
  std::vector<pid_t> out;
  for (const auto& c : children_)
    if (!c->exited) out.push_back(c->pid);
  return out;
}

}  // namespace fake_ollama
