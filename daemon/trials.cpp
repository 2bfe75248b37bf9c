#include "daemon/api_replies.h"
#include "daemon/trials.h"

#include "daemon/api_bodies.h"
#include "daemon/ollama_wire.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <deque>
#include <spdlog/spdlog.h>

namespace oasis {

namespace net = boost::asio;
using boost::system::error_code;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Ollama's own error shape, for the compatible surface.
net::awaitable<void> sendOllamaError(http::ResponseWriter& w, int status, std::string message) {
  json j;
  j["error"] = message;
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  co_await w.send(status, std::move(text), "application/json; charset=utf-8", {});
}

bool retryableStatus(int status) { return status >= 500 || status == 429 || status == 408; }

}  // namespace

TrialService::TrialService(net::io_context& ioc, Store& store, const Config& config, Clock& clock,
                           http::Endpoint ollama, Hooks hooks, int maxConcurrency)
    : ioc_(ioc),
      store_(store),
      config_(config),
      clock_(clock),
      ollama_(std::move(ollama)),
      hooks_(std::move(hooks)),
      maxConcurrency_(maxConcurrency),
      upstreamPool_(static_cast<std::size_t>(std::max(8, maxConcurrency))),
      retryTimer_(ioc),
      repairTimer_(ioc) {}

bool TrialService::handles(const std::string& path) const {
  return path == "/v1/trials" || path.rfind("/v1/trials/", 0) == 0;
}

std::chrono::milliseconds TrialService::retryDelay(int attemptsUsed) const {
  double d = config_.retry.initialBackoffS * std::pow(2.0, std::max(0, attemptsUsed - 1));
  return ms(std::min(d, config_.retry.maxBackoffS));
}

void TrialService::kick() {
  if (dispatchPosted_ || stopped_) return;
  dispatchPosted_ = true;
  net::post(ioc_, [this] {
    dispatchPosted_ = false;
    dispatch();
  });
}

void TrialService::dispatch() {
  if (stopped_) return;
  std::optional<Database::Transaction> tx;  // opened by the first start: most kicks start nothing
  std::vector<Started> started;
  try {
    started = startRunnable(tx);
    if (tx) tx->commit();
  } catch (const std::exception& e) {
    spdlog::error("dispatch: {}", e.what());
    abandon(started);
    return;
  }
  spawn(std::move(started));
}

bool TrialService::mayStartNow(const std::string& model) {
  return !stopped_ && static_cast<int>(inflight_.size()) < maxConcurrency_ && hooks_.dispatchAllowed("") &&
         hooks_.dispatchAllowed(model);
}

TrialService::Started TrialService::track(TrialRow trial, std::int64_t attemptId) {
  InFlight f;
  f.trialId = trial.id;
  f.attemptId = attemptId;
  f.model = trial.model;
  inflight_[attemptId] = f;
  return {std::move(trial), attemptId};
}

std::vector<TrialService::Started> TrialService::startRunnable(std::optional<Database::Transaction>& tx) {
  std::vector<Started> started;
  if (stopped_) return started;
  int free = maxConcurrency_ - static_cast<int>(inflight_.size());
  if (free <= 0) return started;
  if (!hooks_.dispatchAllowed("")) return started;
  // Every attempt's end kicks a dispatch: with nothing queued (the counts are exact), there is
  // nothing to look up.
  if (store_.queuedCount() == 0) return started;
  // Models paused for recovery, and trials in retry backoff, are skipped.
  std::vector<std::string> excluded;
  auto now = clock_.steadyNow();
  std::optional<SteadyTime> nextRetry;
  auto candidates = store_.nextQueued(free + static_cast<int>(notBefore_.size()) + 8, excluded);
  for (auto& t : candidates) {
    if (free <= 0) break;
    if (!hooks_.dispatchAllowed(t.model)) continue;
    if (auto nb = notBefore_.find(t.id); nb != notBefore_.end()) {
      if (nb->second > now) {
        if (!nextRetry || nb->second < *nextRetry) nextRetry = nb->second;
        continue;
      }
      notBefore_.erase(nb);
    }
    // Every start of this round commits once, together (and with the caller's insert, when a
    // submit starts its own trial): one WAL append instead of one per start.
    if (!tx) tx.emplace(store_.db());
    std::int64_t attemptId;
    try {
      attemptId = store_.startAttempt(t.id, clock_.wallNow());  // its own savepoint
    } catch (const std::exception& e) {
      spdlog::error("cannot start attempt for trial {}: {}", t.id, e.what());
      continue;
    }
    --free;
    started.push_back(track(std::move(t), attemptId));
  }
  if (nextRetry) {
    retryTimer_.expires_at(net::steady_timer::clock_type::now() +
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(*nextRetry - now));
    retryTimer_.async_wait([this](error_code ec) {
      if (!ec) kick();
    });
  }
  return started;
}

