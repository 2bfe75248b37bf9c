#pragma once
// The model scheduler: Ollama's server/sched.go reduced to what oasisd depends on
// (ollama-behaviour.md §1 and §3). Single-threaded: every method runs on serve's io_context.
//
//  * A runner's refCount is held by a RunnerRef owned by the HTTP handler: +1 when a cold load
//    finishes (for the request that triggered it) or on a warm hit, -1 when the handler ends
//    (it ends when it returns or when its client disconnects). Requests waiting for a slot in
//    the runner already hold their reference.
//  * When refCount reaches 0: sessionDuration <= 0 -> unload now; otherwise arm the expiry timer
//    and set expiresAt = now + sessionDuration. expiresAt is never touched when a request starts
//    (stale during requests); while it is unset (first request after load) ps substitutes
//    now + sessionDuration.
//  * keep_alive:0 (expire): expiresAt = now, sessionDuration = 0, unload only if refCount == 0;
//    otherwise the unload waits for the count to reach 0 (the "Stopping..." state).
//  * Unload = SIGKILL + reap (runner_process.h), then the model leaves ps.
//  * A model is absent from ps while it loads (era C).
#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/http.h"
#include "common/ollama_duration.h"
#include "tests/fake_ollama/async_util.h"
#include "tests/fake_ollama/catalog.h"
#include "tests/fake_ollama/faults.h"
#include "tests/fake_ollama/settings.h"
#include "tests/fake_ollama/timefmt.h"

namespace fake_ollama {

struct ChildProcess {
  pid_t pid = -1;
  bool exited = false;  // reaped by us
  int status = 0;
};

struct LoadedRunner {
  const ModelSpec* spec = nullptr;
  std::shared_ptr<ChildProcess> child;
  uint16_t port = 0;
  bool flashAttention = true;
  int refCount = 0;
  oasis::ollama::Duration sessionDuration{};
  std::optional<MicroTime> expiresAt;  // unset until the runner first goes idle
  bool unloaded = false;
  std::unique_ptr<net::steady_timer> expireTimer;
  std::unique_ptr<Event> unloadedEvent;

  oasis::http::Endpoint endpoint() const { return oasis::http::Endpoint::tcp("127.0.0.1", port); }
};

class Scheduler;

// One request's reference on a runner. Move-only; releasing it may unload the runner.
class RunnerRef {
 public:
  RunnerRef() = default;
  RunnerRef(std::weak_ptr<Scheduler> s, std::shared_ptr<LoadedRunner> r) : sched_(std::move(s)), runner_(std::move(r)) {}
  RunnerRef(RunnerRef&& o) noexcept : sched_(std::move(o.sched_)), runner_(std::move(o.runner_)) {}
  RunnerRef& operator=(RunnerRef&& o) noexcept {
    if (this != &o) {
      release();
      sched_ = std::move(o.sched_);
      runner_ = std::move(o.runner_);
    }
    return *this;
  }
  ~RunnerRef() { release(); }
  LoadedRunner* operator->() const { return runner_.get(); }
  LoadedRunner& operator*() const { return *runner_; }
  void release();

 private:
  std::weak_ptr<Scheduler> sched_;
  std::shared_ptr<LoadedRunner> runner_;
};

class Scheduler : public std::enable_shared_from_this<Scheduler> {
 public:
  Scheduler(net::any_io_executor exec, const ServeSettings& settings, Faults& faults);

  // Loads the model if needed and takes a reference. Errors carry an HTTP status in code (500).
  net::awaitable<oasis::Result<RunnerRef>> acquire(const ModelSpec& spec, std::optional<oasis::ollama::Duration> keepAlive);

  // keep_alive: 0 with an empty prompt (expireRunner). A no-op if the model is not loaded
  // (including while it loads: era C).
  void expire(const std::string& model);

  nlohmann::ordered_json psJson() const;

  void onChildSignal();  // SIGCHLD: reap whichever runners exited
  void killAll();        // serve shutdown: SIGKILL + reap every runner
  std::vector<pid_t> runnerPids() const;

  void release(const std::shared_ptr<LoadedRunner>& r);

 private:
  net::awaitable<oasis::Result<RunnerRef>> load(const ModelSpec& spec, std::optional<oasis::ollama::Duration> keepAlive);
  void unload(const std::shared_ptr<LoadedRunner>& r, const char* why);
  void armExpiry(const std::shared_ptr<LoadedRunner>& r);

  struct LoadOp {
    explicit LoadOp(net::any_io_executor e) : done(e) {}
    Event done;
    std::optional<oasis::Error> error;
  };

  net::any_io_executor exec_;
  const ServeSettings& settings_;
  Faults& faults_;
  std::map<std::string, std::shared_ptr<LoadedRunner>> loaded_;
  std::map<std::string, std::shared_ptr<LoadOp>> loading_;
  std::vector<std::shared_ptr<ChildProcess>> children_;
  bool shuttingDown_ = false;
};

}  // namespace fake_ollama
