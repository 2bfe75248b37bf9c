// `fake-ollama runner --model <name> --port <n> --flash-attn on|off [--load-ms N] [--parallel N]
// [--load-fail]`: the model runner child process. Like llama-server in era C
// (ollama-behaviour.md §4) it is a separate process with its own HTTP server on 127.0.0.1:<port>,
// a /health endpoint, and per-request slots (-np). Faults arrive with each completion request
// and are executed here, in the process oasisd will observe: a hang holds its slot until the
// process dies (a real hang is in the GPU kernel), hang_spin burns a core, a crash exits.
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "tests/fake_ollama/async_util.h"
#include "tests/fake_ollama/logging.h"
#include "tests/fake_ollama/runner_protocol.h"
#include "tests/fake_ollama/subcommands.h"

namespace fake_ollama {

namespace {

using nlohmann::json;
using oasis::http::ResponseWriter;
using oasis::http::ServerRequest;

struct RunnerOptions {
  std::string model;
  int port = 0;
  bool flashAttention = false;
  int loadMs = 300;
  int parallel = 1;
  bool loadFail = false;
};

// Completion slots (llama-server's -np). Waiters queue in FIFO order.
class Slots {
 public:
  Slots(net::any_io_executor exec, int n) : exec_(exec), free_(n) {}
  net::awaitable<void> acquire() {
    if (free_ > 0 && waiters_.empty()) {
      --free_;
      co_return;
    }
    auto ev = std::make_shared<Event>(exec_);
    waiters_.push_back(ev);
    co_await ev->wait();  // release() hands the slot over directly
  }
  void release() {
    while (!waiters_.empty()) {
      auto ev = waiters_.front();
      waiters_.pop_front();
      ev->set();
      return;
    }
    ++free_;
  }
  int busy(int total) const { return total - free_; }
  std::size_t waiting() const { return waiters_.size(); }

 private:
  net::any_io_executor exec_;
  int free_;
  std::deque<std::shared_ptr<Event>> waiters_;
};

class Runner {
 public:
  Runner(net::io_context& io, RunnerOptions opt)
      : io_(io), opt_(std::move(opt)), slots_(io.get_executor(), opt_.parallel), forever_(io.get_executor()) {
    loadedAt_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt_.loadMs);
  }

  net::awaitable<void> handle(ServerRequest& req, ResponseWriter& w) {
    if (req.path == "/health") {
      if (std::chrono::steady_clock::now() < loadedAt_) {
        co_await w.send(503, R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})");
      } else {
        co_await w.send(200, R"({"status":"ok"})");
      }
      co_return;
    }
    if (req.path == "/completion" && req.method == "POST") {
      co_await completion(req, w);
      co_return;
    }
    co_await w.send(404, R"({"error":{"code":404,"message":"File Not Found","type":"not_found_error"}})");
  }

 private:
  net::awaitable<void> completion(ServerRequest& req, ResponseWriter& w) {
    auto body = json::parse(req.body, nullptr, false);
    if (!body.is_object()) {
      co_await w.send(400, R"({"error":{"code":400,"message":"invalid JSON"}})");
      co_return;
    }
    auto creq = CompletionRequest::fromJson(body);
    // Headers go out at once: serve then waits on the body, which is where a request queued
    // behind a hung slot sits forever.
    if (!co_await w.beginStream(200, "application/x-ndjson")) co_return;
    co_await slots_.acquire();
    bool slotHeld = true;
    struct SlotGuard {
      Slots& s;
      bool& held;
      ~SlotGuard() {
        if (held) s.release();
      }
    } guard{slots_, slotHeld};

    double tps = creq.tokensPerSecond;
    const auto& f = creq.faults;
    if (f.slowFactor != 1.0 && f.slowFactor > 0) {
      if (!f.slowOnlyWithFlashAttention || opt_.flashAttention) {
        tps /= f.slowFactor;
        spdlog::warn("fault slow_factor={} active (flash attention {}): generating at {:.1f} tokens/s", f.slowFactor,
                     opt_.flashAttention ? "on" : "off", tps);
      } else {
        spdlog::info("fault slow_factor={} ignored: flash attention is off and slow_only_with_flash_attention is set",
                     f.slowFactor);
      }
    }
    auto perToken = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(1.0 / tps));
    auto start = std::chrono::steady_clock::now();
    // Prompt evaluation: ten times faster than generation.
    co_await sleepFor(perToken * std::max(1, creq.promptTokens) / 10);
    auto promptDone = std::chrono::steady_clock::now();