void TrialService::abandon(const std::vector<Started>& started) {
  // Their starts were rolled back with the transaction: the trials are still queued.
  for (auto& s : started) inflight_.erase(s.attemptId);
  if (!started.empty()) store_.forgetCounts();
}

void TrialService::spawn(std::vector<Started> started) {
  for (auto& s : started) {
    net::co_spawn(ioc_, runAttempt(std::move(s.trial), s.attemptId), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("attempt failed unexpectedly: {}", ex.what());
      }
    });
  }
}

void TrialService::interruptModel(const std::string& model, const std::string& outcome, const std::string& why) {
  for (auto& [id, f] : inflight_) {
    if (!model.empty() && f.model != model) continue;
    if (!f.interruptOutcome.empty()) continue;
    f.interruptOutcome = outcome;
    f.interruptWhy = why;
    if (f.stream) f.stream->close();
  }
}

void TrialService::scheduleRepair() {
  if (repairPending_ || stopped_) return;
  repairPending_ = true;
  repairTimer_.expires_after(std::chrono::seconds(1));
  repairTimer_.async_wait([this](error_code ec) {
    repairPending_ = false;
    if (ec || stopped_) return;
    std::vector<std::int64_t> live;
    for (auto& [id, f] : inflight_) live.push_back(id);
    try {
      int n = store_.requeueOrphanedAttempts(clock_.wallNow(), live);
      if (n > 0) spdlog::warn("store writable again: {} unrecorded attempt(s) marked interrupted, trials requeued", n);
      kick();
    } catch (const std::exception&) {
      scheduleRepair();  // still not writable
    }
  });
}

void TrialService::stop() {
  stopped_ = true;
  retryTimer_.cancel();
  interruptModel("", "interrupted", "oasisd is shutting down");
}

void TrialService::finished(std::int64_t trialId) {
  auto range = waiters_.equal_range(trialId);
  for (auto it = range.first; it != range.second; ++it) it->second->cancel();
  waiters_.erase(range.first, range.second);
}

net::awaitable<std::optional<TrialRow>> TrialService::waitForEnd(std::int64_t id, std::chrono::milliseconds timeout,
                                                                  const http::ResponseWriter& client) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // The state alone while waiting; the whole row (JSON columns parsed) once, at the end.
    auto state = store_.trialState(id);
    if (state.empty()) co_return std::nullopt;
    if (state == "succeeded" || state == "failed" || state == "cancelled") co_return store_.trial(id);
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= 0s) co_return store_.trial(id);
    // A client that went away is no longer waiting: without this check its connection (one of
    // max_connections) and this coroutine stayed for up to ?wait=3600 s after it left, so
    // clients that give up (Ctrl-C on `oasisctl submit --wait`) could use up every slot.
    if (client.clientGone()) co_return store_.trial(id);
    auto timer = std::make_shared<net::steady_timer>(ioc_);
    timer->expires_after(std::min<std::chrono::steady_clock::duration>(left, 250ms));
    waiters_.emplace(id, timer);
    error_code ec;
    co_await timer->async_wait(net::redirect_error(net::use_awaitable, ec));
    // Woken by the poll interval rather than by finished(): drop our entry ourselves.
    auto range = waiters_.equal_range(id);
    for (auto it = range.first; it != range.second; ++it)
      if (it->second == timer) {
        waiters_.erase(it);
        break;
      }
  }
}

