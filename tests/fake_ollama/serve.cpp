// `fake-ollama serve`: the API server (routes of ollama-behaviour.md §1, §5, §6) plus the fault
// switchboard. One thread, one io_context: handlers, the scheduler and signal handling all run
// on it, so nothing here needs a lock.
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "tests/fake_ollama/async_util.h"
#include "tests/fake_ollama/catalog.h"
#include "tests/fake_ollama/faults.h"
#include "tests/fake_ollama/logging.h"
#include "tests/fake_ollama/requests.h"
#include "tests/fake_ollama/runner_protocol.h"
#include "tests/fake_ollama/scheduler.h"
#include "tests/fake_ollama/settings.h"
#include "tests/fake_ollama/subcommands.h"
#include "tests/fake_ollama/timefmt.h"

namespace fake_ollama {

namespace {

using ojson = nlohmann::ordered_json;
using oasis::http::ResponseWriter;
using oasis::http::ServerRequest;

constexpr const char* kJson = "application/json; charset=utf-8";
constexpr const char* kNdjson = "application/x-ndjson";
constexpr const char* kRunnerStopped =
    "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, check "
    "ollama server logs for details";

std::string errorJson(const std::string& msg) { return ojson{{"error", msg}}.dump(); }

int64_t nanos(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

int64_t parameterCount(const std::string& size) {
  // "8.0B" -> 8000000000, "60M" -> 60000000
  if (size.empty()) return 0;
  double v = std::atof(size.c_str());
  switch (size.back()) {
    case 'B': return static_cast<int64_t>(v * 1e9);
    case 'M': return static_cast<int64_t>(v * 1e6);
    case 'K': return static_cast<int64_t>(v * 1e3);
    default: return static_cast<int64_t>(v);
  }
}

ojson detailsJson(const ModelSpec& m) {
  return ojson{{"parent_model", ""},
               {"format", m.format},
               {"family", m.family},
               {"families", ojson::array({m.family})},
               {"parameter_size", m.parameterSize},
               {"quantization_level", m.quantizationLevel}};
}

class ServeApp {
 public:
  ServeApp(net::io_context& io, ServeSettings settings, Catalog catalog)
      : io_(io),
        settings_(std::move(settings)),
        catalog_(std::move(catalog)),
        faultsChanged_(io.get_executor()),
        sched_(std::make_shared<Scheduler>(io.get_executor(), settings_, faults_)),
        server_(io.get_executor(), [this](ServerRequest& req, ResponseWriter& w) { return handle(req, w); },
                serverOptions()),
        stopSignals_(io, SIGTERM, SIGINT),
        childSignals_(io, SIGCHLD) {}

  oasis::Status applyInitialFaults() {
    if (settings_.initialFaults.empty()) return {};
    std::string text = settings_.initialFaults;
    if (!text.empty() && text.find_first_not_of(" \t\r\n") != std::string::npos &&
        text[text.find_first_not_of(" \t\r\n")] != '{') {
      std::ifstream in(text);  // a path
      if (!in) return oasis::Error("FAKE_OLLAMA_FAULTS: cannot read " + text);
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) return oasis::Error("FAKE_OLLAMA_FAULTS: invalid JSON");
    auto exitCode = faults_.merge(j);
    if (!exitCode) return oasis::Error("FAKE_OLLAMA_FAULTS: " + exitCode.error().message);
    spdlog::warn("fault switchboard initialised from FAKE_OLLAMA_FAULTS: {}", faults_.toJson().dump());
    if (*exitCode) serveExit(**exitCode);
    return {};
  }

  int run() {
    auto st = server_.listen(settings_.listen);
    if (!st) {
      // As `ollama serve`: "Error: listen tcp 127.0.0.1:11434: bind: address already in use", exit 1.
      std::fprintf(stderr, "Error: listen tcp %s:%u: %s\n", settings_.listen.host.c_str(), settings_.listen.port,
                   st.error().message.c_str());
      return 1;
    }
    server_.start();
    spdlog::info("server config env=\"map[OLLAMA_FLASH_ATTENTION:{} OLLAMA_HOST:{} OLLAMA_KEEP_ALIVE:{} "
                 "OLLAMA_NUM_PARALLEL:{}]\" flash_attention={}",
                 settings_.flashAttentionRaw, settings_.listen.toString(),
                 oasis::ollama::formatGoDuration(settings_.keepAlive), settings_.numParallel,
                 settings_.flashAttention ? "on" : "off");
    spdlog::info("Listening on {}:{} (version {})", settings_.listen.host, server_.boundPort(), kVersion);
    waitStop();
    waitChild();
    io_.run();
    return 0;
  }

 private:
  static oasis::http::ServerOptions serverOptions() {
    oasis::http::ServerOptions o;
    o.serverName = "fake-ollama";  // (Go's net/http sends no Server header; harmless)
    // Ollama's http.Server{} has no timeouts (ollama-behaviour.md §3): a hung request stays
    // open for as long as its client keeps the connection.
    o.idleTimeout = std::chrono::hours(24);
    o.readTimeout = std::chrono::minutes(10);
    return o;
  }

  void waitStop() {
    stopSignals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      // SIGINT/SIGTERM: close the listener and connections, kill every runner, exit 0
      // (ollama-behaviour.md §4 "On ollama serve shutdown").
      spdlog::info("received {}, shutting down: stopping runners", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      server_.stop();
      sched_->killAll();
      spdlog::info("shutdown complete");
      spdlog::default_logger()->flush();
      ::_exit(0);
    });
  }

  void waitChild() {
    childSignals_.async_wait([this](boost::system::error_code ec, int) {
      if (ec) return;
      sched_->onChildSignal();
      waitChild();
    });
  }

  [[noreturn]] void serveExit(int code) {
    auto pids = sched_->runnerPids();
    std::string list;
    for (auto p : pids) list += (list.empty() ? "" : ",") + std::to_string(p);
    spdlog::warn("fault serve_exit={}: serve exits now; runners left orphaned: [{}]", code, list);
    spdlog::default_logger()->flush();
    ::_exit(code);
  }

  net::awaitable<void> handle(ServerRequest& req, ResponseWriter& w) {
    const auto& p = req.path;
    const auto& m = req.method;
    // (No initializer lists here: GCC 12 cannot keep their arrays in a coroutine frame.)
    const bool isGet = m == "GET" || m == "HEAD";
    const bool isPost = m == "POST";
    // gin with HandleMethodNotAllowed: a known path with the wrong method is a text 405.
    auto notAllowed = [&]() { return w.send(405, "405 method not allowed", "text/plain"); };
    if (p == "/") {
      if (!isGet) co_return co_await notAllowed();
      co_await w.send(200, "Ollama is running", "text/plain; charset=utf-8");
    } else if (p == "/api/version") {
      if (!isGet) co_return co_await notAllowed();
      std::string body = ojson{{"version", kVersion}}.dump();
      co_await w.send(200, std::move(body), kJson);
    } else if (p == "/api/tags") {
      if (!isGet) co_return co_await notAllowed();
      co_await tags(w);
    } else if (p == "/api/show") {
      if (!isPost) co_return co_await notAllowed();
      co_await show(req, w);
    } else if (p == "/api/ps") {
      if (m != "GET") co_return co_await notAllowed();
      co_await ps(w);
    } else if (p == "/api/generate" || p == "/api/chat") {
      if (!isPost) co_return co_await notAllowed();
      co_await inference(req, w, p == "/api/chat");
    } else if (p == "/_fake/faults") {
      if (!(m == "GET" || isPost)) co_return co_await notAllowed();
      co_await faultsRoute(req, w);
    } else if (p == "/_fake/reset") {
      if (!isPost) co_return co_await notAllowed();
      faults_.reset();
      faultsChanged_.pulse();
      spdlog::warn("fault switchboard reset: no faults active");
      co_await w.send(200, faults_.toJson().dump(), kJson);
    } else {
      co_await w.send(404, "404 page not found", "text/plain");
    }
  }

  net::awaitable<void> tags(ResponseWriter& w) {
    std::vector<const ModelSpec*> models;
    for (const auto& mod : catalog_.models()) models.push_back(&mod);
    std::stable_sort(models.begin(), models.end(),
                     [](const ModelSpec* a, const ModelSpec* b) { return a->modifiedAt > b->modifiedAt; });
    ojson list = ojson::array();
    for (const auto* mod : models) {
      list.push_back(ojson{{"name", mod->name},
                           {"model", mod->name},
                           {"modified_at", goTimeLocal(toMicro(mod->modifiedAt))},
                           {"size", mod->size},
                           {"digest", mod->digest},
                           {"details", detailsJson(*mod)}});
    }
    ojson out;
    out["models"] = std::move(list);
    co_await w.send(200, out.dump(), kJson);
  }

  net::awaitable<void> show(ServerRequest& req, ResponseWriter& w) {
    auto r = decodeShow(req.body);
    if (!r) co_return co_await w.send(r.error().code, errorJson(r.error().message), kJson);
    const ModelSpec* mod = catalog_.find(r->model);
    if (!mod) co_return co_await w.send(404, errorJson("model '" + r->model + "' not found"), kJson);
    ojson info;
    info["general.architecture"] = mod->family;
    info["general.parameter_count"] = parameterCount(mod->parameterSize);
    info["general.quantization_version"] = 2;
    info[mod->family + ".context_length"] = mod->contextLength;
    info[mod->family + ".embedding_length"] = 2560;
    ojson out;
    out["modelfile"] = "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM "
                       "with:\n# FROM " +
                       mod->name + "\n\nFROM /usr/share/ollama/.ollama/models/blobs/sha256-" + mod->digest +
                       "\nTEMPLATE {{ .Prompt }}\n";
    out["parameters"] = "stop                           \"<end_of_turn>\"";
    out["template"] = "{{ .Prompt }}";
    out["details"] = detailsJson(*mod);
    out["model_info"] = info;
    out["capabilities"] = ojson::array({"completion"});
    out["modified_at"] = goTimeLocal(toMicro(mod->modifiedAt));
    co_await w.send(200, out.dump(), kJson);
  }

  net::awaitable<void> ps(ResponseWriter& w) {
    if (faults_.psHang()) {
      // A wedged scheduler: PsHandler blocks on loadedMu (ollama-behaviour.md §1 "Locking").
      // HEAD / takes no locks and keeps answering.
      spdlog::warn("fault ps_hang: /api/ps request blocked until the fault is cleared or the client goes away");
      OnClientClose guard(io_.get_executor(), w, [this] { faultsChanged_.pulse(); });
      while (faults_.psHang() && !guard.fired()) co_await faultsChanged_.wait();
      if (guard.fired()) co_return;
    }
    co_await w.send(200, sched_->psJson().dump(), kJson);
  }

  net::awaitable<void> faultsRoute(ServerRequest& req, ResponseWriter& w) {
    if (req.method == "GET") co_return co_await w.send(200, faults_.toJson().dump(), kJson);
    auto patch = nlohmann::json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
    if (patch.is_discarded()) co_return co_await w.send(400, errorJson("invalid JSON"), kJson);
    auto exitCode = faults_.merge(patch);
    if (!exitCode) co_return co_await w.send(400, errorJson(exitCode.error().message), kJson);
    spdlog::warn("fault switchboard set {} -> active faults {}", patch.dump(), faults_.toJson().dump());
    faultsChanged_.pulse();
    if (*exitCode) {
      co_await w.send(200, faults_.toJson().dump(), kJson);
      serveExit(**exitCode);
    }
    co_await w.send(200, faults_.toJson().dump(), kJson);
  }

  // /api/generate and /api/chat.
  net::awaitable<void> inference(ServerRequest& req, ResponseWriter& w, bool chat) {
    const auto checkpointStart = std::chrono::steady_clock::now();
    auto decoded = decodeInference(req.body, chat);
    if (!decoded) co_return co_await w.send(decoded.error().code, errorJson(decoded.error().message), kJson);
    InferenceRequest& r = *decoded;
    if (r.model.empty() && chat) co_return co_await w.send(400, errorJson("model is required"), kJson);
    const ModelSpec* spec = catalog_.find(r.model);
    if (!spec) co_return co_await w.send(404, errorJson("model '" + r.model + "' not found"), kJson);

    auto base = [&](ojson& j) {
      j["model"] = r.model;
      j["created_at"] = goTimeUtc(microNow());
    };
    auto emptyMessage = [] { return ojson{{"role", "assistant"}, {"content", ""}}; };

    // Unload request: empty prompt/messages and keep_alive 0. Answered at once, 200 even if
    // nothing is loaded; the unload itself waits for the runner's refCount.
    if (r.isEmpty() && r.keepAlive && r.keepAlive->count() == 0) {
      spdlog::info("unload request for {} (keep_alive:0)", spec->name);
      sched_->expire(spec->name);
      ojson j;
      base(j);
      if (chat) j["message"] = emptyMessage(); else j["response"] = "";
      j["done"] = true;
      j["done_reason"] = "unload";
      co_return co_await w.send(200, j.dump(), kJson);
    }

    auto ref = co_await sched_->acquire(*spec, r.keepAlive);
    if (!ref) co_return co_await w.send(ref.error().code ? ref.error().code : 500, errorJson(ref.error().message), kJson);
    const auto checkpointLoaded = std::chrono::steady_clock::now();

    // Preload: schedule the model, answer done_reason "load" with no metrics.
    if (r.isEmpty()) {
      ojson j;
      base(j);
      if (chat) j["message"] = emptyMessage(); else j["response"] = "";
      j["done"] = true;
      j["done_reason"] = "load";
      co_return co_await w.send(200, j.dump(), kJson);
    }
    if (w.clientGone()) co_return;  // our reference is dropped on return

    CompletionRequest creq;
    creq.promptTokens = r.promptTokens();
    creq.tokensPerSecond = spec->tokensPerSecond;
    creq.numPredict = spec->numPredict;
    creq.stopsNaturally = true;
    if (r.numPredict && *r.numPredict >= 0 && *r.numPredict < spec->numPredict) {
      creq.numPredict = static_cast<int>(*r.numPredict);
      creq.stopsNaturally = false;  // cut off by num_predict: done_reason "length"
    }
    creq.faults = faults_.takeForGeneration();
    if (creq.faults.hangAfterTokens >= 0)
      spdlog::warn("fault hang_after_tokens={} hang_spin={}: this generation on {} (runner pid {}) will hang",
                   creq.faults.hangAfterTokens, creq.faults.hangSpin, spec->name, (*ref)->child->pid);
    if (creq.faults.crashAfterTokens >= 0)
      spdlog::warn("fault runner_crash_after_tokens={}: the runner of {} (pid {}) will exit mid-generation",
                   creq.faults.crashAfterTokens, spec->name, (*ref)->child->pid);

    oasis::http::Request runnerReq;
    runnerReq.method = "POST";
    runnerReq.target = "/completion";
    runnerReq.body = creq.toJson().dump();
    oasis::http::StreamOptions sopt;
    sopt.headTimeout = std::chrono::seconds(30);
    auto opened = co_await oasis::http::openLineStream(io_.get_executor(), (*ref)->endpoint(), runnerReq, sopt);
    if (!opened || (*opened)->head().status != 200) {
      spdlog::error("completion request to runner of {} failed: {}", spec->name,
                    opened ? "status " + std::to_string((*opened)->head().status) : opened.error().message);
      co_return co_await w.send(500, errorJson(kRunnerStopped), kJson);
    }
    std::unique_ptr<oasis::http::LineStream> stream = std::move(*opened);
    // The client going away must end this handler even while the runner sends nothing.
    auto* rawStream = stream.get();
    OnClientClose guard(io_.get_executor(), w, [rawStream] { rawStream->close(); });

    std::string full;
    int evalCount = 0;
    bool streamStarted = false;
    for (;;) {
      auto line = co_await stream->nextLine(std::chrono::milliseconds(0));
      if (guard.fired() || w.clientGone()) {
        spdlog::info("client closed the connection during a {} request on {}; releasing its runner reference",
                     chat ? "chat" : "generate", spec->name);
        co_return;
      }
      nlohmann::json msg;
      if (line && *line) msg = nlohmann::json::parse(**line, nullptr, false);
      if (!line || !*line || !msg.is_object()) {
        // The runner went away mid-request (crash or kill). Ollama: a final {"error"} line on
        // the 200 stream if something was written, else a 500 (ollama-behaviour.md §5).
        spdlog::error("runner of {} stopped during a request after {} tokens", spec->name, evalCount);
        guard.stop();
        if (streamStarted) {
          co_await w.writeChunk(errorJson(kRunnerStopped) + "\n");
          co_await w.endStream();
        } else {
          co_await w.send(500, errorJson(kRunnerStopped), kJson);
        }
        co_return;
      }
      if (!msg.value("stop", false)) {
        std::string tok = msg.value("content", "");
        ++evalCount;
        if (!r.stream) {
          full += tok;
          continue;
        }
        ojson j;
        base(j);
        if (chat) j["message"] = ojson{{"role", "assistant"}, {"content", tok}}; else j["response"] = tok;
        j["done"] = false;
        if (!streamStarted) {
          streamStarted = true;
          if (!co_await w.beginStream(200, kNdjson)) co_return;
        }
        if (!co_await w.writeChunk(j.dump() + "\n")) co_return;
        continue;
      }
      // Final chunk: metrics in nanoseconds; load_duration from handler entry to the runner.
      guard.stop();
      const auto& t = msg.contains("timings") ? msg["timings"] : nlohmann::json::object();
      auto msToNs = [](double ms) { return static_cast<int64_t>(std::llround(ms * 1e6)); };
      ojson j;
      base(j);
      if (chat) j["message"] = ojson{{"role", "assistant"}, {"content", r.stream ? "" : full}};
      else j["response"] = r.stream ? "" : full;
      j["done"] = true;
      j["done_reason"] = msg.value("stop_type", "eos") == "limit" ? "length" : "stop";
      if (!chat) {
        ojson context = ojson::array();
        int total = creq.promptTokens + evalCount;
        for (int i = 0; i < total; ++i) context.push_back(105 + (i * 7919) % 256000);
        j["context"] = context;
      }
      j["total_duration"] = nanos(std::chrono::steady_clock::now() - checkpointStart);
      j["load_duration"] = nanos(checkpointLoaded - checkpointStart);
      j["prompt_eval_count"] = t.value("prompt_n", creq.promptTokens);
      j["prompt_eval_duration"] = msToNs(t.value("prompt_ms", 0.0));
      j["eval_count"] = t.value("predicted_n", evalCount);
      j["eval_duration"] = msToNs(t.value("predicted_ms", 0.0));
      if (r.stream) {
        if (!streamStarted) {
          streamStarted = true;
          if (!co_await w.beginStream(200, kNdjson)) co_return;
        }
        co_await w.writeChunk(j.dump() + "\n");
        co_await w.endStream();
      } else {
        co_await w.send(200, j.dump(), kJson);
      }
      co_return;
    }
  }

  net::io_context& io_;
  ServeSettings settings_;
  Catalog catalog_;
  Faults faults_;
  Event faultsChanged_;
  std::shared_ptr<Scheduler> sched_;
  oasis::http::HttpServer server_;
  net::signal_set stopSignals_;
  net::signal_set childSignals_;
};

}  // namespace

int serveMain(int, char**) {
  setupLogging("serve");
  auto settings = settingsFromEnvironment();
  if (!settings) {
    spdlog::error("{}", settings.error().message);
    return 1;
  }
  Catalog catalog = Catalog::defaults();
  if (!settings->catalogPath.empty()) {
    auto c = Catalog::fromJsonFile(settings->catalogPath);
    if (!c) {
      spdlog::error("FAKE_OLLAMA_MODELS: {}", c.error().message);
      return 1;
    }
    catalog = std::move(*c);
  }
  // A client that vanishes mid-write must not kill us.
  ::signal(SIGPIPE, SIG_IGN);
  net::io_context io;
  auto app = std::make_unique<ServeApp>(io, std::move(*settings), std::move(catalog));
  if (auto st = app->applyInitialFaults(); !st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  return app->run();
}

}  // namespace fake_ollama