    int produced = 0;
    for (; produced < creq.numPredict; ++produced) {
      if (f.hangAfterTokens >= 0 && produced == f.hangAfterTokens) {
        co_await hangForever(f.hangSpin, produced);
        co_return;  // not reached
      }
      if (f.crashAfterTokens >= 0 && produced == f.crashAfterTokens) crashNow(produced);
      co_await sleepFor(perToken);
      json tok{{"content", tokenText(produced)}, {"stop", false}};
      if (!co_await w.writeChunk(tok.dump() + "\n")) {
        spdlog::info("completion client went away after {} tokens; slot released", produced);
        co_return;
      }
    }
    if (f.hangAfterTokens >= 0 && produced == f.hangAfterTokens) co_await hangForever(f.hangSpin, produced);
    if (f.crashAfterTokens >= 0 && produced == f.crashAfterTokens) crashNow(produced);
    auto end = std::chrono::steady_clock::now();
    auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
    json fin{{"content", ""},
             {"stop", true},
             {"stop_type", creq.stopsNaturally ? "eos" : "limit"},
             {"tokens_predicted", produced},
             {"timings",
              {{"prompt_n", creq.promptTokens},
               {"prompt_ms", ms(promptDone - start)},
               {"predicted_n", produced},
               {"predicted_ms", ms(end - promptDone)}}}};
    co_await w.writeChunk(fin.dump() + "\n");
    co_await w.endStream();
  }

  // The slot stays taken and the stream stays open until the process is killed, whatever the
  // client does: a real hang is in the GPU kernel, not in the socket (contract).
  net::awaitable<void> hangForever(bool spin, int produced) {
    if (spin) {
      spdlog::warn("fault hang_after_tokens={} hang_spin=true: generation hung, busy-looping on a core until killed",
                   produced);
      // In its own thread so /health keeps answering, as llama-server's HTTP thread does.
      std::thread([] {
        volatile unsigned long long x = 0;
        for (;;) x = x + 1;
      }).detach();
    } else {
      spdlog::warn("fault hang_after_tokens={} hang_spin=false: generation hung (sleeping) until killed", produced);
    }
    for (;;) co_await forever_.wait();
  }

  [[noreturn]] void crashNow(int produced) {
    spdlog::error("fault runner_crash_after_tokens={}: runner exiting mid-generation (exit status 2)", produced);
    spdlog::default_logger()->flush();
    ::_exit(2);
  }

  net::io_context& io_;
  RunnerOptions opt_;
  Slots slots_;
  Event forever_;
  std::chrono::steady_clock::time_point loadedAt_;
};

// FAKE_OLLAMA_ORPHAN_EXIT_S (test hygiene only; Ollama's runners never do this): when set, an
// orphaned runner (serve died by SIGKILL) exits after that many seconds, so a crashed test
// cannot leave a spinning runner behind on a shared machine. Unset by default: orphans persist,
// which is the behaviour oasisd must handle (ollama-behaviour.md §4 "kill -9 of serve").
net::awaitable<void> orphanWatchdog(pid_t parent, int seconds) {
  std::optional<std::chrono::steady_clock::time_point> orphanedAt;
  for (;;) {
    co_await sleepFor(std::chrono::milliseconds(500));
    if (getppid() == parent) continue;
    if (!orphanedAt) {
      orphanedAt = std::chrono::steady_clock::now();
      spdlog::warn("runner orphaned (serve pid {} is gone); will exit in {} s (FAKE_OLLAMA_ORPHAN_EXIT_S)", parent,
                   seconds);
    }
    if (std::chrono::steady_clock::now() - *orphanedAt >= std::chrono::seconds(seconds)) {
      spdlog::warn("orphaned runner exiting");
      spdlog::default_logger()->flush();
      ::_exit(3);
    }
  }
}

}  // namespace

int runnerMain(int argc, char** argv) {
  setupLogging("runner");
  RunnerOptions opt;
  bool haveFa = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        spdlog::error("missing value for {}", a);
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--model") opt.model = next();
      else if (a == "--port") opt.port = std::stoi(next());
      else if (a == "--flash-attn") {
        auto v = next();
        if (v != "on" && v != "off") {
          spdlog::error("--flash-attn must be on or off, got {}", v);
          return 2;
        }
        opt.flashAttention = v == "on";
        haveFa = true;
      } else if (a == "--load-ms") opt.loadMs = std::stoi(next());
      else if (a == "--parallel") opt.parallel = std::max(1, std::stoi(next()));
      else if (a == "--load-fail") opt.loadFail = true;
      else {
        spdlog::error("unknown runner argument {}", a);
        return 2;
      }
    } catch (const std::exception&) {
      spdlog::error("bad value for {}", a);
      return 2;
    }
  }
  if (opt.model.empty() || opt.port <= 0 || opt.port > 65535 || !haveFa) {
    spdlog::error("usage: fake-ollama runner --model <name> --port <n> --flash-attn on|off");
    return 2;
  }

  net::io_context io;
  Runner runner(io, opt);
  oasis::http::ServerOptions sopt;
  sopt.serverName = "llama-server";
  sopt.idleTimeout = std::chrono::hours(24);
  oasis::http::HttpServer server(
      io.get_executor(), [&runner](ServerRequest& req, ResponseWriter& w) { return runner.handle(req, w); }, sopt);
  auto st = server.listen(oasis::http::Endpoint::tcp("127.0.0.1", static_cast<uint16_t>(opt.port)));
  if (!st) {
    spdlog::error("runner for {} cannot listen on 127.0.0.1:{}: {}", opt.model, opt.port, st.error().message);
    return 1;
  }
  server.start();
  spdlog::info("runner for {} listening on 127.0.0.1:{} (flash attention {}, {} slot(s), load {} ms)", opt.model,
               opt.port, opt.flashAttention ? "on" : "off", opt.parallel, opt.loadMs);

  net::steady_timer failTimer(io);
  if (opt.loadFail) {
    // Like a llama-server that dies while loading: serve sees the process exit during its
    // /health polling and reports "llama-server process has terminated".
    failTimer.expires_after(std::chrono::milliseconds(std::max(10, opt.loadMs / 2)));
    failTimer.async_wait([](boost::system::error_code ec) {
      if (ec) return;
      spdlog::error("fault load_fail: error loading model: failed to load model (fake)");
      spdlog::default_logger()->flush();
      ::_exit(1);
    });
  }
  if (const char* orphan = std::getenv("FAKE_OLLAMA_ORPHAN_EXIT_S"); orphan && std::atoi(orphan) > 0)
    net::co_spawn(io, orphanWatchdog(getppid(), std::atoi(orphan)), net::detached);

  io.run();
  return 0;
}

}  // namespace fake_ollama