net::awaitable<void> TrialService::runAttempt(TrialRow trial, std::int64_t attemptId) {
  const auto started = clock_.steadyNow();
  const auto startedWall = clock_.wallNow();
  json body = trial.request;
  body["model"] = trial.model;
  body["stream"] = true;  // always: token-level liveness needs the stream
  http::Request req;
  req.method = "POST";
  req.target = trial.kind == "chat" ? "/api/chat" : "/api/generate";
  req.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  const auto total = ms(config_.requestTimeoutS);
  const auto firstTokenLimit = std::min(ms(config_.firstTokenTimeoutS), total);
  const auto stallLimit = ms(config_.stallTimeoutS);

  http::StreamOptions opt;
  opt.connectTimeout = std::min(std::chrono::milliseconds(5000), firstTokenLimit);
  // Ollama writes headers with the first chunk: the head arriving is the first token.
  opt.headTimeout = firstTokenLimit;
  // One NDJSON line is one token, or the final stats (with `context`, a few hundred KB at
  // most): a line past 10 MiB is a broken server, and reading on would only grow memory.
  opt.maxLineBytes = 10u << 20;
  opt.pool = &upstreamPool_;

  std::string outcome = "ok", error;
  bool retryable = true;
  std::optional<double> firstTokenMs;
  StreamAssembler assembled(trial.kind == "chat");
  int status = 0;

  auto elapsed = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steadyNow() - started); };
  auto opened = co_await http::openLineStream(ioc_.get_executor(), ollama_, req, opt);
  std::unique_ptr<http::LineStream> stream;
  if (!opened) {
    outcome = opened.error().code == ETIMEDOUT ? "timeout" : "connection_error";
    error = opened.error().code == ETIMEDOUT ? "no response within first_token_timeout_s (" +
                                                   std::to_string(config_.firstTokenTimeoutS) + " s)"
                                             : opened.error().message;
  } else {
    stream = std::move(*opened);
    if (auto it = inflight_.find(attemptId); it != inflight_.end()) {
      it->second.stream = stream.get();
      // Interrupted (shutdown, cancel, kill, recovery) while the request was still waiting for
      // its head: there was no stream to close then, so close it now, before any token is read.
      // Otherwise the attempt would run to the end as if nothing had been asked of it.
      if (!it->second.interruptOutcome.empty()) stream->close();
    }
    status = stream->head().status;
    if (status != 200) {
      // Ollama's error body is one JSON object.
      std::string bodyText;
      for (int i = 0; i < 64; ++i) {
        auto line = co_await stream->nextLine(5s);
        if (!line || !*line) break;
        bodyText += **line;
      }
      auto j = json::parse(bodyText, nullptr, false);
      error = j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>()
                                                                              : "HTTP " + std::to_string(status);
      outcome = "http_error";
      retryable = retryableStatus(status);
    } else {
      bool first = true;
      for (;;) {
        auto used = elapsed();
        if (used >= total) {
          outcome = "timeout";
          error = "no final response within request_timeout_s (" + std::to_string(config_.requestTimeoutS) + " s)";
          break;
        }
        auto wait = std::min(first ? firstTokenLimit - used : stallLimit, total - used);
        if (wait.count() <= 0) wait = std::chrono::milliseconds(1);
        auto line = co_await stream->nextLine(wait);
        if (!line) {
          if (line.error().code == ETIMEDOUT) {
            if (elapsed() >= total) {
              outcome = "timeout";
              error = "no final response within request_timeout_s (" + std::to_string(config_.requestTimeoutS) + " s)";
            } else if (first) {
              outcome = "timeout";
              error = "no token within first_token_timeout_s (" + std::to_string(config_.firstTokenTimeoutS) + " s)";
            } else {
              outcome = "stalled";
              error = "no token for stall_timeout_s (" + std::to_string(config_.stallTimeoutS) + " s)";
            }
          } else {
            outcome = "connection_error";
            error = line.error().message;
          }
          break;
        }
        if (!line->has_value()) {
          outcome = "connection_error";
          error = "stream ended before the final chunk";
          break;
        }
        auto step = assembled.feed(**line);  // daemon/ollama_wire.h: never throws
        if (step == StreamAssembler::Step::Skip) continue;
        if (step == StreamAssembler::Step::Failed) {
          outcome = "http_error";
          error = assembled.error();
          break;
        }
        if (first) {
          firstTokenMs = std::chrono::duration<double, std::milli>(clock_.steadyNow() - started).count();
          first = false;
        }
        if (auto sink = chunkSinks_.find(trial.id); sink != chunkSinks_.end()) sink->second(**line);  // Ollama's bytes, as sent
        auto now = clock_.steadyNow();
        if (hooks_.onProgress) {
          auto& last = lastProgress_[trial.model];
          if (now - last >= 500ms) {
            last = now;
            hooks_.onProgress(trial.model);
          }
        }
        if (step == StreamAssembler::Step::Done) break;
      }
    }
    // A whole response keeps its connection for finish() below; anything else closes it now.
    if (outcome != "ok") stream->close();
  }

  InFlight f;
  if (auto it = inflight_.find(attemptId); it != inflight_.end()) {
    f = it->second;
    inflight_.erase(it);
  }
  bool counted = true;
  if (!f.interruptOutcome.empty() && outcome != "ok") {
    // oasisd cut this attempt short (kill, restart, recovery, shutdown): not the trial's fault.
    outcome = f.interruptOutcome;
    error = f.interruptWhy;
    counted = false;
    retryable = true;
  }

  AttemptRow row;
  row.id = attemptId;
  row.trialId = trial.id;
  row.startedAt = startedWall;
  row.endedAt = clock_.wallNow();
  row.outcome = outcome;
  row.error = error;
  row.latencyMs = std::chrono::duration<double, std::milli>(clock_.steadyNow() - started).count();
  row.firstTokenMs = firstTokenMs;
  row.countsAgainstBudget = counted;
  row.loadDurationMs = assembled.loadDurationMs();
  row.evalCount = assembled.evalCount();
  row.evalDurationMs = assembled.evalDurationMs();

  auto sinkIt = chunkSinks_.find(trial.id);
  bool streamedToClient = sinkIt != chunkSinks_.end() && firstTokenMs.has_value();
  bool retried = false;
  try {
    // The attempt's outcome and the trial's next state commit together: a crash between the
    // two would leave an `ok` attempt on a trial still `running`, which the restart would run
    // again (a duplicate success).
    Database::Transaction tx(store_.db());
    store_.finishAttempt(row);
    bool stillOurs = store_.trialState(trial.id) == "running";
    if (!stillOurs) {
      // Cancelled meanwhile: the trial already ended in the store.
    } else if (outcome == "ok") {
      json response = assembled.response();
      store_.markTrialSucceeded(trial.id, clock_.wallNow(), response, counted);
    } else if (!retryable || (streamedToClient && counted)) {
      // 400/404 won't get better with a retry; a client stream that already received tokens
      // ended with Ollama's error line and cannot be replayed.
      store_.markTrialFailed(trial.id, clock_.wallNow(), error, counted);
      if (status >= 400 && chunkSinks_.count(trial.id) + compatWaiting_.count(trial.id)) failStatus_[trial.id] = status;
    } else if (counted && trial.attemptsUsed + 1 >= trial.maxAttempts) {
      store_.markTrialFailed(trial.id, clock_.wallNow(), error, counted);
    } else {
      store_.markTrialQueued(trial.id, counted);
      retried = true;
      if (counted) notBefore_[trial.id] = clock_.steadyNow() + retryDelay(trial.attemptsUsed + 1);
    }
    tx.commit();
  } catch (const std::exception& e) {
    spdlog::error("could not record attempt {} of trial {}: {}; it will be requeued once the store takes writes",
                  attemptId, trial.id, e.what());
    retried = false;
    store_.forgetCounts();  // the rolled-back state changes had already been counted
    scheduleRepair();
  }
  if (outcome != "ok")
    spdlog::warn("trial {} attempt on {}: {} ({}){}", trial.id, trial.model, outcome, error, retried ? ", requeued" : "");
  if (retried && hooks_.onEvent) {
    json d;
    d["trial"] = trial.id;
    d["outcome"] = outcome;
    d["error"] = error;
    d["counted"] = counted;
    hooks_.onEvent("trial_retried", trial.model, d);
  }
  if (hooks_.onAttempt) {
    AttemptReport rep;
    rep.model = trial.model;
    rep.outcome = outcome;
    rep.at = clock_.steadyNow();
    rep.trialId = trial.id;
    rep.retried = retried;
    rep.error = error;
    if (row.evalCount) rep.evalCount = static_cast<std::uint64_t>(*row.evalCount);
    rep.evalDuration = assembled.evalDuration();
    hooks_.onAttempt(rep);
  }
  finished(trial.id);
  kick();
  // After everything above, so no client waits for it: the rest of the body (the chunked
  // terminator, normally read already) and the connection goes back to the pool.
  if (stream) co_await stream->finish(1s);
}

std::vector<TrialService::Started> TrialService::insertAndStart(const std::vector<Store::NewTrial>& news, WallTime now,
                                                                 std::vector<Store::Inserted>& ids) {
  // The insert and the starts it allows commit together: a submit that finds a free slot costs
  // one transaction, not two. Durable before the caller answers, as before.
  std::vector<Started> started;
  try {
    Database::Transaction tx(store_.db());
    if (news.size() == 1 && store_.queuedCount() == 0 && mayStartNow(news[0].model)) {
      // Nothing queued before it and a free slot: the dispatcher would start exactly this trial,
      // so it is written already running, with its first attempt.
      auto r = store_.insertStartedTrial(news[0], now);
      ids = {r.trial};
      if (r.attemptId) {
        TrialRow t;
        t.id = r.trial.id;
        t.run = news[0].run;
        t.key = news[0].key;
        t.model = news[0].model;
        t.kind = news[0].kind;
        t.request = news[0].request;
        t.state = "running";
        t.maxAttempts = news[0].maxAttempts;
        t.submittedAt = now;
        t.specHash = news[0].specHash;
        started.push_back(track(std::move(t), r.attemptId));
      }
    } else {
      ids = store_.insertTrials(news, now);
      std::optional<Database::Transaction> inner;
      started = startRunnable(inner);
      if (inner) inner->commit();
    }
    tx.commit();
  } catch (const Store::KeyConflict&) {
    throw;  // found before anything was written or counted: no recount of the whole table
  } catch (...) {
    abandon(started);
    store_.forgetCounts();  // the insert's count went with the rollback too
    throw;
  }
  return started;
}

// ---------------------------------------------------------------------------- HTTP

net::awaitable<void> TrialService::handle(http::ServerRequest& req, http::ResponseWriter& w) {
  auto now = clock_.wallNow();
  if (req.path == "/v1/trials" || req.path == "/v1/trials/batch") {
    bool batch = req.path == "/v1/trials/batch";
    if (req.method == "GET" && !batch) {
      std::optional<std::string> run, state;
      if (req.query.count("run")) run = req.query.at("run");
      if (req.query.count("state")) {
        state = req.query.at("state");
        static const std::set<std::string> states = {"queued", "running", "succeeded", "failed", "cancelled"};
        if (!states.count(*state)) {
          co_await sendError(w, 400, "invalid_query", "state must be one of queued, running, succeeded, failed, cancelled");
          co_return;
        }
      }
      long long limit = 100, after = 0;
      try {
        if (req.query.count("limit")) limit = std::stoll(req.query.at("limit"));
        if (req.query.count("after")) after = std::stoll(req.query.at("after"));
      } catch (...) {
        limit = -1;
      }
      if (limit < 1 || limit > 10000 || after < 0) {
        co_await sendError(w, 400, "invalid_query", "limit must be 1..10000 and after a non-negative trial id");
        co_return;
      }
      auto rows = store_.listTrials(run, state, after, static_cast<int>(limit));
      json out;
      out["trials"] = json::array();
      for (auto& t : rows) out["trials"].push_back(t.toJson());
      out["next"] = static_cast<long long>(rows.size()) == limit ? json(rows.back().id) : json();
      co_await sendJson(w, 200, out);
      co_return;
    }
    if (req.method != "POST") {
      co_await sendError(w, 405, "method_not_allowed", req.method + " is not allowed on " + req.path);
      co_return;
    }
    auto specs = parseTrialsBody(req.body, batch, config_.maxAttempts);  // daemon/api_bodies.h
    if (!specs) {
      co_await sendError(w, 400, "invalid_body", specs.error().message);
      co_return;
    }
    std::vector<Store::NewTrial> news;
    for (auto& spec : *specs)
      news.push_back({spec.run, spec.model, spec.kind, spec.hash, spec.key, spec.request, spec.maxAttempts});
    std::optional<double> waitS;
    if (req.query.count("wait")) {
      try {
        waitS = std::stod(req.query.at("wait"));
      } catch (...) {
        waitS = -1;
      }
      if (*waitS < 0 || *waitS > 3600) {
        co_await sendError(w, 400, "invalid_query", "wait must be a number of seconds in 0..3600");
        co_return;
      }
    }
    if (store_.queuedCount() + static_cast<std::int64_t>(news.size()) > config_.queueLimit) {
      co_await sendError(w, 429, "queue_full",
                         "the queue holds " + std::to_string(store_.queuedCount()) + " trials (queue_limit " +
                             std::to_string(config_.queueLimit) + ")");
      co_return;
    }
    std::vector<Store::Inserted> ids;
    std::vector<Started> started;
    int failStatus = 0;
    std::string failCode, failMessage;
    try {
      started = insertAndStart(news, now, ids);
    } catch (const Store::KeyConflict& e) {
      failStatus = 409;
      failCode = "key_conflict";
      failMessage = e.what();
    } catch (const SqliteError& e) {
      failStatus = 503;
      failCode = "storage_unavailable";
      failMessage = std::string("cannot store the trial: ") + e.what();
    }
    if (failStatus) {
      co_await sendError(w, failStatus, failCode, failMessage);
      co_return;
    }
    spawn(std::move(started));
    if (batch) {
      json out;
      out["ids"] = json::array();
      for (auto& i : ids) out["ids"].push_back(i.id);
      co_await sendJson(w, 202, out);
      co_return;
    }
    auto id = ids[0].id;
    std::string state;
    if (waitS) {
      auto t = co_await waitForEnd(id, ms(*waitS), w);
      if (t && (t->state == "succeeded" || t->state == "failed" || t->state == "cancelled")) {
        co_await sendJson(w, 200, t->toJson());
        co_return;
      }
      if (t) state = t->state;
    } else {
      state = store_.trialState(id);  // the state column only: no JSON parsed back
    }
    json out;
    out["id"] = id;
    out["state"] = state.empty() ? "queued" : state;
    co_await sendJson(w, 202, out);
    co_return;
  }

  // /v1/trials/ID
  std::string idText = req.path.substr(std::string("/v1/trials/").size());
  std::int64_t id = 0;
  bool numeric = !idText.empty() && idText.size() <= 18 && idText.find_first_not_of("0123456789") == std::string::npos;
  if (numeric) id = std::stoll(idText);
  auto t = numeric ? store_.trial(id) : std::nullopt;
  if (!t) {
    co_await sendError(w, 404, "not_found", "no trial with id '" + idText + "'");
    co_return;
  }
  if (req.method == "GET") {
    co_await sendJson(w, 200, t->toJson());
    co_return;
  }
  if (req.method == "DELETE") {
    if (store_.cancelTrial(id, now)) {
      for (auto& [aid, f] : inflight_)
        if (f.trialId == id) {
          f.cancelled = true;
          f.interruptOutcome = "interrupted";
          f.interruptWhy = "trial cancelled";
          if (f.stream) f.stream->close();
        }
      finished(id);
    }
    co_await sendJson(w, 200, store_.trial(id)->toJson());
    co_return;
  }
  co_await sendError(w, 405, "method_not_allowed", req.method + " is not allowed on " + req.path);
}

net::awaitable<void> TrialService::handleCompat(http::ServerRequest& req, http::ResponseWriter& w, const std::string& kind) {
  auto j = json::parse(req.body, nullptr, false);
  if (req.body.empty()) {
    co_await sendOllamaError(w, 400, "missing request body");
    co_return;
  }
  if (j.is_discarded() || !j.is_object()) {
    co_await sendOllamaError(w, 400, "invalid JSON body");
    co_return;
  }
  if (!j.contains("model") || !j["model"].is_string() || j["model"].get<std::string>().empty()) {
    co_await sendOllamaError(w, 400, "model is required");
    co_return;
  }
  bool stream = !j.contains("stream") || !j["stream"].is_boolean() || j["stream"].get<bool>();
  json spec;
  spec["model"] = j["model"];
  spec["kind"] = kind;
  json request = j;
  request.erase("model");
  request.erase("stream");
  spec["request"] = request;
  spec["run"] = req.header("x-oasis-run", "ollama-compat");
  if (auto key = req.header("x-oasis-trial-key"); !key.empty()) spec["key"] = key;
  auto parsed = parseTrialSpec(spec, config_.maxAttempts, "ollama-compat");
  if (!parsed) {
    co_await sendOllamaError(w, 400, parsed.error().message);
    co_return;
  }
  std::vector<Store::Inserted> ids;
  std::vector<Started> started;
  int failStatus = 0;
  std::string failMessage;
  try {
    std::vector<Store::NewTrial> news = {
        {parsed->run, parsed->model, parsed->kind, parsed->hash, parsed->key, parsed->request, parsed->maxAttempts}};
    started = insertAndStart(news, clock_.wallNow(), ids);
  } catch (const Store::KeyConflict& e) {
    failStatus = 409;
    failMessage = e.what();
  } catch (const std::exception& e) {
    failStatus = 503;
    failMessage = std::string("oasisd cannot store the request: ") + e.what();
  }
  if (failStatus) {
    co_await sendOllamaError(w, failStatus, failMessage);
    co_return;
  }
  const auto id = ids[0].id;
  compatWaiting_.insert(id);

  struct Pipe {
    std::deque<std::string> chunks;
    std::shared_ptr<net::steady_timer> signal;
    bool any = false;
  };
  auto pipe = std::make_shared<Pipe>();
  pipe->signal = std::make_shared<net::steady_timer>(ioc_);
  if (stream) {
    chunkSinks_[id] = [pipe](const std::string& line) {
      pipe->chunks.push_back(line);
      pipe->signal->cancel();
    };
  }
  spawn(std::move(started));  // after the sink is in place (co_spawn runs it later anyway)
  // The whole call is bounded: every attempt may take request_timeout_s plus backoff.
  auto bound = ms(config_.requestTimeoutS * config_.maxAttempts + config_.retry.maxBackoffS * config_.maxAttempts + 60);
  auto deadline = std::chrono::steady_clock::now() + bound;
  std::optional<Store::TrialOutcome> end;
  bool began = false;
  for (;;) {
    if (w.clientGone()) break;
    while (stream && !pipe->chunks.empty()) {
      if (!began) {
        began = co_await w.beginStream(200, "application/x-ndjson");
      }
      std::string line = pipe->chunks.front() + "\n";
      pipe->chunks.pop_front();
      co_await w.writeChunk(std::move(line));
    }
    auto state = store_.trialState(id);
    if (state.empty() || state == "succeeded" || state == "failed" || state == "cancelled") {
      if (stream && !pipe->chunks.empty()) continue;
      end = store_.trialOutcome(id);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    // Wake on a chunk, on the trial's end, or every 200 ms as a backstop.
    pipe->signal->expires_after(200ms);
    waiters_.emplace(id, pipe->signal);
    error_code ec;
    co_await pipe->signal->async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  chunkSinks_.erase(id);
  compatWaiting_.erase(id);
  if (w.clientGone() || !end) {
    // Like Ollama: a client that goes away cancels its request (and so its runner reference).
    if (store_.cancelTrial(id, clock_.wallNow())) {
      for (auto& [aid, f] : inflight_)
        if (f.trialId == id) {
          f.cancelled = true;
          f.interruptOutcome = "interrupted";
          f.interruptWhy = "client went away";
          if (f.stream) f.stream->close();
        }
    }
    if (!w.clientGone() && !w.started()) co_await sendOllamaError(w, 500, "oasisd gave up waiting for the trial");
    co_return;
  }
  if (end->state == "succeeded") {
    if (!stream) {
      co_await w.send(200, std::move(end->responseText), "application/json; charset=utf-8", {});
    } else if (!began) {
      // Defensive: a success with no chunk seen (should not happen): send the final object.
      std::string text = std::move(end->responseText) + "\n";
      co_await w.beginStream(200, "application/x-ndjson");
      co_await w.writeChunk(std::move(text));
    }
    co_return;
  }
  std::string message = end->error.value_or(end->state == "cancelled" ? "request canceled" : "trial failed");
  if (began) {
    json e;
    e["error"] = message;
    std::string line = e.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    co_await w.writeChunk(std::move(line));
    co_return;
  }
  // Ollama's own status when it refused the request (400 bad keep_alive, 404 unknown model).
  int status = 500;
  if (auto it = failStatus_.find(id); it != failStatus_.end()) {
    status = it->second;
    failStatus_.erase(it);
  }
  co_await sendOllamaError(w, status, message);
}

}  // namespace oasis
